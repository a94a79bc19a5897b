"""support.javaserver: mongo-java-server gives what the queue needs from
a MongoDB deployment (atomic claims, unique indexes, change streams, data
kept by H2), and failures are bounded and explained.

The tests that need the real server are skipped, with the reason, where
Java or Maven is missing.
"""
import os
import select
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time

import bson
import pymongo
import pymongo.common
import pytest

from m01.remote import store
from support import javaserver, testserver


@pytest.fixture(scope='module')
def launcher():
    """The launcher's command, built once (minutes the very first time)."""
    try:
        return javaserver.launcher_command()
    except javaserver.JavaServerUnavailable as e:
        pytest.skip('no mongo-java-server: %s' % e)


@pytest.fixture(scope='module')
def memory_server(launcher):
    with javaserver.JavaServer(command=launcher) as server:
        yield server


@pytest.fixture
def java_database(memory_server):
    with testserver.scratch_database(memory_server.uri) as database:
        yield database


@pytest.fixture
def client_of():
    """Clients for URIs, closed at the end of the test."""
    clients = []

    def connect(uri):
        clients.append(store.connect(uri))
        return clients[-1]
    yield connect
    for client in clients:
        client.close()


def fake_command(tmp_path, script):
    path = tmp_path / 'launcher'
    path.write_text('#!/bin/sh\n' + script + '\n')
    path.chmod(0o755)
    return [str(path)]


def test_the_server_answers_ping_as_a_version_pymongo_accepts(
        memory_server, client_of):
    client = client_of(memory_server.uri)
    assert client.admin.command('ping')['ok'] == 1
    wire_version = client.admin.command('ismaster')['maxWireVersion']
    assert wire_version >= pymongo.common.MIN_SUPPORTED_WIRE_VERSION
    assert client.server_info()['version'] == '7.0.0'


