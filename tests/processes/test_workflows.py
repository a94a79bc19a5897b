"""A group's callback runs exactly once, after its last member, with the
members spread over two ``m01remote worker`` processes of four threads
each, ending at the same moment; and once still when a worker dies
between a member's outcome and its release.

Each round adds a group of ``MEMBERS`` jobs that all wait for the same
instant, then return; the callback records each of its runs at once
(``calls``), so a second run shows as a second record.
"""
import datetime
import signal
import time

import bson
import pytest
import transaction

from support import workflowapp
from support.faults.harness import Run
from support.inifile import pasteIni
from support.waiting import until

MEMBERS = 200
ROUNDS = 8
UTC = datetime.timezone.utc


class WorkflowRun(Run):
    """A ``Run`` of the workflow test application."""

    def ini(self, label='main', **settings):
        values = dict(self.settings, **settings)
        path = '%s/%s.ini' % (self.workdir, label)
        with open(path, 'w') as ini:
            ini.write(pasteIni('call:support.workflowapp:main', values))
        return path


@pytest.fixture
def run(mongojava_uri, tmp_path):
    run = WorkflowRun(mongojava_uri, str(tmp_path), 'workflows', **{
        'm01.remote.worker.max_threads': '4',
        'm01.remote.worker.wait_time': '0.05',
        'm01.remote.lease_time': '3'})
    yield run
    run.close()


def addGroup(processor, start=1.0):
    until = time.time() + start
    group = processor.addGroup(
        [('step', {'number': number, 'until': until})
         for number in range(MEMBERS)], callback=('gather', 'done'))
    transaction.commit()
    return group


def callbackRuns(run, group):
    return run.database.calls.count_documents(
        {'job': group['callback']})


def checkGroup(run, group, timeout=120):
    """The callback completed, ran once, after every member ended."""
    jobs = run.database.rjobs
    callback = until(lambda: jobs.find_one(
        {'_id': bson.ObjectId(group['callback']), 'status': 'completed'}),
        timeout, 'the callback completing')
    members = list(jobs.find(
        {'_id': {'$in': [bson.ObjectId(j) for j in group['jobs']]}}))
    assert {m['status'] for m in members} == {'completed'}
    assert callback['output'] == sum(range(MEMBERS))
    assert callbackRuns(run, group) == 1
    assert len(callback['attempts']) == 1
    lastMember = max(m['completed'] for m in members)
    assert callback['attempts'][0]['started'] >= lastMember
    return callback


@pytest.mark.slow
@pytest.mark.mongojava
def test_group_callback_runs_once_over_two_worker_processes(run):
    processor = run.processor()
    workers = [run.start('worker', label='worker-%d' % n) for n in (1, 2)]
    for _ in range(ROUNDS):
        group = addGroup(processor)
        checkGroup(run, group)
    # Both processes took members.
    workersSeen = {a['worker'].rsplit(':', 2)[1]
                   for d in run.database.rjobs.find({'name': 'step'})
                   for a in d['attempts']}
    assert workersSeen == {str(w.pid) for w in workers}
    for worker in workers:
        assert worker.alive, worker.output()


@pytest.mark.slow
@pytest.mark.mongojava
def test_a_worker_dying_before_a_release_still_yields_one_callback(run):
    processor = run.processor()
    victim = run.start('worker', label='victim', ini=run.ini(
        'victim', **{'workflows.die_after_releases': '20'}))
    group = addGroup(processor, start=3.0)
    survivor = run.start('worker', label='survivor')
    assert victim.wait(60) == workflowapp.DIED, victim.output()
    callback = checkGroup(run, group)
    assert survivor.alive, survivor.output()
    # The victim's last member was stored, but never released by it.
    assert callback['attempts'][0]['worker'].split(':')[1] == \
        str(survivor.pid)
    # Released by the survivor's lease keeper.
    assert 'releases of waiting jobs missed when their dependencies ended' \
        in survivor.output()
    survivor.signal(signal.SIGTERM)
