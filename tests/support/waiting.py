"""Waiting for a condition another thread or process makes true."""
import threading
import time

#: How long a condition that must come true may take, by default.
BOUND = 20.0


def until(condition, bound=BOUND, what='the condition'):
    """Return ``condition()`` once it is true; AssertionError after
    ``bound`` seconds."""
    deadline = time.monotonic() + bound
    pause = threading.Event()
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError('%s not met within %s s' % (what, bound))
        pause.wait(0.01)
    return value