def test_find_one_and_update_claims_each_document_once(java_database):
    jobs = java_database.jobs
    jobs.create_index('due')
    jobs.insert_many([{'_id': n, 'status': 'queued', 'due': n}
                      for n in range(500)])
    workers = 8
    start = threading.Barrier(workers)
    claimed = [[] for _ in range(workers)]
    errors = []

    def claim(worker):
        try:
            start.wait(10)
            while True:
                job = jobs.find_one_and_update(
                    {'status': 'queued'},
                    {'$set': {'status': 'claimed', 'worker': worker},
                     '$inc': {'claims': 1}},
                    sort=[('due', 1)])
                if job is None:
                    return
                claimed[worker].append(job['_id'])
        except Exception as e:  # reported below, with the others
            errors.append(e)

    threads = [threading.Thread(target=claim, args=(worker,))
               for worker in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
    assert sorted(sum(claimed, [])) == list(range(500))
    assert jobs.count_documents({'claims': 1}) == 500
    for worker, got in enumerate(claimed):
        assert jobs.count_documents({'worker': worker}) == len(got)
    assert sum(1 for got in claimed if got) > 1  # they did race


def test_a_unique_index_refuses_a_duplicate(java_database):
    tickets = java_database.tickets
    tickets.create_index('key', unique=True)
    tickets.insert_one({'_id': 1, 'key': 'a'})
    tickets.insert_one({'_id': 2, 'key': 'b'})
    with pytest.raises(pymongo.errors.DuplicateKeyError):
        tickets.insert_one({'_id': 3, 'key': 'a'})
    with pytest.raises(pymongo.errors.DuplicateKeyError):
        tickets.update_one({'_id': 2}, {'$set': {'key': 'a'}})
    assert sorted(tickets.distinct('key')) == ['a', 'b']


def test_with_the_oplog_a_change_stream_sees_an_insert(launcher, client_of):
    with javaserver.java_server(oplog=True, command=launcher) as uri:
        jobs = client_of(uri).m01test.jobs
        # The server's replies carry no operationTime for a stream to
        # start from; the server runs on this machine's clock.
        since = bson.Timestamp(int(time.time()) - 1, 0)
        with jobs.watch([{'$match': {'operationType': 'insert'}}],
                        start_at_operation_time=since,
                        max_await_time_ms=100) as stream:
            jobs.insert_one({'_id': 'new', 'status': 'queued'})
            deadline = time.monotonic() + 10
            change = None
            while change is None and time.monotonic() < deadline:
                change = stream.try_next()
    assert change is not None, 'no change within 10s'
    assert change['documentKey'] == {'_id': 'new'}
    assert change['fullDocument'] == {'_id': 'new', 'status': 'queued'}


def test_h2_keeps_the_data_across_stop_and_start(launcher, tmp_path,
                                                 client_of):
    h2_file = tmp_path / 'store.mv.db'
    with javaserver.JavaServer(backend='h2', h2_file=h2_file,
                               command=launcher) as server:
        jobs = client_of(server.uri).m01test.jobs
        jobs.create_index('key', unique=True)
        jobs.insert_one({'_id': 'kept', 'key': 'a'})
        uri = server.uri
        server.stop()
        assert server.start() == uri  # the same port
        jobs = client_of(server.uri).m01test.jobs
        assert jobs.find_one() == {'_id': 'kept', 'key': 'a'}
        with pytest.raises(pymongo.errors.DuplicateKeyError):
            jobs.insert_one({'key': 'a'})
    assert h2_file.exists()  # the caller's file outlives the server


def test_h2_keeps_a_committed_write_across_a_crash(launcher, client_of):
    with javaserver.JavaServer(backend='h2', command=launcher) as server:
        client_of(server.uri).m01test.jobs.insert_one({'_id': 'kept'})
        time.sleep(1)  # ten times the launcher's commit delay
        server.kill()
        server.start()
        jobs = client_of(server.uri).m01test.jobs
        assert jobs.find_one() == {'_id': 'kept'}


def test_the_server_stops_when_its_parent_dies(launcher, tmp_path):
    script = tmp_path / 'parent.py'
    script.write_text(textwrap.dedent('''\
        import sys
        import time

        from support import javaserver

        server = javaserver.JavaServer(command=sys.argv[1:])
        server.start()
        print(server.process.pid, server.work_dir, flush=True)
        time.sleep(60)
    '''))
    parent = subprocess.Popen([sys.executable, str(script), *launcher],
                              stdout=subprocess.PIPE, text=True)
    pid = work_dir = None
    try:
        ready, _, _ = select.select([parent.stdout], [], [], 30)
        assert ready, 'the parent did not start a server within 30s'
        pid, work_dir = parent.stdout.readline().split()
        pid = int(pid)
        parent.kill()
        parent.wait(10)
        deadline = time.monotonic() + 10
        while _is_running(pid):
            assert time.monotonic() < deadline, 'the server outlived 10s'
            time.sleep(0.1)
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait(10)
        parent.stdout.close()
        if pid is not None and _is_running(pid):
            os.kill(pid, signal.SIGKILL)  # no orphan, even on failure
        if work_dir is not None:
            shutil.rmtree(work_dir, ignore_errors=True)


def _is_running(pid):
    """Whether ``pid`` runs (an orphan's zombie may wait for a reaper)."""
    try:
        with open('/proc/%d/stat' % pid) as stat:
            return stat.read().rsplit(')', 1)[1].split()[0] != 'Z'
    except FileNotFoundError:
        return False


def test_without_java_the_reason_says_so(monkeypatch):
    monkeypatch.delenv('JAVA_HOME', raising=False)
    monkeypatch.setattr(javaserver.shutil, 'which', lambda name: None)
    server = javaserver.JavaServer()
    with pytest.raises(javaserver.JavaServerUnavailable,
                       match='Java is not installed'):
        server.start()
    server.close()
    assert not server.work_dir.exists()


def test_without_maven_the_reason_says_so(monkeypatch, tmp_path):
    monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path / 'cache'))
    monkeypatch.delenv('JAVA_HOME', raising=False)
    monkeypatch.setattr(javaserver.shutil, 'which',
                        lambda name: None if name == 'mvn' else '/bin/true')
    with pytest.raises(javaserver.JavaServerUnavailable,
                       match='Maven is not installed'):
        javaserver.launcher_command()


def fake_tools(tmp_path, monkeypatch, mvn_script):
    """``java`` and ``mvn`` stand-ins alone on PATH, and an empty cache."""
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    for name, script in (('java', 'exit 0'), ('mvn', mvn_script)):
        (bin_dir / name).write_text('#!/bin/sh\n' + script + '\n')
        (bin_dir / name).chmod(0o755)
    monkeypatch.setenv('PATH', os.pathsep.join([str(bin_dir), '/usr/bin',
                                                '/bin']))
    monkeypatch.delenv('JAVA_HOME', raising=False)
    monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path / 'cache'))


