"""A worker process for the wake-up tests: a simple worker polling every
``waitTime`` seconds, which prints ``{"ready": true}`` once its change
stream is open and it is idle, and its watcher's counts as a JSON line
when its standard input closes.

    python wakeworker.py URI DATABASE WAIT_TIME
"""
import json
import sys
import threading
import time

from m01.remote import store, testing  # noqa: F401  (its job classes)
from m01.remote.processor import RemoteProcessor

#: How long the stream may take to open.
READY_BOUND = 30.0


def say(value):
    sys.stdout.write(json.dumps(value) + '\n')
    sys.stdout.flush()


def main(uri, name, waitTime):
    client = store.connect(uri)
    rp = RemoteProcessor(client[name], name='wakeworker',
                         jobWorkerArguments={'waitTime': waitTime})
    rp.startProcessor()
    changes = rp.jobChanges
    deadline = time.monotonic() + READY_BOUND
    pause = threading.Event()
    while not (changes.opened and rp.jobWakeup.idle):
        if time.monotonic() > deadline or changes.refused:
            say({'ready': False, 'refused': changes.refused})
            return 1
        pause.wait(0.01)
    say({'ready': True})
    sys.stdin.read()
    rp.stopProcessor()
    changes.stop()
    say({'refused': changes.refused, 'opened': changes.opened,
         'resumed': changes.resumed, 'changes': changes.changes,
         'wakes': changes.wakes})
    client.close()
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1], sys.argv[2], float(sys.argv[3])))
