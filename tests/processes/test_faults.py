"""No job lost, none done twice: the fault scenarios of
``support.faults.scenarios`` (``benchmarks/faults.py``) at their short
sizes, on the real server, and unit tests of how workers behave when the
database goes away.

Each scenario starts ``m01remote`` worker and scheduler processes (and
producer processes) on its own database, injects its fault (SIGKILL,
SIGSTOP/SIGCONT, a server outage, SIGTERM, bad input, a poison job) and
counts what became of every job. Every wait is bounded; the scenario
stops its processes and drops its database whatever happens.

Each scenario runs on mongo-java-server. The outage scenario stops and
restarts its server, so it runs on a server of its own rather than the
session's. In the network scenarios each worker reaches the server
through a fault proxy of its own.
"""
import datetime
import logging
import os
import threading
import time
import types

import pymongo.errors
import pytest

from m01.remote import console
from m01.remote.processor import RemoteProcessor
from m01.remote.queue.leases import LeaseKeeper
from m01.remote.worker import MultiJobWorker
from support import testserver
from support.faults import processes as fault_processes
from support.faults import scenarios as faults


def scenario(test):
    """A scenario test: processes on a real server, slow."""
    return pytest.mark.slow(test)


#: The servers the scenarios run on.
SERVERS = [pytest.param('mongojava', marks=pytest.mark.mongojava)]


def _onCI():
    return os.environ.get('CI', '').lower() in ('1', 'true', 'yes')


@pytest.fixture(params=SERVERS)
def env(request, tmp_path):
    uri = request.getfixturevalue('%s_uri' % request.param)
    return faults.Environment(uri, str(tmp_path))


@pytest.fixture(params=SERVERS)
def ownServerEnv(request, tmp_path):
    """An environment with a server of its own, to stop and start: one
    that keeps its data across a restart (mongo-java-server's H2
    backend)."""
    request.getfixturevalue('%s_uri' % request.param)  # it can be had
    server = faults.restartableServer(request.param)
    try:
        server.start()
    except testserver.ServerUnavailable as e:
        server.close()
        reason = 'no %s for the outage scenario: %s' % (request.param, e)
        if _onCI():
            pytest.fail(reason)
        pytest.skip(reason)
    try:
        yield faults.Environment(server.uri, str(tmp_path), server)
    finally:
        server.close()


def run(name, env, **overrides):
    result = faults.runScenario(name, env, short=True, **overrides)
    print(result.line())
    return result


def assertExactlyOnce(result):
    """No job lost, none run twice, except a job whose first run lost the
    job while storing its outcome (a worker killed or cut off from the
    server between its effect and its outcome): that job runs again once
    its lease expires; the queue promises at least once, and the unique
    index of the execution records refuses the second record."""
    assert result.skipped is None
    assert result.problems == []
    assert result.jobs > 0
    assert result.lost == 0, result.line()
    assert result.duplicates == result.reruns, result.line()
    assert result.completed == result.jobs, result.line()


@scenario
@pytest.mark.parametrize('batch', [1, 10])
def test_load(env, batch):
    result = run('load', env, batch=batch)
    assertExactlyOnce(result)
    assert result.details['produced'] == faults.SIZES['short']['load'][
        'jobs']


@scenario
@pytest.mark.parametrize('batch', [1, 2])
def test_crash_and_pause(env, batch):
    result = run('crash', env, batch=batch)
    assertExactlyOnce(result)
    details = result.details
    assert details['killed_held'] >= 1 and details['paused_held'] >= 1
    assert result.recovery <= details['bound_s']
    # The paused worker's runs found their jobs taken over: each was
    # refused, and kept no record of its own.
    assert details['refused_outcomes'] >= details['paused_held']
    assert details['stale_runs'] >= details['paused_held']


@scenario
def test_outage(ownServerEnv):
    result = run('outage', ownServerEnv)
    assertExactlyOnce(result)
    # The client waits 5 s to select a server, then backs off at most
    # 10 s (m01.remote.worker.MAX_OUTAGE_WAIT) before it tries again.
    assert result.recovery <= 5 + 10 + faults.LATENCY


@scenario
def test_scheduler_exactly_once(env):
    result = run('scheduler', env)
    assertExactlyOnce(result)
    perItem = [int(n) for n in result.details['jobs_per_item'].split(',')]
    # Due every second for the window: at least one job per item per two
    # seconds even on a busy server.
    window = faults.SIZES['short']['scheduler']['window']
    assert min(perItem) >= window // 2


@scenario
def test_bad_input(env):
    result = run('badinput', env)
    assert result.problems == []
    assert result.lost == 0
    assert result.jobs > 100
    assert result.completed == result.jobs


@scenario
def test_poison(env):
    result = run('poison', env)
    assertExactlyOnce(result)
    assert result.details['behind_done_before_poison_error'] >= 1


@scenario
def test_graceful_stop(env):
    result = run('graceful', env)
    assertExactlyOnce(result)
    details = result.details
    size = faults.SIZES['short']['graceful']
    assert details['exit_s'] <= size['stopTimeout'] + \
        fault_processes.EXIT_ALLOWANCE
    assert details['finished_by_victim'] == size['threads'] - 1
    assert result.recovery <= details['bound_s']


# A bad network between the workers and the server (mongo-java-server,
# each worker behind a fault proxy of its own)

def network(name, batch):
    return pytest.param(name, batch, id='%s-batch%d' % (name, batch))


