"""Every database call a worker makes is bounded, and says so in the log
when it gives up (``m01.remote.*_timeout``): the settings, the client,
the loops' log lines, a lease keeper that stops its workers claiming,
and a silent server through the fault proxy."""
import datetime
import logging
import threading
import time

import pymongo.errors
import pytest
from bson import ObjectId
from pyramid.config import Configurator

from m01.remote import store
from m01.remote.interfaces import IRemoteProcessor
from m01.remote.processor import RemoteProcessor
from m01.remote.queue import leases
from m01.remote.queue.leases import LeaseKeeper
from m01.remote.worker import MultiJobWorker, OutageTracker, SimpleJobWorker
from m01.remote.worker.changestreams import AWAIT_MS, ChangeWatcher
from m01.remote.worker.heartbeats import ProcessMonitor
from support import jobs as support_jobs
from support.faultproxy import FaultProxy
from support.testserver import scratch_database, unique_database_name
from support.waiting import until

UTC = datetime.timezone.utc
#: Nothing listens there: a client made for it is never asked anything.
NOWHERE = 'mongodb://127.0.0.1:9/'
TIMED_OUT = pymongo.errors.NetworkTimeout(
    '127.0.0.1:9: timed out (configured timeouts: socketTimeoutMS: 1000.0ms)')


def now():
    return datetime.datetime.now(UTC)


def messages(caplog):
    return [record.getMessage() for record in caplog.records]


# The client

def test_connect_bounds_every_call_unless_the_uri_says_otherwise():
    options = store.connect(NOWHERE).options
    assert options.pool_options.socket_timeout == 20.0
    assert options.pool_options.connect_timeout == 10.0
    assert options.server_selection_timeout == 5.0
    options = store.connect(NOWHERE, socketTimeout=2.5, connectTimeout=1,
                            serverSelectionTimeout=3).options
    assert (options.pool_options.socket_timeout,
            options.pool_options.connect_timeout,
            options.server_selection_timeout) == (2.5, 1.0, 3.0)
    options = store.connect(NOWHERE + '?socketTimeoutMS=4000',
                            socketTimeout=2.5).options
    assert options.pool_options.socket_timeout == 4.0
    assert store.socketTimeoutOf(
        store.connect(NOWHERE, socketTimeout=2.5).db) == 2.5
    assert store.socketTimeoutOf(store.connect('mongomock://').db) is None


def test_a_timeout_is_told_from_other_failures():
    assert leases.isTimeout(TIMED_OUT)
    assert not leases.isTimeout(pymongo.errors.AutoReconnect('reset'))
    assert not leases.isTimeout(
        pymongo.errors.ServerSelectionTimeoutError('no server'))
    assert leases.failure('claiming jobs', TIMED_OUT).startswith(
        'claiming jobs timed out (127.0.0.1:9: timed out')
    assert leases.failure('claiming jobs', ValueError('x')) == \
        'claiming jobs failed (x)'


@pytest.mark.mongojava
def test_the_settings_reach_the_client_of_the_processor(mongojava_uri):
    name = unique_database_name('m01timeouts')
    config = Configurator(settings={
        'm01.remote.uri': mongojava_uri, 'm01.remote.pages': 'false',
        'm01.remote.database': name,
        'm01.remote.socket_timeout': '7', 'm01.remote.connect_timeout': '3',
        'm01.remote.server_selection_timeout': '2'})
    config.include('m01.remote')
    config.commit()
    processor = config.registry.getUtility(IRemoteProcessor)
    try:
        options = processor.database.client.options
        assert (options.pool_options.socket_timeout,
                options.pool_options.connect_timeout,
                options.server_selection_timeout) == (7.0, 3.0, 2.0)
    finally:
        processor.database.client.drop_database(name)
        processor.close()


def test_a_change_stream_waits_less_than_the_socket_timeout():
    def watcher(uri, **timeouts):
        collection = store.connect(uri, **timeouts).db.rjobs
        return ChangeWatcher(collection, [], None, None, 'test')
    assert watcher(NOWHERE).awaitMs() == AWAIT_MS
    assert watcher(NOWHERE, socketTimeout=1).awaitMs() == 500
    assert watcher(NOWHERE, socketTimeout=0.01).awaitMs() == 5
    assert watcher('mongomock://').awaitMs() == AWAIT_MS


# What the loops log

def test_an_outage_names_what_timed_out_once(caplog):
    outage = OutageTracker('MultiJobWorker')
    with caplog.at_level(logging.INFO, logger='m01.remote'):
        outage.failed(TIMED_OUT, 'claiming jobs')
        outage.failed(pymongo.errors.AutoReconnect('reset'), 'claiming jobs')
        outage.succeeded()
        outage.failed(pymongo.errors.AutoReconnect('refused'),
                      'finishing job 1')
    assert messages(caplog) == [
        'MultiJobWorker: the database does not answer: claiming jobs timed '
        'out (%s); retrying with back-off' % TIMED_OUT,
        'MultiJobWorker: the database is reachable again after 2 failed '
        'attempts',
        'MultiJobWorker: the database cannot be reached while finishing '
        'job 1 (refused); retrying with back-off']


