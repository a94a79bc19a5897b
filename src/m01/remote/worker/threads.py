"""Running a worker in a thread of its own, and stopping it cleanly."""
import atexit
import logging
import threading
import weakref

logger = logging.getLogger('m01.remote')

#: Seconds ``stop`` waits for running jobs when no timeout is given.
DEFAULT_STOP_TIMEOUT = 30.0

_running = weakref.WeakSet()


class WorkerThread:
    """One worker (job or scheduler) of a processor and its thread."""

    labels = {'worker': 'Processor', 'scheduler': 'Scheduler'}

    def __init__(self, processor, kind):
        self.processor = processor
        self.kind = kind
        self.worker = None
        self.thread = None
        self._lock = threading.Lock()

    @property
    def threadName(self):
        return '%s-%s' % (self.processor.name, self.kind)

    @property
    def isRunning(self):
        thread = self.thread
        return thread is not None and thread.is_alive()

    def start(self, factory, arguments):
        with self._lock:
            if self.isRunning:
                return
            self.worker = factory(self.processor, **arguments)
            # A daemon thread does not keep the process alive; the atexit
            # hook below still stops it gracefully first.
            self.thread = threading.Thread(target=self.worker,
                                           name=self.threadName, daemon=True)
            # Logged before the thread runs, so the log reads in order.
            logger.info("%s '%s' started", self.labels[self.kind],
                        self.threadName)
            self.thread.start()
            _running.add(self)

    def stop(self, timeout=None):
        timeout = DEFAULT_STOP_TIMEOUT if timeout is None else timeout
        with self._lock:
            worker, thread = self.worker, self.thread
            self.worker = self.thread = None
            _running.discard(self)
        if thread is None:
            return
        worker.stop(timeout)
        thread.join(timeout)
        if thread.is_alive():
            logger.warning("%s '%s' did not stop within %.1f s",
                           self.labels[self.kind], self.threadName, timeout)
        else:
            logger.info("%s '%s' stopped", self.labels[self.kind],
                        self.threadName)


@atexit.register
def stopAllWorkers():
    for workerThread in list(_running):
        workerThread.stop()
