"""The ``process`` worker: jobs in child processes, which it terminates
at their timeout or cancel, and whose deaths are failed attempts.

A child needs its own connection to a real server, so these tests run
on the servers; on the embedded store the worker is refused (the last
tests).
"""
import datetime
import os
import re
import time

import bson
import pytest
import transaction
from zope.interface.verify import verifyObject

from m01.remote import store, testing
from m01.remote.interfaces import IChildSetup, IJobChild, IJobWorker
from m01.remote.job import Job
from m01.remote.processes.children import ChildStartError, JobChild, exitReason
from m01.remote.processes.childsetup import AppChildSetup, StoreChildSetup
from m01.remote.processes.worker import EMBEDDED_REFUSED, ProcessJobWorker
from m01.remote.processor import RemoteProcessor
from support import processjobs
from support.jobs import CheckpointJob
from support.testserver import scratch_database

#: Seconds any awaited condition may take on a busy machine.
DEADLINE = 60.0

SERVERS = [pytest.param('mongojava', marks=pytest.mark.mongojava)]


@pytest.fixture(params=SERVERS)
def rp(request):
    uri = request.getfixturevalue('%s_uri' % request.param)
    with scratch_database(uri) as database:
        processor = RemoteProcessor(database, leaseTime=30)
        processor.ensureIndexes()
        processor.addJobFactory('echo', testing.EchoJob())
        yield processor
        processor.close()


def start(rp, **arguments):
    """Start the process worker of ``rp``: one child, watching its job
    every 0.1 s, SIGKILL one second after SIGTERM."""
    rp.jobWorkerFactory = ProcessJobWorker
    rp.jobWorkerArguments = dict({'waitTime': 0.05, 'maxProcesses': 1,
                                  'watchInterval': 0.1, 'killGrace': 1.0},
                                 **arguments)
    rp.startProcessor()


def stored(rp, jobid):
    return rp.jobsCollection.find_one({'_id': bson.ObjectId(jobid)})


def waitFor(condition, what, timeout=DEADLINE):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, '%s: not within %g s' % (
            what, timeout)
        time.sleep(0.02)


def alive(pid):
    """Whether process ``pid`` runs (a zombie waiting for its parent to
    reap it does not)."""
    try:
        with open('/proc/%d/stat' % pid) as stat:
            return stat.read().rsplit(')', 1)[1].split()[0] != 'Z'
    except FileNotFoundError:
        return False
    except OSError:     # no /proc: ask the process
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True


def runsOf(rp, jobid, count=1):
    """The pids of the first ``count`` runs of the job, once recorded."""
    return waitFor(lambda: [run['pid'] for run in rp.database.runs.find(
        {'job': jobid})][:count] if rp.database.runs.count_documents(
        {'job': jobid}) >= count else None, 'run %d of job %s'
        % (count, jobid))


# the worker kind

def test_the_worker_and_its_seams_have_their_interfaces(rp):
    worker = ProcessJobWorker(rp, maxProcesses=2)
    verifyObject(IJobWorker, worker)
    assert (worker.maxProcesses, worker.maxJobsPerChild) == (2, None)
    setup = worker.childSetup
    verifyObject(IChildSetup, setup)
    assert isinstance(setup, StoreChildSetup)
    assert (setup.database, setup.prefix, setup.name) == (
        rp.database.name, 'r', 'root')
    # The modules of the job classes this process knows, never the
    # database's.
    assert 'm01.remote.testing' in setup.modules
    assert 'support.processjobs' in setup.modules
    verifyObject(IChildSetup, AppChildSetup('site.ini', 'root'))
    verifyObject(IJobChild, JobChild(setup))
    assert ProcessJobWorker(rp).maxProcesses == (os.cpu_count() or 1)


