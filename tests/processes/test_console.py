"""``m01remote worker|scheduler <ini>``: a worker in another process.

The multi-process tests need a real server (a separate process cannot
see the embedded store); they are skipped, like every ``mongojava``
test, when there is none.
"""
import os
import signal
import subprocess
import sys
import time

import pytest
import transaction
from pyramid.paster import bootstrap

from m01.remote import console, operations
from m01.remote.interfaces import IRemoteProcessor
from support.inifile import pasteIni
from support.testserver import unique_database_name

#: Seconds a worker process may take to start and pick up a job.
DEADLINE = 60.0


def write_ini(path, uri, database, **extra):
    settings = {
        'm01.remote.uri': uri,
        'm01.remote.database': database,
        'm01.remote.worker.wait_time': '0.1',
        'm01.remote.scheduler.wait_time': '0.1',
        'demo.user': 'admin',
        'demo.password': 'secret',
        'demo.secret': 'test-secret',
    }
    settings.update(extra)
    path.write_text(pasteIni(
        'call:m01remote_demo:main', settings,
        logFormat='%(levelname)s [%(threadName)s] %(message)s'))
    return str(path)


def wait_for(condition, deadline=DEADLINE, what='the condition'):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError('%s did not happen within %.0f s' % (what, deadline))


def test_help(capsys):
    with pytest.raises(SystemExit) as info:
        console.main(['--help'])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert 'worker' in out and 'scheduler' in out
    with pytest.raises(SystemExit) as info:
        console.main(['worker', '--help'])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert '--name' in out and '--stop-timeout' in out and 'INI' in out


def test_a_command_is_required(capsys):
    with pytest.raises(SystemExit) as info:
        console.main([])
    assert info.value.code == 2


def test_the_embedded_store_is_refused(tmp_path, capsys):
    ini = write_ini(tmp_path / 'embedded.ini', 'mongomock://', 'm01test')
    for command in ('worker', 'scheduler'):
        assert console.main([command, ini]) == 2
        err = capsys.readouterr().err
        assert 'm01.remote.uri = mongomock:// is the embedded in-memory ' \
            'store' in err
        assert 'mongodb://host:port/' in err


def test_bad_settings_are_reported(tmp_path, capsys):
    ini = write_ini(tmp_path / 'bad.ini', 'mongodb://localhost:1', 'x',
                    **{'m01.remote.workers': 'multi'})
    assert console.main(['worker', ini]) == 2
    assert 'unknown setting m01.remote.workers' in capsys.readouterr().err


def test_a_missing_ini_file_is_reported(tmp_path, capsys):
    assert console.main(['worker', str(tmp_path / 'missing.ini')]) == 2
    assert 'missing.ini' in capsys.readouterr().err


@pytest.mark.parametrize('name, text', [
    ('garbage.ini', 'not an ini file at all\n'),
    ('noapp.ini', '[app:other]\nuse = egg:m01.remote\n'),
    ('broken.ini', '[app:main]\nuse = call:no_such_module:main\n'),
    ('latin1.ini', '[app:main]\nuse = call:x:main\ntitle = caf\xe9\n'),
])
def test_an_unloadable_ini_is_reported(tmp_path, capsys, name, text):
    path = tmp_path / name
    path.write_bytes(text.encode('latin-1'))
    for command in ('worker', 'status'):
        assert console.main([command, str(path)]) == 2
        err = capsys.readouterr().err
        assert err.startswith('m01remote: cannot load the application of '
                              '%s: ' % path), err
        assert len(err.splitlines()) == 1 and 'Traceback' not in err


def test_a_configuration_that_is_no_ini_file_is_reported(tmp_path,
                                                         capsys):
    path = tmp_path / 'production.txt'
    path.write_text('[app:main]\nuse = egg:m01.remote\n')
    for command in ('scheduler', 'jobs'):
        assert console.main([command, str(path)]) == 2
        err = capsys.readouterr().err
        assert err.startswith('m01remote: %s is not an ini file' % path)
        assert 'Traceback' not in err


