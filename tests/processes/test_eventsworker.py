"""Job events in ``m01remote worker`` processes and their children: the
site's subscribers fire in the process where each thing happened."""
import os
import signal
import subprocess
import sys

import pytest
import transaction
from pyramid.paster import bootstrap

from m01.remote.interfaces import IRemoteProcessor
from support.inifile import pasteIni
from support.testserver import unique_database_name
from support.waiting import until

DEADLINE = 60.0


def write_ini(path, uri, database, **extra):
    settings = {'m01.remote.uri': uri, 'm01.remote.database': database,
                'm01.remote.worker.wait_time': '0.1',
                'm01.remote.pages': 'false'}
    settings.update(extra)
    path.write_text(pasteIni('call:support.eventsite:main', settings))
    return str(path)


@pytest.fixture
def site(tmp_path, mongojava_uri):
    """Makes ``(ini, processor)``: the event site's ini on
    mongo-java-server with the settings given, and its processor in this
    process; the database is dropped after the test."""
    database = unique_database_name()
    made = []

    def make(**extra):
        ini = write_ini(tmp_path / 'events.ini', mongojava_uri, database,
                        **extra)
        env = bootstrap(ini)
        made.append(env)
        return ini, env['registry'].getUtility(IRemoteProcessor)
    yield make
    transaction.abort()
    for env in made:
        rp = env['registry'].getUtility(IRemoteProcessor)
        rp.database.client.drop_database(database)
        env['closer']()


class Worker:

    def __init__(self, ini, tmp_path):
        self.log = open(tmp_path / 'worker.log', 'w+')
        self.process = subprocess.Popen(
            [sys.executable, '-m', 'm01.remote.console', 'worker', ini],
            stdout=self.log, stderr=subprocess.STDOUT,
            env=dict(os.environ, PYTHONUNBUFFERED='1'))

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise

    def output(self):
        self.log.seek(0)
        return self.log.read()


def seen(rp, jobid):
    return [(e['event'], e['pid'], e['status'])
            for e in rp.database.events.find({'jobid': jobid},
                                             sort=[('at', 1)])]


@pytest.mark.mongojava
def test_a_subscriber_fires_in_the_worker_process(site, tmp_path):
    ini, rp = site()
    worker = Worker(ini, tmp_path)
    try:
        fatal = rp.addJob('fatal', immediate=True)
        echo = rp.addJob('echo', 'hi', immediate=True)
        until(lambda: len(seen(rp, fatal)) == 7 and
              len(seen(rp, echo)) == 5, DEADLINE, 'the events')
    finally:
        status = worker.stop()
    assert status == 0, worker.output()
    pid, here = worker.process.pid, os.getpid()
    assert seen(rp, fatal) == [
        ('IJobAdded', here, None), ('IJobStarted', pid, None),
        ('wrapped', pid, None), ('IJobFailed', pid, None),
        ('IJobStarted', pid, None), ('wrapped', pid, None),
        ('IJobEnded', pid, 'error')]
    assert seen(rp, echo) == [
        ('IJobAdded', here, None), ('IJobStarted', pid, None),
        ('wrapped', pid, None), ('IJobCompleted', pid, None),
        ('IJobEnded', pid, 'completed')]


@pytest.mark.mongojava
def test_a_subscriber_fires_in_a_process_workers_child(site, tmp_path):
    ini, rp = site(**{'m01.remote.worker': 'process',
                      'm01.remote.worker.max_processes': '1'})
    worker = Worker(ini, tmp_path)
    try:
        spawner = rp.addJob('spawner', 'from a child', immediate=True)
        awaited = rp.addJob('async', 'awaited in a child', immediate=True)
        until(lambda: rp.getJobStatus(spawner) == 'completed', DEADLINE,
              'the spawner job')
        # An async job runs to its end in the child.
        until(lambda: rp.getJobStatus(awaited) == 'completed', DEADLINE,
              'the async job')
        assert rp.getJobResult(awaited) == 'awaited in a child'
        added = rp.getJobResult(spawner)
        until(lambda: len(seen(rp, added)) == 5, DEADLINE,
              'the added job\'s events')
    finally:
        status = worker.stop()
    assert status == 0, worker.output()
    pid, here = worker.process.pid, os.getpid()
    # The job the child added: IJobAdded where it committed, the child;
    # the run wrapper runs in the child too.
    [(event, child, _)] = seen(rp, added)[:1]
    assert event == 'IJobAdded' and child not in (pid, here)
    assert seen(rp, added)[1:] == [
        ('IJobStarted', pid, None), ('wrapped', child, None),
        ('IJobCompleted', pid, None), ('IJobEnded', pid, 'completed')]
    assert [e[:2] for e in seen(rp, spawner)] == [
        ('IJobAdded', here), ('IJobStarted', pid), ('wrapped', child),
        ('IJobCompleted', pid), ('IJobEnded', pid)]