def test_the_process_kind_is_made_from_the_settings(rp):
    from pyramid.config import Configurator

    from m01.remote.interfaces import IRemoteProcessor
    config = Configurator(settings={
        'm01.remote.uri': store.uriOf(rp.database),
        'm01.remote.database': rp.database.name,
        'm01.remote.worker': 'process',
        'm01.remote.worker.max_processes': '2',
        'm01.remote.worker.max_jobs_per_child': '10',
        'm01.remote.worker.kill_grace': '0.5'})
    config.include('m01.remote')
    site = config.make_wsgi_app().registry.getUtility(IRemoteProcessor)
    try:
        assert site.jobWorkerFactory is ProcessJobWorker
        worker = site.jobWorkerFactory(site, **site.jobWorkerArguments)
        verifyObject(IJobWorker, worker)
        assert (worker.maxProcesses, worker.maxJobsPerChild,
                worker.killGrace) == (2, 10, 0.5)
        # In the application itself there is no ini for the children.
        assert isinstance(worker.childSetup, StoreChildSetup)
    finally:
        site.database.client.close()


@pytest.mark.parametrize('arguments, message', [
    ({'maxProcesses': 0}, 'maxProcesses'),
    ({'maxProcesses': 1.5}, 'maxProcesses'),
    ({'maxJobsPerChild': 0}, 'maxJobsPerChild'),
    ({'killGrace': -1}, 'killGrace'),
    ({'watchInterval': 0}, 'watchInterval'),
])
def test_bad_arguments_are_refused(rp, arguments, message):
    with pytest.raises(ValueError, match=message):
        ProcessJobWorker(rp, **arguments)


def test_a_child_that_cannot_set_up_says_why(rp):
    # A module it cannot import is logged; the child is ready all the same.
    child = JobChild(StoreChildSetup(store.uriOf(rp.database),
                                     rp.database.name,
                                     modules=['support.nosuchmodule']))
    child.start(DEADLINE)
    assert child.alive and child.pid != os.getpid()
    child.close(5)
    assert not child.alive
    unreachable = StoreChildSetup('mongodb://127.0.0.1:1/?'
                                  'serverSelectionTimeoutMS=100', 'x')
    with pytest.raises(ChildStartError, match='(?s)did not start: its '
                       'set-up failed:.*ServerSelectionTimeoutError'):
        JobChild(unreachable).start(DEADLINE)


def test_exit_reasons():
    assert exitReason(3) == 'it exited with status 3'
    assert exitReason(-9) == 'it was killed by signal SIGKILL (9)'
    assert exitReason(-11) == 'it was killed by signal SIGSEGV (11)'


# outputs and errors, as in the other workers

def test_outputs_errors_and_writes_are_those_of_the_other_workers(rp):
    rp.addJobFactory('fatal', testing.FatalErrorJob({'maxRetries': 2,
                                                     'retryDelay': 0}))
    rp.addJobFactory('error', testing.ErrorJob({'maxRetries': 3}))
    rp.addJobFactory('adding', processjobs.AddingJob({'maxRetries': 1}))
    rp.addJobFactory('set', processjobs.SetOutputJob({'maxRetries': 3,
                                                      'retryDelay': 0}))
    echo = rp.addJob('echo', {'a': [1, 2]}, immediate=True)
    fatal = rp.addJob('fatal', immediate=True)
    error = rp.addJob('error', immediate=True)
    adds = rp.addJob('adding', immediate=True)
    failsAdding = rp.addJob('adding', 'fail', immediate=True)
    unstorable = rp.addJob('set', immediate=True)
    start(rp)
    testing.waitForJobs(rp, [echo, fatal, error, adds, failsAdding,
                             unstorable], timeout=DEADLINE)
    assert rp.getJobResult(echo) == {'a': [1, 2]}
    attempt, = stored(rp, echo)['attempts']
    assert attempt['outcome'] == 'completed'
    assert attempt['worker'] == rp.workerId
    assert re.match(r'root-process-0:\d+$', attempt['thread'])
    assert int(attempt['thread'].rsplit(':', 1)[1]) != os.getpid()
    # An unexpected error is retried; its traceback is the child's.
    document = stored(rp, fatal)
    assert document['status'] == 'error'
    assert [a['outcome'] for a in document['attempts']] == ['failed'] * 2
    assert document['errors'][0].endswith('] An error occurred.')
    assert 'testing.py' in document['tracebacks'][0]
    assert 'RuntimeError: An error occurred.' in document['tracebacks'][0]
    # A JobError ends the job at once.
    document = stored(rp, error)
    assert (document['status'], document['retryCounter']) == ('error', 1)
    assert document['errors'][0].endswith('] An error occurred.')
    # What a job adds through its transaction is committed by the child
    # when it succeeds, and not when it fails.
    assert rp.getJobResult(adds) == 'added'
    added = [d['input'] for d in rp.jobsCollection.find({'name': 'echo'})]
    assert 'added by %s' % adds in added
    assert 'added by %s' % failsAdding not in added
    assert 'failed after adding a job' in rp.getJobErrors(failsAdding)[0]
    assert 'cannot be stored' in rp.getJobErrors(unstorable)[0]
    # Not retried: the job would return the same again.
    assert stored(rp, unstorable)['retryCounter'] == 1