def test_an_application_failing_to_load_is_reported(tmp_path, capsys):
    # Its own error: its traceback helps, the last line says it all.
    path = tmp_path / 'failing.ini'
    path.write_text('[app:main]\nuse = call:builtins:len\n'
                    'm01.remote.uri = mongodb://127.0.0.1:1/\n')
    assert console.main(['status', str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith('Traceback')
    assert err.splitlines()[-1].startswith(
        'm01remote: cannot load the application of %s: TypeError: ' % path)


def test_an_argument_that_is_not_utf8_is_refused(tmp_path):
    # As a shell passes it: bytes that do not decode.
    ini = tmp_path / 'never-read.ini'
    for argv, named in (([b'pause', ini, b'mail\xff'], 'FACTORY'),
                        ([b'jobs', ini, b'--name', b'\xe9'], '--name'),
                        ([b'worker', ini, b'--name', b'\xff'], '--name')):
        done = subprocess.run([sys.executable, '-m', 'm01.remote.console']
                              + argv, capture_output=True, timeout=DEADLINE)
        assert done.returncode == 2, done.stderr
        assert done.stderr.decode().startswith(
            'm01remote: %s is not UTF-8 text: b' % named), done.stderr
        assert b'Traceback' not in done.stderr


def test_negative_stop_timeout_is_refused(tmp_path, capsys):
    assert console.main(['worker', 'x.ini', '--stop-timeout', '-1']) == 2
    assert '--stop-timeout' in capsys.readouterr().err


def test_an_unreachable_server_is_reported(tmp_path, capsys):
    ini = write_ini(tmp_path / 'down.ini', 'mongodb://127.0.0.1:1/', 'x')
    assert console.main(['worker', ini]) == 2
    # One line says so (a processor of an earlier test whose server went
    # away may log to the same stream meanwhile).
    lines = capsys.readouterr().err.splitlines()
    assert [line for line in lines if line.startswith('m01remote:')] == [
        line for line in lines
        if line.startswith('m01remote: ServerSelectionTimeoutError: ')]
    assert any(line.startswith('m01remote: ') for line in lines)


def test_run_serves_until_stopped():
    # In this process, on the embedded store: run() itself, no signal.
    import threading

    import m01remote_demo as demo
    app = demo.main({}, **{'m01.remote.worker.wait_time': '0.05',
                           'demo.user': 'admin', 'demo.password': 'x'})
    rp = app.registry.getUtility(IRemoteProcessor)
    jobid = rp.addJob('echo', 'in process', immediate=True)
    stop_event = threading.Event()
    watcher = threading.Thread(target=lambda: (
        wait_for(lambda: rp.getJobStatus(jobid) == 'completed',
                 what='the job completing'), stop_event.set()))
    watcher.start()
    try:
        assert console.run(rp, 'worker', 5, stop_event) == 0
    finally:
        stop_event.set()
        watcher.join()
    assert rp.getJobResult(jobid) == 'in process'
    assert not rp.isProcessing and not rp.isScheduling


@pytest.fixture
def remote_ini(tmp_path, mongojava_uri):
    """An ini of the demo site on the real server, and the processor the
    test uses to queue jobs (this process, the same database)."""
    database = unique_database_name()
    ini = write_ini(tmp_path / 'remote.ini', mongojava_uri, database)
    env = bootstrap(ini)
    rp = env['registry'].getUtility(IRemoteProcessor)
    try:
        yield ini, rp
    finally:
        env['closer']()
        transaction.abort()
        rp.database.client.drop_database(database)


def start(command, ini, tmp_path, *options):
    log = open(tmp_path / ('%s.log' % command), 'w+')
    process = subprocess.Popen(
        [sys.executable, '-m', 'm01.remote.console', command, ini]
        + list(options), stdout=log, stderr=subprocess.STDOUT,
        env=dict(os.environ, PYTHONUNBUFFERED='1'))
    return process, log


def stop(process, log, signum=signal.SIGTERM, timeout=30):
    process.send_signal(signum)
    try:
        status = process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise
    log.seek(0)
    return status, log.read()


@pytest.fixture
def java_ini(tmp_path, mongojava_uri):
    """As ``remote_ini``, on mongo-java-server."""
    database = unique_database_name()
    ini = write_ini(tmp_path / 'java.ini', mongojava_uri, database)
    env = bootstrap(ini)
    rp = env['registry'].getUtility(IRemoteProcessor)
    try:
        yield ini, rp
    finally:
        env['closer']()
        transaction.abort()
        rp.database.client.drop_database(database)


@pytest.mark.mongojava
def test_an_operator_quiets_and_stops_a_worker_process(java_ini, tmp_path):
    ini, rp = java_ini
    process, log = start('worker', ini, tmp_path)
    queries, actions = operations.queries(rp), operations.actions(rp)
    try:
        worker = wait_for(lambda: [w for w in queries.workers()
                                   if w['state'] == 'running'],
                          what='the first heartbeat')[0]
        assert worker['origin'] == 'm01remote worker'
        assert worker['pid'] == process.pid
        actions.controlWorker(worker['id'], 'quiet')
        wait_for(lambda: queries.workers()[0]['quiet'],
                 what='the worker saying it is quiet')
        jobid = rp.addJob('echo', 'waits', immediate=True)
        actions.controlWorker(worker['id'], 'resume')
        wait_for(lambda: rp.getJobStatus(jobid) == 'completed',
                 what='the job completing once resumed')
        actions.controlWorker(worker['id'], 'stop')
        status = process.wait(DEADLINE)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    log.seek(0)
    output = log.read()
    assert status == 0, output
    assert 'an operator asked this process to stop' in output
    assert queries.workers()[0]['state'] == 'stopped'


@pytest.mark.slow
@pytest.mark.mongojava
def test_worker_process_runs_jobs_and_stops_on_sigterm(remote_ini, tmp_path):
    ini, rp = remote_ini
    echo = rp.addJob('echo', 'hello', immediate=True)
    process, log = start('worker', ini, tmp_path, '--stop-timeout', '20')
    try:
        wait_for(lambda: rp.getJobStatus(echo) == 'completed',
                 what='the echo job completing')
        assert rp.getJobResult(echo) == 'hello'
        # A job still running when the worker is told to stop finishes.
        sleeper = rp.addJob('sleep', 1.5, immediate=True)
        wait_for(lambda: rp.getJobStatus(sleeper) == 'processing',
                 what='the sleep job starting')
    finally:
        status, output = stop(process, log)
    assert status == 0, output
    assert rp.getJobStatus(sleeper) == 'completed', output
    assert 'SIGTERM received: stopping' in output
    assert "Processor 'root-worker' stopped" in output
    # The demo's in-process settings are ignored: no scheduler here.
    assert "Scheduler 'root-scheduler'" not in output


@pytest.mark.slow
@pytest.mark.mongojava
def test_worker_process_with_another_name_stops_on_sigint(remote_ini,
                                                         tmp_path):
    ini, rp = remote_ini
    process, log = start('worker', ini, tmp_path, '--name', 'other')
    try:
        jobid = rp.addJob('echo', 'again', immediate=True)
        wait_for(lambda: rp.getJobStatus(jobid) == 'completed',
                 what='the echo job completing')
    finally:
        status, output = stop(process, log, signal.SIGINT)
    assert status == 0, output
    assert "Processor 'other-worker' started" in output
    assert 'SIGINT received: stopping' in output


@pytest.mark.slow
@pytest.mark.mongojava
def test_scheduler_process_stops_on_sigterm(remote_ini, tmp_path):
    ini, rp = remote_ini
    process, log = start('scheduler', ini, tmp_path)
    try:
        wait_for(lambda: "Scheduler 'root-scheduler' started" in
                 (tmp_path / 'scheduler.log').read_text(),
                 what='the scheduler starting')
    finally:
        status, output = stop(process, log)
    assert status == 0, output
    assert "Scheduler 'root-scheduler' stopped" in output
    assert "Processor 'root-worker'" not in output


@pytest.mark.slow
@pytest.mark.mongojava
def test_a_process_worker_loads_the_ini_in_its_children(tmp_path,
                                                        mongojava_uri):
    import re
    database = unique_database_name()
    ini = write_ini(tmp_path / 'process.ini', mongojava_uri, database,
                    **{'m01.remote.worker': 'process',
                       'm01.remote.worker.max_processes': '1',
                       'm01.remote.worker.kill_grace': '1'})
    env = bootstrap(ini)
    rp = env['registry'].getUtility(IRemoteProcessor)
    process, log = start('worker', ini, tmp_path, '--stop-timeout', '20')
    try:
        echo = rp.addJob('echo', 'from a child', immediate=True)
        wait_for(lambda: rp.getJobStatus(echo) == 'completed',
                 what='the echo job completing')
        assert rp.getJobResult(echo) == 'from a child'
        thread = rp.jobs[echo].attempts[-1]['thread']
        child = int(re.match(r'root-process-0:(\d+)$', thread).group(1))
        assert child != process.pid
        # No checkpoint in the demo's SleepJob: its child is killed.
        sleeper = rp.addJob('sleep', 30, timeout=1, immediate=True)
        wait_for(lambda: (rp.jobs[sleeper].attempts or [{}])[-1].get(
            'outcome') == 'timed out', what='the sleep job timing out')
    finally:
        status, output = stop(process, log)
        env['closer']()
        rp.database.client.drop_database(database)
    assert status == 0, output
    # The child loaded the ini's logging, and ran the demo's job there.
    assert re.search(r'\[MainThread\] EchoJob \w+: .from a child.', output)
    assert 'terminating its process %d' % child in output
    assert "Processor 'root-worker' stopped" in output