def test_a_failed_build_reports_maven_and_caches_nothing(tmp_path,
                                                         monkeypatch):
    fake_tools(tmp_path, monkeypatch, textwrap.dedent('''\
        mkdir -p target/lib && touch target/m01-mongojava.jar
        echo "[ERROR] Could not resolve dependencies for m01-mongojava"
        exit 1'''))
    with pytest.raises(javaserver.JavaServerUnavailable,
                       match='failed with status 1') as info:
        javaserver.find_launcher()
    assert 'Could not resolve dependencies' in str(info.value)
    assert not javaserver.cached_launcher().exists()
    assert [path.name for path in javaserver.cache_dir().iterdir()] == [
        '.build.lock']


def test_a_built_launcher_is_kept_and_not_built_again(tmp_path,
                                                      monkeypatch):
    builds = tmp_path / 'builds'
    fake_tools(tmp_path, monkeypatch, textwrap.dedent('''\
        echo built >> %s
        mkdir -p target/lib && touch target/lib/dependency.jar
        echo launcher > target/m01-mongojava.jar''' % builds))
    first = javaserver.find_launcher()
    assert first == javaserver.cached_launcher()
    assert first.parent.name == javaserver.launcher_key()
    assert (first.parent / 'lib' / 'dependency.jar').exists()
    assert javaserver.find_launcher() == first
    assert builds.read_text() == 'built\n'


def test_an_edited_launcher_gets_a_build_of_its_own(tmp_path):
    project = tmp_path / 'mongojava'
    shutil.copytree(javaserver.PROJECT_DIR, project,
                    ignore=shutil.ignore_patterns('target'))
    key = javaserver.launcher_key(project)
    assert key.startswith(javaserver.library_version(project) + '-')
    assert javaserver.library_version(project) == '1.47.0'
    (project / 'target').mkdir()
    (project / 'target' / 'output').write_text('build output')
    assert javaserver.launcher_key(project) == key
    source = next((project / 'src').rglob('*.java'))
    source.write_text(source.read_text() + '\n// edited\n')
    assert javaserver.launcher_key(project) != key


def test_h2_file_needs_the_h2_backend(tmp_path):
    with pytest.raises(ValueError, match='h2_file'):
        javaserver.JavaServer(h2_file=tmp_path / 'store.mv.db')


def test_a_launcher_that_exits_is_reported_with_its_log(tmp_path):
    command = fake_command(tmp_path, 'echo "error: cannot listen on '
                           '127.0.0.1:0: Address already in use" >&2; exit 1')
    server = javaserver.JavaServer(command=command)
    with pytest.raises(javaserver.JavaServerUnavailable) as info:
        server.start()
    server.close()
    assert 'exited with status 1 before listening' in str(info.value)
    assert 'Address already in use' in str(info.value)
    assert not server.work_dir.exists()


def test_a_launcher_that_never_listens_is_stopped_in_time(tmp_path):
    server = javaserver.JavaServer(
        command=fake_command(tmp_path, 'exec sleep 60'), start_timeout=1)
    started = time.monotonic()
    with pytest.raises(javaserver.JavaServerUnavailable,
                       match='did not listen within 1s'):
        server.start()
    assert time.monotonic() - started < 15
    assert server.process is None
    server.close()


def test_a_launcher_that_never_answers_is_stopped_in_time(tmp_path):
    port = testserver._free_port()  # nobody listens there
    command = fake_command(
        tmp_path, 'echo "listening 127.0.0.1:%d"; exec sleep 60' % port)
    server = javaserver.JavaServer(command=command, start_timeout=1)
    started = time.monotonic()
    with pytest.raises(javaserver.JavaServerUnavailable,
                       match='did not answer ping') as info:
        server.start()
    assert time.monotonic() - started < 15
    assert server.process is None
    assert 'listening 127.0.0.1:%d' % port in str(info.value)
    server.close()


def test_stop_lets_the_server_shut_down_cleanly(launcher):
    server = javaserver.JavaServer(command=launcher)
    server.start()
    server.stop()
    # The launcher's shutdown hook ran: the store is closed.
    assert server.log_tail().splitlines()[-1] == 'stopped'
    server.stop()
    server.kill()
    server.close()
    assert not server.work_dir.exists()
