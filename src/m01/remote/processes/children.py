"""The child processes of the ``process`` worker, each running one job
at a time (``IJobChild``), and what runs in them.

The worker sends an idle child a claimed job's document through a pipe.
The child loads the job, calls ``job(processor)`` with a processor on a
connection of its own (``IChildSetup``), commits the transaction the job
ran in, and sends back the output, or the error: its type, message,
traceback and whether it was a ``JobError``. The worker alone stores the
outcome, under the job's claim.

Children are started with ``spawn``: a fresh interpreter, safe whatever
threads the worker runs and holding none of its connections. A child
ignores SIGINT (its worker decides when a job stops; a terminal's Ctrl-C
reaches the whole process group), turns SIGTERM into ``SystemExit`` so a
job's ``finally`` blocks run, and exits when its worker's process ends.
"""
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import threading
import traceback

import transaction
import zope.interface

from m01.remote.interfaces import IJobChild
from m01.remote.job import (
    RENAMED_ATTRIBUTES,
    STORED_ATTRIBUTES,
    JobCancelled,
    JobError,
    JobInterrupted,
    JobTimedOut,
    checkOutput,
    jobClassKey,
    loadJob,
)
from m01.remote.queue.containers import toObjectId
from m01.remote.queue.control import JobControl, deadlineOf
from m01.remote.queue.updates import TIMED_OUT_MESSAGE
from m01.remote.queue.wrappers import runHandler

logger = logging.getLogger('m01.remote')

#: Seconds a killed process may take to be gone (it may be dumping core).
KILL_WAIT = 60.0

# The messages between a worker and its child.
READY = 'ready'             # child: set up, waiting for a job
SETUP_FAILED = 'setup failed'   # child: its set-up raised (the traceback)
RUN = 'run'                 # worker: run this job document
STOP = 'stop'               # worker: exit
DONE = 'done'               # child: the job's output
FAILED = 'failed'           # child: the job's error, described

#: The interruptions a child reports by name, raised again in the worker.
INTERRUPTIONS = {'cancelled': JobCancelled, 'timed out': JobTimedOut,
                 'interrupted': JobInterrupted}


class ChildStartError(Exception):
    """A child process could not be started, or was not ready in time."""


class ChildProcessDied(Exception):
    """The child process running a job ended before it answered: a
    failed attempt, retried by the job's rules."""

    formattedTraceback = ''     # there is none: the process is gone


class ChildJobFailure(Exception):
    """What a job raised in its child process: ``str()`` is the original
    message (its type's name when it had none); ``typeName`` and
    ``formattedTraceback`` are the child's."""

    def __init__(self, typeName, message, formattedTraceback):
        super().__init__(message)
        self.typeName = typeName
        self.message = message
        self.formattedTraceback = formattedTraceback

    def __str__(self):
        return self.message or self.typeName.rsplit('.', 1)[-1]


class ChildJobError(ChildJobFailure, JobError):
    """A ``JobError`` raised by a job in its child process: it ends the
    job at once, as in any worker."""


def exitReason(exitcode):
    """How a process with ``exitcode`` (``Process.exitcode``) ended."""
    if exitcode is None:
        return 'it is still running'
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = 'signal'
        return 'it was killed by signal %s (%d)' % (name, -exitcode)
    return 'it exited with status %d' % exitcode


def runDocument(job):
    """The document a child loads the claimed ``job`` from."""
    cls = type(job)
    document = {key: getattr(job, key, None) for key in STORED_ATTRIBUTES}
    document.update({
        '_id': toObjectId(job.__name__), 'jobClass': jobClassKey(cls),
        'data': {key: getattr(job, key, None) for key in cls.fields}})
    for key, attribute in RENAMED_ATTRIBUTES.items():
        if getattr(job, attribute, None) is not None:
            document[key] = getattr(job, attribute)
    return document


class ChildResult:
    """A child's answer for a job: ``value()`` is the output, or raises
    the job's error as the worker's ``JobRunner`` expects it."""

    def __init__(self, message):
        self.kind, self.payload = message

    def value(self):
        if self.kind == DONE:
            return self.payload
        raise rebuildError(self.payload)


def describeError(error):
    """What a child sends of the ``error`` its job raised."""
    try:
        message = str(error)
    except Exception:
        message = repr(error)
    interruption = None
    for name, cls in INTERRUPTIONS.items():
        if isinstance(error, cls):
            interruption = name
            break
    return {'type': '%s.%s' % (type(error).__module__,
                               type(error).__qualname__),
            'message': message, 'traceback': traceback.format_exc(),
            'jobError': isinstance(error, JobError),
            'interruption': interruption}


def rebuildError(info):
    """The exception a child described (``describeError``)."""
    cls = INTERRUPTIONS.get(info.get('interruption'))
    if cls is not None:
        error = cls(info['message'])
        error.formattedTraceback = info['traceback']
        return error
    cls = ChildJobError if info['jobError'] else ChildJobFailure
    return cls(info['type'], info['message'], info['traceback'])


