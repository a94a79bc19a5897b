"""Running a worker in a thread of its own, and stopping it cleanly: at
the process's exit, and when asked.

One at-exit hook stops every processor whose job worker or scheduler
thread still runs, each waiting up to ``STOP_TIMEOUT`` seconds for the
jobs it runs. It is registered when the first thread starts, after
``multiprocessing`` registered its own hook (which joins the children of
a process worker), so it runs before that one.
"""
import atexit
import contextlib
import logging
import threading
import weakref

import pymongo.errors

logger = logging.getLogger('m01.remote')

#: Seconds a stopping worker waits for its running jobs unless told
#: otherwise: at exit, in ``m01remote worker|scheduler`` and in
#: ``stop_threads``. A job still running then keeps its lease and is
#: requeued by another worker once the lease expires.
STOP_TIMEOUT = 30.0

_running = weakref.WeakSet()
_hook = threading.Lock()
_hooked = False
_in_process_threads = True


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
            # hook still stops it gracefully first.
            self.thread = threading.Thread(target=self.worker,
                                           name=self.threadName, daemon=True)
            _registerAtExit()
            # Logged before the thread runs, so the log reads in order.
            logger.info("%s '%s' started", self.labels[self.kind],
                        self.threadName)
            self.thread.start()
            _running.add(self)

    def stop(self, timeout=None):
        timeout = STOP_TIMEOUT if timeout is None else timeout
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


class ProcessorThreads:
    """The job worker and the scheduler thread of ``processor``: what
    runs is announced to ``monitor`` (``IProcessMonitor``), and the
    outcome counters (``counters``) are written as the job worker stops.
    """

    def __init__(self, processor, monitor, counters):
        self.name = processor.name
        self.monitor = monitor
        self.counters = counters
        self.worker = WorkerThread(processor, 'worker')
        self.scheduler = WorkerThread(processor, 'scheduler')

    def startWorker(self, factory, arguments):
        self.worker.start(factory, arguments)
        self.monitor.acquire('worker', getattr(self.worker.worker,
                                               'maxThreads', 1))

    def stopWorker(self, timeout=None):
        self.worker.stop(timeout)
        self.monitor.release('worker')
        self.writeCounters(self.counters.flush, 'its job worker stopped')

    def startScheduler(self, factory, arguments):
        self.scheduler.start(factory, arguments)
        self.monitor.acquire('scheduler')

    def stopScheduler(self, timeout=None):
        self.scheduler.stop(timeout)
        self.monitor.release('scheduler')

    def stop(self):
        """Stop both (an operator asked this process to stop)."""
        self.stopWorker()
        self.stopScheduler()

    def writeCounters(self, write, when):
        # Stopping or closing must not fail with the server gone.
        try:
            write()
        except pymongo.errors.PyMongoError as error:
            logger.warning('The outcome counters of %s could not be written '
                           'as %s: %s', self.name, when, error)


def start_threads(processor, worker=False, scheduler=False):
    """Start the job worker and/or the scheduler thread of ``processor``;
    the at-exit hook stops them gracefully when the process exits."""
    if worker:
        processor.startProcessor()
    if scheduler:
        processor.startScheduler()


def stop_threads(processor, timeout=STOP_TIMEOUT):
    """Stop both threads, each waiting up to ``timeout`` seconds for the
    jobs it runs; a job still running after that keeps its lease and is
    requeued by another worker once the lease expires."""
    processor.stopProcessor(timeout)
    processor.stopScheduler(timeout)


def _registerAtExit():
    global _hooked
    with _hook:
        if not _hooked:
            atexit.register(stopAllWorkers)
            _hooked = True


def stopAllWorkers(timeout=STOP_TIMEOUT):
    """Stop the threads of every processor that runs one (the at-exit
    hook)."""
    processors = []
    for workerThread in list(_running):
        if not any(p is workerThread.processor for p in processors):
            processors.append(workerThread.processor)
    for processor in processors:
        stop_threads(processor, timeout)


@contextlib.contextmanager
def no_in_process_threads():
    """Load an application without starting its worker threads.

    The ``m01remote`` commands and a process worker's children run the
    threads they need themselves, whatever ``start_worker`` says.
    """
    global _in_process_threads
    _in_process_threads = False
    try:
        yield
    finally:
        _in_process_threads = True


def in_process_threads():
    """Whether an application loaded now starts its worker threads."""
    return _in_process_threads
