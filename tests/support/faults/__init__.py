"""The fault scenarios: the processes they start, the faults they inject
and the audit of every job (``benchmarks/faults.py`` runs them)."""
