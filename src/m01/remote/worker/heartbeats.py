"""Heartbeats: which processes work for the queue, and an operator's say
over them.

While a process runs a worker or a scheduler (the ``m01remote`` commands
or in-process threads), its ``ProcessMonitor`` writes a heartbeat every
``interval`` seconds: a document in ``<prefix>workers`` naming the host,
the process id, the processor, what it runs (``kinds``), its threads,
the jobs it runs with their lease expiry and thread, when it started
and when it was last seen. A process that stops beating for
``GONE_SECONDS`` is shown as gone; its document is removed after
``PRUNE_SECONDS`` by any process's lease keeper (``IUpkeep``). A process
that stops its workers says so (``stopped``).

An operator controls a process through a document of ``<prefix>controls``
with the process's id, which the monitor reads with each beat:
``quiet`` stops its loops claiming (running jobs finish; the scheduler
makes no more jobs) until the document is removed; ``stop`` stops the
process gracefully, as SIGTERM does. Only operators write controls and
only the process its heartbeat, so neither can undo the other's write.
A beat costs two commands: the heartbeat's upsert and the control's
read.
"""
import datetime
import logging
import os
import socket
import threading
import uuid

import pymongo
import pymongo.errors
import zope.interface

from m01.remote.interfaces import IProcessMonitor, IUpkeep
from m01.remote.queue.leases import failure

logger = logging.getLogger('m01.remote')

#: Seconds between two heartbeats.
HEARTBEAT_SECONDS = 5.0
#: A process not seen for this long is gone.
GONE_SECONDS = 30.0
#: The heartbeat of a gone or stopped process is removed after this long.
PRUNE_SECONDS = 24 * 3600.0
#: Seconds between two prunings.
PRUNE_INTERVAL = 3600.0
#: The most running jobs a heartbeat lists.
MAX_LISTED_JOBS = 100

QUIET, STOP = 'quiet', 'stop'
CONTROLS = (QUIET, STOP)


def processState(beat, control, now):
    """How a process is: 'running', 'quiet', 'stopping', 'stopped' or
    'gone'."""
    if beat.get('stopped'):
        return 'stopped'
    if beat.get('seen') is None or \
            beat['seen'] < now - datetime.timedelta(seconds=GONE_SECONDS):
        return 'gone'
    action = (control or {}).get('action')
    if action == STOP or beat.get('stopping'):
        return 'stopping'
    if action == QUIET or beat.get('quiet'):
        return 'quiet'
    return 'running'


