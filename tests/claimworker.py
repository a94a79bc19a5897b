"""A worker process for the claim tests: processes jobs until the queue
has been empty for a moment, then prints how many it ran."""
import sys

import transaction

from m01.remote import store, testing  # noqa: F401  (registers the jobs)
from m01.remote.processor import RemoteProcessor


def main(uri, name, threads):
    import threading
    client = store.connect(uri)
    rp = RemoteProcessor(client[name], name='claimworker')
    counts = []

    def run():
        done = idle = 0
        while idle < 20:
            if rp.processNextJob():
                transaction.commit()
                done += 1
                idle = 0
            else:
                idle += 1
                rp.waitForWork(0.05)
        counts.append(done)

    workers = [threading.Thread(target=run) for _ in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    print(sum(counts))


if __name__ == '__main__':
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