def test_a_child_is_reused_and_retired_after_max_jobs(rp):
    rp.addJobFactory('pid', processjobs.PidJob())
    first = [rp.addJob('pid', immediate=True) for _ in range(3)]
    start(rp)
    testing.waitForJobs(rp, first, timeout=DEADLINE)
    assert len({rp.getJobResult(jobid) for jobid in first}) == 1
    rp.stopProcessor(DEADLINE)
    second = [rp.addJob('pid', immediate=True) for _ in range(3)]
    start(rp, maxJobsPerChild=1)
    testing.waitForJobs(rp, second, timeout=DEADLINE)
    pids = {rp.getJobResult(jobid) for jobid in second}
    assert len(pids) == 3 and os.getpid() not in pids


MAIN_SCRIPT = """
import sys

from m01.remote import store, testing
from m01.remote.job import Job
from m01.remote.processor import RemoteProcessor
from m01.remote.processes.worker import ProcessJobWorker


class MainJob(Job):
    def __call__(self, remoteProcessor):
        return 'ran %s' % self.input


if __name__ == '__main__':
    rp = RemoteProcessor(store.connect(sys.argv[1])[sys.argv[2]],
                         jobWorkerFactory=ProcessJobWorker,
                         jobWorkerArguments={'waitTime': 0.05,
                                             'maxProcesses': 1})
    rp.addJobFactory('main', MainJob({'maxRetries': 1}))
    jobid = rp.addJob('main', 'in a child', immediate=True)
    rp.startProcessor()
    testing.waitForJobs(rp, [jobid], timeout=60)
    rp.stopProcessor(10)
    print(rp.getJobStatus(jobid), rp.getJobResult(jobid))
"""


@pytest.mark.slow
@pytest.mark.mongojava
def test_the_job_classes_of_the_workers_main_script_load_in_a_child(
        tmp_path, mongojava_uri):
    import subprocess
    import sys
    script = tmp_path / 'worker_script.py'
    script.write_text(MAIN_SCRIPT)
    with scratch_database(mongojava_uri) as database:
        output = subprocess.run(
            [sys.executable, str(script), mongojava_uri, database.name],
            capture_output=True, text=True, timeout=120)
    assert output.returncode == 0, output.stderr
    assert output.stdout.split('\n')[-2] == 'completed ran in a child'


def test_a_job_of_a_class_a_child_cannot_load_is_a_failed_attempt(rp):
    class LocalJob(Job):     # a child cannot import it from anywhere
        def __call__(self, remoteProcessor):
            return 'ran'
    rp.addJobFactory('local', LocalJob({'maxRetries': 1}))
    jobid = rp.addJob('local', immediate=True)
    start(rp)
    testing.waitForJobs(rp, [jobid], stati=('error',), timeout=DEADLINE)
    assert 'is not known in this process' in rp.getJobErrors(jobid)[0]


# timeouts