class Writes:
    """Job writes whose calls fail or hang as a test says."""

    def __init__(self):
        self.failing = {}      # method name -> exception
        self.released = threading.Event()
        self.released.set()
        self.renewals = 0

    def extendLeases(self, claims, until):
        self._fail('extendLeases')
        self.released.wait(30)
        self.renewals += 1
        return len(claims)

    def recoverExpired(self, now, limit=100):
        self._fail('recoverExpired')
        return []

    def stopTimedOut(self, now, limit=100):
        return []

    def maintain(self, now):
        return 0

    def _fail(self, name):
        if name in self.failing:
            raise self.failing[name]


def test_a_lease_keeper_names_the_step_that_timed_out(caplog):
    writes = Writes()
    keeper = LeaseKeeper('root', 3.0, writes, now)
    writes.failing['recoverExpired'] = TIMED_OUT
    with caplog.at_level(logging.INFO, logger='m01.remote'):
        keeper.tick()
        keeper.tick()
        writes.failing['extendLeases'] = RuntimeError('a bug')
        del writes.failing['recoverExpired']
        keeper.tick()      # still failing: said once
        writes.failing.clear()
        keeper.tick()
    assert messages(caplog) == [
        'Renewing job leases failed: recovering expired leases timed out '
        '(%s); retrying every 1.0 s' % TIMED_OUT,
        'Renewing job leases works again']
    assert not any(record.exc_info for record in caplog.records)
    caplog.clear()
    writes.failing['extendLeases'] = RuntimeError('a bug')
    with caplog.at_level(logging.INFO, logger='m01.remote'):
        keeper.tick()
    record, = caplog.records
    assert record.getMessage() == 'Renewing job leases failed while ' \
        'renewing leases; retrying every 1.0 s'
    assert record.exc_info


def test_a_keeper_that_cannot_renew_for_a_lease_stops_the_claims(caplog):
    writes = Writes()
    writes.released.clear()     # every renewal hangs from now on
    lease = 0.6
    keeper = LeaseKeeper('root', lease, writes, now)
    keeper.add('a' * 24, 'claim')
    assert keeper.claimable()   # not running: nothing to renew
    with caplog.at_level(logging.INFO, logger='m01.remote'):
        started = time.monotonic()
        keeper.acquire()
        try:
            assert keeper.claimable()
            until(lambda: not keeper.claimable(), what='the claims stopped')
            assert time.monotonic() - started >= lease
            assert not keeper.claimable()       # said once
            writes.released.set()
            until(keeper.claimable, what='the claims again')
        finally:
            writes.released.set()
            keeper.release()
    said = messages(caplog)
    stalled = [m for m in said if 'has not renewed' in m]
    assert len(stalled) == 1
    assert stalled[0].startswith('The lease keeper of root has not renewed '
                                 'its leases for 0.')
    assert stalled[0].endswith('s (leases last 0.6 s): its workers take '
                               'no more jobs until it does')
    assert said.count('The lease keeper of root renews its leases again: '
                      'its workers take jobs again') == 1
    assert writes.renewals >= 1


def test_a_slow_sweep_delays_no_renewal():
    # On a slow link a sweep (reading and writing whole jobs) can take
    # longer than a lease; the renewals go on meanwhile.
    writes = Writes()
    sweeping = threading.Event()
    released = threading.Event()

    def slowRecovery(now, limit=100):
        sweeping.set()
        released.wait(30)
        return []
    writes.recoverExpired = slowRecovery
    lease = 0.6
    keeper = LeaseKeeper('root', lease, writes, now)
    keeper.add('a' * 24, 'claim')
    keeper.acquire()
    try:
        assert sweeping.wait(10)
        renewals = writes.renewals
        started = time.monotonic()
        until(lambda: writes.renewals >= renewals + 3,
              what='renewals while a sweep takes long')
        until(lambda: time.monotonic() - started > lease,
              what='a lease passed')
        assert keeper.claimable()
    finally:
        released.set()
        keeper.release()


def test_a_claim_arriving_late_is_renewed_at_once():
    # A batch read back over a slow link reaches the keeper with little
    # of its lease left: renewed at once, not at the next interval.
    writes = Writes()
    keeper = LeaseKeeper('root', 60.0, writes, now)   # renews every 20 s
    keeper.acquire()
    try:
        # A claim in time, with a deadline: kept, the keeper wakes then.
        keeper.add('a' * 24, 'claim', deadline=now() + datetime.timedelta(
            seconds=1), expires=now() + datetime.timedelta(seconds=60))
        assert keeper._nextWait() < 5
        assert writes.renewals == 0
        keeper.add('b' * 24, 'late', expires=now() + datetime.timedelta(
            seconds=5))
        until(lambda: writes.renewals >= 1, bound=10,
              what='the late claim renewed')
        expires = dict((jobid, at) for jobid, at, _ in keeper.running())
        assert expires['b' * 24] > now() + datetime.timedelta(seconds=30)
    finally:
        keeper.release()


