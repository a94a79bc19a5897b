"""A worker process for the claim tests: processes jobs until the queue
has been empty for a moment, then prints how many it ran."""
import sys

from m01.remote import store
from m01.remote.processor import RemoteProcessor
from support.jobs import startProcessingThreads


def main(uri, name, threads, batchSize=1):
    client = store.connect(uri)
    rp = RemoteProcessor(client[name], name='claimworker')
    workers, counts = startProcessingThreads(rp, threads,
                                             batchSize=batchSize)
    for thread in workers:
        thread.join()
    print(sum(counts))
    client.close()


if __name__ == '__main__':
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]),
         *[int(value) for value in sys.argv[4:5]])