def test_a_job_past_its_timeout_is_killed_and_retried(rp):
    rp.addJobFactory('spin', processjobs.SpinJob({
        'timeout': 1, 'maxRetries': 2, 'retryDelay': 0}))
    jobid = rp.addJob('spin', immediate=True)
    start(rp)
    first, = runsOf(rp, jobid)
    # Killed at its deadline: its late outcome cannot come.
    waitFor(lambda: not alive(first), 'the first child ending')
    second = runsOf(rp, jobid, 2)[1]
    assert second != first      # a fresh child after the kill
    testing.waitForJobs(rp, [jobid], stati=('error',), timeout=DEADLINE)
    waitFor(lambda: not alive(second), 'the second child ending')
    document = stored(rp, jobid)
    assert [a['outcome'] for a in document['attempts']] == \
        ['timed out', 'timed out']
    assert all(error.endswith('] The job timed out after 1 s.')
               for error in document['errors'])
    assert document['output'] is None
    # The worker goes on with the next job.
    echo = rp.addJob('echo', 'after', immediate=True)
    testing.waitForJobs(rp, [echo], timeout=DEADLINE)


def test_a_terminated_job_runs_its_finally_blocks(rp):
    rp.addJobFactory('cleaning', processjobs.CleaningJob({
        'timeout': 1, 'maxRetries': 1}))
    jobid = rp.addJob('cleaning', immediate=True)
    start(rp, killGrace=30)     # SIGTERM ends it, not SIGKILL
    testing.waitForJobs(rp, [jobid], stati=('error',), timeout=DEADLINE)
    waitFor(lambda: rp.database.runs.find_one(
        {'job': jobid, 'cleanedUp': True}), 'the finally block')


def test_a_job_ignoring_sigterm_is_killed(rp):
    rp.addJobFactory('stubborn', processjobs.StubbornJob({
        'timeout': 1, 'maxRetries': 1}))
    jobid = rp.addJob('stubborn', immediate=True)
    start(rp, killGrace=0.5)
    pid, = runsOf(rp, jobid)
    testing.waitForJobs(rp, [jobid], stati=('error',), timeout=DEADLINE)
    waitFor(lambda: not alive(pid), 'the child ending')
    assert stored(rp, jobid)['attempts'][-1]['outcome'] == 'timed out'


def test_a_job_in_a_child_reports_its_progress_and_times_out(rp):
    rp.addJobFactory('checkpoint', CheckpointJob({'timeout': 1,
                                                  'maxRetries': 1}))
    jobid = rp.addJob('checkpoint', 30, immediate=True)
    start(rp)
    testing.waitForJobs(rp, [jobid], stati=('error',), timeout=DEADLINE)
    document = stored(rp, jobid)
    assert document['attempts'][-1]['outcome'] == 'timed out'
    # Written by the child, under the job's claim.
    assert document['progress']['message'] == 'half way'
    assert document['log'][0].endswith('started')


# cancel

def test_a_running_job_cancelled_is_terminated(rp):
    rp.addJobFactory('spin', processjobs.SpinJob())
    jobid = rp.addJob('spin', immediate=True)
    start(rp)
    pid, = runsOf(rp, jobid)
    rp.cancelJob(jobid, immediate=True)
    waitFor(lambda: not alive(pid), 'the cancelled job\'s child ending',
            timeout=10)
    document = stored(rp, jobid)
    assert (document['status'], document['output']) == ('cancelled', None)
    assert document['attempts'][-1]['outcome'] == 'cancelled'
    echo = rp.addJob('echo', 'next', immediate=True)
    testing.waitForJobs(rp, [echo], timeout=DEADLINE)
    assert stored(rp, jobid)['status'] == 'cancelled'


# children that die