@zope.interface.implementer(IProcessMonitor, IUpkeep)
class ProcessMonitor:
    """The heartbeat of one processor's workers in this process.

    ``beats`` and ``controls`` are the collections, ``now`` tells the
    time, ``name`` is the processor's, ``running()`` lists the jobs it
    runs (``LeaseKeeper.running``) and ``onStop`` is called once when an
    operator asks the process to stop.
    """

    def __init__(self, beats, controls, now, name, running=lambda: (),
                 onStop=None, interval=HEARTBEAT_SECONDS):
        self.beats = beats
        self.controls = controls
        self.now = now
        self.name = name
        self.running = running
        self.onStop = onStop
        self.interval = interval
        #: What started this process's workers ('threads', or the
        #: ``m01remote`` command's name).
        self.origin = 'threads'
        self.quiet = False
        self._token = uuid.uuid4().hex[:8]
        self._kinds = {}
        self._started = None
        self._stopping = False
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = None
        self._lastPrune = None
        self._failing = False

    @property
    def processId(self):
        # Read at each beat: a forked process has another pid.
        return '%s:%d:%s:%s' % (socket.gethostname(), os.getpid(),
                                self.name, self._token)

    def ensureIndexes(self):
        self.beats.create_index([('seen', pymongo.ASCENDING)],
                                name='m01_remote_seen')

    # while workers run

    def acquire(self, kind, threads=1):
        with self._lock:
            self._kinds[kind] = threads
            if self._started is None:
                self._started = self.now()
            if self._thread is None or not self._thread.is_alive():
                self._stop.clear()
                self._thread = threading.Thread(
                    target=self._run, daemon=True,
                    name='m01.remote-heartbeat-%s' % self.name)
                self._thread.start()
            else:
                self._wake.set()    # say at once what runs now

    def release(self, kind):
        with self._lock:
            if kind not in self._kinds:
                return
            self._kinds.pop(kind)
            last = not self._kinds
            thread = self._thread if last else None
            if last:
                self._thread = None
                self._stop.set()
                self._wake.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(self.interval + 5)
        if last:
            self._final()

    def _run(self):
        while not self._stop.is_set():
            self._guardedBeat()
            self._wake.wait(self.interval)
            self._wake.clear()

    def _guardedBeat(self):
        doing = 'writing the heartbeat'
        try:
            processId = self._writeBeat()
            doing = 'reading its controls'
            self._obey(self._readControl(processId))
        except Exception as error:
            if self._failing:
                pass
            elif isinstance(error, pymongo.errors.ConnectionFailure):
                logger.error('The heartbeat of %s failed: %s; retrying '
                             'every %.1f s', self.name, failure(doing, error),
                             self.interval)
            else:
                logger.exception('The heartbeat of %s failed while %s; '
                                 'retrying every %.1f s', self.name, doing,
                                 self.interval)
            self._failing = True
        else:
            if self._failing:
                logger.info('The heartbeat of %s works again', self.name)
            self._failing = False

    def document(self):
        """The heartbeat as it is written now."""
        with self._lock:
            kinds = dict(self._kinds)
        jobs = [{'job': jobid, 'leaseExpires': expires, 'thread': thread}
                for jobid, expires, thread
                in list(self.running())[:MAX_LISTED_JOBS]]
        return {'host': socket.gethostname(), 'pid': os.getpid(),
                'processor': self.name, 'origin': self.origin,
                'kinds': sorted(kinds), 'threads': kinds,
                'jobs': jobs, 'started': self._started, 'seen': self.now(),
                'quiet': self.quiet, 'stopping': self._stopping,
                'stopped': None}

    def beat(self):
        processId = self._writeBeat()
        self._obey(self._readControl(processId))

    def _writeBeat(self):
        """Write the heartbeat; the process id it has."""
        processId = self.processId
        update = {'$set': self.document()}
        try:
            self.beats.update_one({'_id': processId}, update, upsert=True)
        except pymongo.errors.DuplicateKeyError:
            # A beat of another thread inserted it first: two upserts of
            # one new _id may race.
            self.beats.update_one({'_id': processId}, update)
        return processId

    def _readControl(self, processId):
        """What an operator asks of ``processId``: an action or None."""
        control = self.controls.find_one({'_id': processId})
        return (control or {}).get('action')

    def _obey(self, action):
        if self.quiet != (action == QUIET):
            self.quiet = action == QUIET
            logger.warning('%s: an operator asked this process to %s',
                           self.name, 'take no more jobs' if self.quiet
                           else 'take jobs again')
        with self._lock:
            stopNow = action == STOP and not self._stopping
            self._stopping = self._stopping or stopNow
        if stopNow:
            logger.warning('%s: an operator asked this process to stop',
                           self.name)
            if self.onStop is not None:
                # In a thread of its own: stopping the workers waits for
                # their jobs, and for this thread too.
                threading.Thread(target=self.onStop, daemon=True,
                                 name='m01.remote-stop-%s' % self.name
                                 ).start()

    def _final(self):
        """The last worker stopped: say so (the process may live on)."""
        try:
            self.beats.update_one(
                {'_id': self.processId},
                {'$set': {'stopped': self.now(), 'jobs': [],
                          'kinds': [], 'threads': {}}})
        except Exception:
            logger.exception('The last heartbeat of %s failed', self.name)
        with self._lock:
            self._started = None
            self._stopping = False
            self.quiet = False

    # IUpkeep

    def tidy(self, now):
        """Remove the heartbeats (and controls) of processes not seen for
        ``PRUNE_SECONDS``, at most every ``PRUNE_INTERVAL`` seconds."""
        if self._lastPrune is not None and \
                (now - self._lastPrune).total_seconds() < PRUNE_INTERVAL:
            return 0
        self._lastPrune = now
        old = now - datetime.timedelta(seconds=PRUNE_SECONDS)
        ids = [beat['_id'] for beat in self.beats.find(
            {'seen': {'$lt': old}}, {'_id': 1}).limit(1000)]
        if not ids:
            return 0
        self.controls.delete_many({'_id': {'$in': ids}})
        return self.beats.delete_many(
            {'_id': {'$in': ids}, 'seen': {'$lt': old}}).deleted_count


def sendControl(controls, processId, action, now):
    """Ask the process ``processId`` to ``action`` ('quiet', 'stop') or,
    with None, to take jobs again."""
    if action is None:
        controls.delete_one({'_id': processId})
        return
    if action not in CONTROLS:
        raise ValueError('A process is asked to %s, not %r'
                         % (' or '.join(CONTROLS), action))
    controls.replace_one({'_id': processId},
                         {'_id': processId, 'action': action, 'at': now},
                         upsert=True)
