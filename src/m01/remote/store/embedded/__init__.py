"""The embedded in-memory store: everything that knows mongomock."""