class Unanswered:
    """A collection whose server does not answer."""

    def update_one(self, *args, **kw):
        raise TIMED_OUT

    find_one = update_one


def test_a_heartbeat_names_the_call_that_timed_out(caplog):
    monitor = ProcessMonitor(Unanswered(), Unanswered(), now, 'root')
    with caplog.at_level(logging.INFO, logger='m01.remote'):
        monitor._guardedBeat()
        monitor._guardedBeat()
    assert messages(caplog) == [
        'The heartbeat of root failed: writing the heartbeat timed out '
        '(%s); retrying every 5.0 s' % TIMED_OUT]


@pytest.mark.parametrize('kind', [SimpleJobWorker, MultiJobWorker])
def test_a_worker_claims_nothing_while_its_keeper_cannot_renew(
        mongomock_database, kind, caplog):
    rp = RemoteProcessor(mongomock_database)
    worker = kind(rp, waitTime=0)

    def claim(*args, **kw):
        raise AssertionError('claimed')
    rp.pullNextJob = rp.pullNextJobs = rp.processNextJob = claim
    rp.leases.claimable = lambda: False
    with caplog.at_level(logging.INFO, logger='m01.remote'):
        assert worker.guardedStep() is False
    assert messages(caplog) == []


# A silent server, through the fault proxy

#: The client's timeouts in the test, in seconds.
SOCKET_TIMEOUT = 1.0
CONNECT_TIMEOUT = 2.0
LEASE = 3.0
SILENCE = 8.0
#: Seconds a call may wait before it fails: a read is retried once, and
#: a new connection waits for the server's check; plus a busy machine.
BOUND = 2 * SOCKET_TIMEOUT + CONNECT_TIMEOUT + 3.0


def logged(caplog, *texts):
    """The time (``time.time``) of the first record containing each of
    ``texts``, or None."""
    for record in list(caplog.records):
        if all(text in record.getMessage() for text in texts):
            return record.created
    return None


@pytest.mark.mongojava
def test_a_silent_server_is_given_up_on_and_then_used_again(
        mongojava_uri, caplog):
    with FaultProxy(mongojava_uri, seed=3) as proxy, \
            scratch_database(mongojava_uri) as direct:
        client = store.connect(proxy.uri, socketTimeout=SOCKET_TIMEOUT,
                               connectTimeout=CONNECT_TIMEOUT,
                               serverSelectionTimeout=CONNECT_TIMEOUT)
        rp = RemoteProcessor(
            client[direct.name], leaseTime=LEASE,
            jobWorkerFactory=MultiJobWorker,
            jobWorkerArguments={'waitTime': 0.1, 'maxThreads': 2})
        rp.ensureIndexes()
        rp.addJobFactory('overlap', support_jobs.OverlapJob())
        jobs = direct.rjobs
        caplog.set_level(logging.INFO, logger='m01.remote')
        try:
            rp.startProcessor()
            held = rp.addJob('overlap', 4, immediate=True)
            claim = until(lambda: (jobs.find_one({'status': 'processing'})
                                   or {}).get('claim'),
                          what='the job running')
            silent = time.time()
            assert proxy.silence(1.0, SILENCE) == proxy.connections > 0
            # The claim loop and the lease keeper each give up on their
            # call, and say which call it was.
            claims = ('claiming jobs timed out',)
            keeper = ('Renewing job leases failed: ',)
            until(lambda: logged(caplog, *claims), 0.1 + BOUND,
                  'the claim loop timing out')
            until(lambda: logged(caplog, *keeper), LEASE / 3 + BOUND,
                  'the lease keeper timing out')
            assert logged(caplog, *claims) - silent <= 0.1 + BOUND
            assert logged(caplog, *keeper) - silent <= LEASE / 3 + BOUND
            # Not renewed for a lease: the worker takes no more jobs.
            stalled = ('has not renewed its leases',)
            until(lambda: logged(caplog, *stalled), LEASE + LEASE / 3 +
                  BOUND, 'the claims stopping')
            assert LEASE < logged(caplog, *stalled) - silent < SILENCE
            # The server answers again: everything recovers, and a new
            # job runs.
            until(lambda: logged(caplog, 'renews its leases again'),
                  20, 'the lease keeper renewing again')
            until(lambda: logged(caplog, 'reachable again'), 20,
                  'the claim loop claiming again')
            jobid = rp.addJob('overlap', 0, immediate=True)
            until(lambda: jobs.find_one({'_id': ObjectId(jobid),
                                         'status': 'completed'}), 20,
                  'a new job completing')
            # The job it held was taken back from it meanwhile (its lease
            # expired), and is queued again.
            assert jobs.find_one({'_id': ObjectId(held)}).get('claim') != claim
        finally:
            rp.stopProcessor(10)
            rp.close()
            client.close()
    said = messages(caplog)
    assert sum('claiming jobs timed out' in m for m in said) == 1
    assert sum('has not renewed its leases' in m for m in said) == 1
