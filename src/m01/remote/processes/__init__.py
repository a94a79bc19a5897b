"""The ``process`` worker kind: each job in a child process."""