@pytest.mark.parametrize('how, message', [
    ('kill', 'it was killed by signal SIGKILL (9)'),
    ('exit', 'it exited with status 3'),
    ('segfault', 'it was killed by signal SIGSEGV (11)'),
])
def test_a_child_that_dies_is_a_failed_attempt(rp, how, message):
    rp.addJobFactory('dying', processjobs.DyingJob({'maxRetries': 2,
                                                    'retryDelay': 0}))
    jobid = rp.addJob('dying', how, immediate=True)
    start(rp)
    testing.waitForJobs(rp, [jobid], stati=('error',), timeout=DEADLINE)
    document = stored(rp, jobid)
    assert [a['outcome'] for a in document['attempts']] == ['failed'] * 2
    assert all('ended while it ran the job: %s.' % message in error
               for error in document['errors'])
    first, second = runsOf(rp, jobid, 2)
    assert first != second
    echo = rp.addJob('echo', 'still here', immediate=True)
    testing.waitForJobs(rp, [echo], timeout=DEADLINE)


# stopping

def test_a_running_job_finishes_when_the_worker_stops(rp):
    rp.addJobFactory('sleep', testing.SleepJob())
    jobid = rp.addJob('sleep', (1.0, 'slept'), immediate=True)
    start(rp)
    testing.waitForJobs(rp, [jobid], stati=('processing',),
                        timeout=DEADLINE)
    rp.stopProcessor(DEADLINE)
    assert not rp.isProcessing
    assert (rp.getJobStatus(jobid), rp.getJobResult(jobid)) == (
        'completed', 'slept')


def test_a_job_running_past_the_stop_timeout_is_left_to_lease_recovery(
        rp):
    rp.addJobFactory('spin', processjobs.SpinJob())
    jobid = rp.addJob('spin', immediate=True)
    start(rp)
    pid, = runsOf(rp, jobid)
    started = time.monotonic()
    rp.stopProcessor(0.5)
    # Within the stop timeout, a watch interval and the kill's grace.
    assert time.monotonic() - started < 0.5 + 0.1 + 1.0 + 5
    assert not rp.isProcessing and not alive(pid)
    document = stored(rp, jobid)
    assert document['status'] == 'processing'
    later = rp.now() + datetime.timedelta(seconds=31)
    assert rp.recoverExpiredJobs(callTime=later) == [(jobid, 'queued')]
    assert stored(rp, jobid)['attempts'][-1]['outcome'] == 'lost'
    transaction.abort()


@pytest.mark.slow
def test_children_end_with_a_worker_killed_with_sigkill(rp):
    import subprocess
    import sys
    rp.addJobFactory('spin', processjobs.SpinJob())
    jobid = rp.addJob('spin', immediate=True)
    worker = subprocess.Popen([sys.executable, '-m',
                               'support.processworkerrun',
                               store.uriOf(rp.database), rp.database.name])
    try:
        pid, = runsOf(rp, jobid)
    finally:
        worker.kill()
        worker.wait()
    # The child runs a job that reaches no checkpoint for two minutes.
    waitFor(lambda: not alive(pid), 'the orphaned child ending',
            timeout=10)


# the embedded store

def test_the_embedded_store_is_refused(mongomock_database):
    rp = RemoteProcessor(mongomock_database)
    with pytest.raises(ValueError) as info:
        ProcessJobWorker(rp)
    assert str(info.value) == EMBEDDED_REFUSED
    assert 'mongomock://' in EMBEDDED_REFUSED
    rp.jobWorkerFactory = ProcessJobWorker
    with pytest.raises(ValueError, match='embedded store'):
        rp.startProcessor()
    assert not rp.isProcessing


def test_a_processor_of_a_client_made_elsewhere_needs_a_child_setup(rp):
    import pymongo
    uri = store.uriOf(rp.database)
    client = pymongo.MongoClient(uri, tz_aware=True)
    try:
        other = RemoteProcessor(client[rp.database.name])
        with pytest.raises(ValueError, match='childSetup'):
            ProcessJobWorker(other)
        setup = StoreChildSetup(uri, rp.database.name)
        assert ProcessJobWorker(other, childSetup=setup).childSetup \
            is setup
    finally:
        client.close()
