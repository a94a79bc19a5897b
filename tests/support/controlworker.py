"""A process for the job-control tests, on a database of a server:

    python -m support.controlworker add URI DATABASE KEY COUNT
        adds COUNT jobs with the key KEY at once (racing another process)
        and prints the job ids it was answered, one per line;
    python -m support.controlworker drain URI DATABASE THREADS START
        processes jobs in THREADS threads from the time START until no
        job is queued or running (four minutes at most).
"""
import sys
import threading
import time

from m01.remote import store, testing  # noqa: F401  (job classes)
from m01.remote.processor import RemoteProcessor
from support.jobs import drainUntilDone  # its job classes too


def add(rp, key, count, start):
    while time.time() < start:      # both processes begin together
        time.sleep(0.001)
    for _ in range(count):
        print(rp.addJob('echo', key, key=key, immediate=True), flush=True)


def drain(rp, threads, start, timeout=240):
    while time.time() < start:      # both processes begin together
        time.sleep(0.001)

    workers = [threading.Thread(target=drainUntilDone, args=(rp, timeout))
               for _ in range(threads)]
    rp.leases.acquire()       # as a worker does: leases renewed, tidied
    try:
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    finally:
        rp.leases.release()


def main(argv):
    command, uri, name = argv[:3]
    client = store.connect(uri)
    try:
        rp = RemoteProcessor(client[name], name='controlworker')
        if command == 'add':
            add(rp, argv[3], int(argv[4]), float(argv[5]))
        elif command == 'drain':
            drain(rp, int(argv[3]), float(argv[4]))
        else:
            raise SystemExit('unknown command %r' % command)
    finally:
        client.close()


if __name__ == '__main__':
    main(sys.argv[1:])
