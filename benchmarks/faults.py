"""No job lost, none done twice: the fault scenarios on a real server,
one line each (see ``tests/support/faults/scenarios.py``; the network
ones in ``tests/support/faults/network.py``)::

    python benchmarks/faults.py                   # the full sizes
    python benchmarks/faults.py --short           # the sizes CI runs
    python benchmarks/faults.py --only load --jobs 2000
    python benchmarks/faults.py --only partition,resets --batch 10
"""
import os
import sys

TESTS = os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), 'tests')
if TESTS not in sys.path:
    sys.path.insert(0, TESTS)

from support.faults.scenarios import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(main())
