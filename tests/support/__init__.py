"""What the tests, the fault scenarios and the benchmarks share: the
throw-away servers, job classes and helpers. Not shipped: sites get
``m01.remote.testing``.

Importable as ``support`` with ``tests`` on ``sys.path`` (pytest puts it
there; the benchmarks and the processes the tests start add it)."""