@scenario
@pytest.mark.parametrize('name, batch', [
    # Batched where a fault can meet a batch half run; one size each
    # elsewhere (benchmarks/faults.py runs every scenario both ways).
    network('latency', 1),
    network('partition', 1),
    network('partition', 10),
    network('isolated', 1),
    network('flapping', 10),
    network('resets', 1),
    network('resets', 10),
    network('silent', 10),
    network('slowlink', 10),
])
def test_network(env, name, batch):
    result = run(name, env, batch=batch)
    size = faults.SIZES['short'][name]
    assert result.problems == [], result.line()
    assert result.jobs > 0
    # Every worker came through the fault and took jobs after it, within
    # the scenario's bound.
    assert result.details['workers_alive'] == size['workers']
    assert result.recovery is not None
    assert result.recovery <= result.details['bound_s']
    # No job lost, none stranded; none run twice (a run taken over after
    # its lease expired stores nothing, and is not counted); every job's
    # own queue write (a child job) stored once.
    assert result.lost == 0, result.line()
    assert result.duplicates == 0, result.line()
    assert 'children_twice' not in result.details, result.line()
    assert result.completed == result.jobs


# A worker's pool threads and an outage (the embedded store, no server)

def test_pool_threads_log_an_outage_once(mongomock_database, caplog):
    rp = RemoteProcessor(mongomock_database)
    worker = MultiJobWorker(rp, maxThreads=2)

    def unreachable(jobid, job=None):
        raise pymongo.errors.AutoReconnect('connection closed')
    rp.processJob = unreachable
    with caplog.at_level(logging.INFO, logger='m01.remote'):
        for jobid in ('a' * 24, 'b' * 24, 'c' * 24):
            worker.doProcessJob(jobid)
        worker.outage.succeeded()
    messages = [record.getMessage() for record in caplog.records]
    assert sum(m.startswith('MultiJobWorker: the database cannot be '
                            'reached') for m in messages) == 1
    assert sum('reachable again after 3 failed' in m for m in messages) \
        == 1
    # One line per job whose outcome was lost, without a traceback.
    assert sum('was not stored' in m for m in messages) == 3
    assert not any(record.exc_info for record in caplog.records)


def test_waiting_for_a_busy_thread_does_not_end_an_outage(
        mongomock_database, caplog):
    # Every thread busy: the loop only waits, the database is not asked,
    # so the outage it logged is not over (it was logged twice per
    # outage when a wait counted as a success).
    rp = RemoteProcessor(mongomock_database)
    worker = MultiJobWorker(rp, waitTime=0.01, maxThreads=1)
    worker._slots.acquire()

    def unreachable(*args, **kw):
        raise pymongo.errors.AutoReconnect('connection closed')
    # Single claims and batches alike.
    rp.pullNextJob = rp.pullNextJobs = unreachable
    with caplog.at_level(logging.INFO, logger='m01.remote'):
        assert worker.guardedStep() is True   # waited for the thread
        worker._slots.release()
        worker.waitTime = 0
        worker.guardedStep()                  # the database is down
        worker._slots.acquire()
        worker.waitTime = 0.01
        assert worker.guardedStep() is True   # waited again
        assert worker.outage.failures == 1
    messages = [record.getMessage() for record in caplog.records]
    assert not any('reachable again' in m for m in messages)


def test_pool_threads_log_other_errors_with_their_traceback(
        mongomock_database, caplog):
    rp = RemoteProcessor(mongomock_database)
    worker = MultiJobWorker(rp, maxThreads=2)

    def broken(jobid, job=None):
        raise RuntimeError('a bug')
    rp.processJob = broken
    with caplog.at_level(logging.INFO, logger='m01.remote'):
        worker.doProcessJob('a' * 24)
    record, = caplog.records
    assert 'failed to finish' in record.getMessage() and record.exc_info
    assert worker.outage.failures == 0


# Stopping a worker process with jobs still running

class SlowRenewals:
    """Job writes whose lease renewal takes a while, counted."""

    def __init__(self, seconds):
        self.seconds = seconds
        self.started = threading.Event()
        self.ticks = []

    def extendLeases(self, claims, until):
        self.ticks.append('begin')
        self.started.set()
        time.sleep(self.seconds)
        self.ticks.append('end')
        return 0

    def recoverExpired(self, now, limit=100):
        return []


def test_the_lease_keeper_stops_between_two_renewals():
    writes = SlowRenewals(0.3)
    keeper = LeaseKeeper('stub', 0.15, writes, lambda: datetime.datetime.now(
        datetime.timezone.utc))
    keeper.acquire()
    assert writes.started.wait(10)
    keeper.stop(10)
    # The renewal under way was finished, and no other began.
    assert writes.ticks[-1] == 'end'
    ticks = len(writes.ticks)
    time.sleep(0.2)
    assert len(writes.ticks) == ticks
    keeper.release()   # the worker loop ending later changes nothing
    assert len(writes.ticks) == ticks


class StoppedKeeper:

    def __init__(self):
        self.stopped = []

    def stop(self, timeout=None):
        self.stopped.append(timeout)


class ConsoleProcessor:
    """A processor whose worker thread runs until it is stopped."""

    name = 'stub'

    def __init__(self):
        self.leases = StoppedKeeper()
        self.isProcessing = False
        # What an operator's stop calls, and what runs the workers.
        self.monitor = types.SimpleNamespace(onStop=None, origin=None)

    def startProcessor(self):
        self.isProcessing = True

    def stopProcessor(self, timeout=None):
        self.isProcessing = False


def test_a_stopped_worker_command_stops_its_lease_keeper():
    processor = ConsoleProcessor()
    stop = threading.Event()
    stop.set()
    assert console.run(processor, 'worker', 1.0, stop) == 0
    assert processor.leases.stopped == [console.KEEPER_STOP_TIMEOUT]
    # An operator's stop is the command's own.
    assert processor.monitor.onStop == stop.set
    assert processor.monitor.origin == 'm01remote worker'