@zope.interface.implementer(IJobChild)
class JobChild:
    """A child process started from ``context`` (default: ``spawn``),
    named ``name``, getting its processor from ``setup``."""

    def __init__(self, setup, name='m01.remote-child', context=None):
        self.setup = setup
        self.name = name
        self.context = context or multiprocessing.get_context('spawn')
        self.process = None
        self.connection = None
        self.jobsRun = 0

    @property
    def pid(self):
        return self.process.pid if self.process is not None else None

    @property
    def alive(self):
        return self.process is not None and self.process.is_alive()

    def start(self, timeout):
        ours, theirs = self.context.Pipe()
        # Not a daemon: a daemon may not start processes of its own, and a
        # job may want to. The worker stops its children before it exits.
        self.process = self.context.Process(
            target=childMain, args=(theirs, self.setup), name=self.name)
        self.process.start()
        theirs.close()
        self.connection = ours
        ready = multiprocessing.connection.wait(
            [ours, self.process.sentinel], timeout)
        reason = 'it was not ready within %g s' % timeout
        if ours in ready:
            try:
                kind, detail = ours.recv()
            except (EOFError, OSError):
                self.process.join(5)
                reason = exitReason(self.process.exitcode)
            else:
                if kind == READY:
                    return
                reason = 'its set-up failed:\n%s' % detail
        elif ready:
            self.process.join(5)
            reason = exitReason(self.process.exitcode)
        pid = self.pid
        self.terminate(0)
        raise ChildStartError('The job process %s (pid %s) did not start: '
                              '%s' % (self.name, pid, reason))

    def send(self, document):
        self.jobsRun += 1
        try:
            self.connection.send((RUN, document))
        except OSError:
            self._died()    # it ended since it was last seen alive

    def wait(self, timeout):
        ready = multiprocessing.connection.wait(
            [self.connection, self.process.sentinel], timeout)
        if not ready:
            return None
        if self.connection in ready:
            try:
                return ChildResult(self.connection.recv())
            except (EOFError, OSError):
                pass    # it died: the pipe's end was closed
        self._died()

    def _died(self):
        pid = self.pid
        self.process.join(5)
        reason = exitReason(self.process.exitcode)
        self.terminate(0)
        raise ChildProcessDied('The job\'s process (pid %s) ended while it '
                               'ran the job: %s.' % (pid, reason))

    def terminate(self, grace):
        process, self.process = self.process, None
        if process is not None:
            if process.is_alive():
                process.terminate()
                process.join(grace)
            if process.is_alive():
                process.kill()
            process.join(KILL_WAIT)
            if process.exitcode is None:
                logger.error('The job process pid %s did not end within '
                             '%g s of SIGKILL', process.pid, KILL_WAIT)
            else:
                process.close()
        if self.connection is not None:
            self.connection.close()
            self.connection = None

    def close(self, timeout):
        if self.alive:
            try:
                self.connection.send((STOP, None))
            except OSError:
                pass    # gone already
            self.process.join(timeout)
        self.terminate(0)

    def __repr__(self):
        return '<JobChild %s pid %s>' % (self.name, self.pid)


# In the child

def childMain(connection, setup):
    """A child's life: set up, then run the jobs it is sent until its
    worker says stop or goes away."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _exitOnSigterm)
    _exitWithParent()
    try:
        processor = setup()
    except Exception:
        connection.send((SETUP_FAILED, traceback.format_exc()))
        return
    try:
        connection.send((READY, os.getpid()))
        while True:
            try:
                kind, document = connection.recv()
            except EOFError:
                return      # the worker closed its end
            if kind != RUN:
                return
            connection.send(runJob(processor, document))
    finally:
        setup.close()


def runJob(processor, document):
    """Run the job of ``document`` in a transaction of its own, committed
    when it succeeds; return the message for the worker."""
    manager = transaction.TransactionManager()
    try:
        job = loadJob(document)
        deadline = deadlineOf(job)
        job._control = JobControl(processor.jobWrites, document['_id'],
                                  document['claim'], deadline, job.timeout,
                                  processor.now)
        output = runHandler(processor.registry)(job,
                                                processor.bind(manager))
        checkOutput(output)
        if deadline is not None and processor.now() >= deadline:
            # Too late: its worker refuses the output; so do its writes.
            raise JobTimedOut(TIMED_OUT_MESSAGE % ('%g' % job.timeout))
        manager.commit()
    except Exception as error:
        described = describeError(error)
        try:
            manager.abort()
        except Exception:
            pass    # the error that matters is the job's
        return FAILED, described
    return DONE, output


def _exitOnSigterm(signum, frame):
    raise SystemExit(128 + signum)


def _exitWithParent():
    """End this child when its worker's process ends, even in the middle
    of a job (a worker killed with SIGKILL cannot stop its children)."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch():
        multiprocessing.connection.wait([parent.sentinel])
        os._exit(1)
    threading.Thread(target=watch, daemon=True,
                     name='m01.remote-parent-watch').start()
