"""A process running a process worker for the tests, until it is
killed::

    python -m support.processworkerrun URI DATABASE
"""
import sys

from m01.remote import store, testing  # noqa: F401  (job classes)
from m01.remote.processes.worker import ProcessJobWorker
from m01.remote.processor import RemoteProcessor
from support import processjobs  # noqa: F401  (job classes)


def main(argv):
    uri, name = argv
    client = store.connect(uri)
    processor = RemoteProcessor(client[name], name='doomed')
    ProcessJobWorker(processor, waitTime=0.05, maxProcesses=1)()


if __name__ == '__main__':
    main(sys.argv[1:])
