"""support.testserver: failures are bounded and explained, and a real
server survives a restart with its data."""
import os
import time

import pytest

from m01.remote import store
from support import testserver


def fake_binary(tmp_path, script):
    path = tmp_path / 'ferretdb'
    path.write_text('#!/bin/sh\n' + script + '\n')
    path.chmod(0o755)
    return path


def test_database_names_are_unique_per_process():
    first = testserver.unique_database_name()
    second = testserver.unique_database_name()
    assert first != second
    assert first.startswith('m01test_%d_' % os.getpid())


def test_a_server_that_exits_is_reported_with_its_log(tmp_path):
    binary = fake_binary(tmp_path, 'echo "cannot open the database"; exit 3')
    server = testserver.FerretDBServer(binary=binary)
    with pytest.raises(testserver.FerretDBUnavailable) as info:
        server.start()
    server.close()
    assert 'exited with status 3' in str(info.value)
    assert 'cannot open the database' in str(info.value)
    assert not server.data_dir.exists()


def test_a_server_that_never_answers_is_stopped_in_time(tmp_path):
    binary = fake_binary(tmp_path, 'exec sleep 60')
    server = testserver.FerretDBServer(binary=binary, start_timeout=1)
    started = time.monotonic()
    with pytest.raises(testserver.FerretDBUnavailable,
                       match='did not answer ping'):
        server.start()
    assert time.monotonic() - started < 15
    assert server.process is None
    server.close()


def test_a_plain_go_install_build_gets_a_hint(tmp_path):
    binary = fake_binary(
        tmp_path, 'echo "panic: Invalid build/version/version.txt file '
                  'content."; exit 2')
    with pytest.raises(testserver.FerretDBUnavailable,
                       match='plain "go install"'):
        with testserver.ferretdb_server(binary=binary):
            pass  # pragma: no cover


def test_unusable_binaries_are_not_taken(tmp_path, monkeypatch):
    fake_binary(tmp_path, 'echo "version: v2.0.0"')
    monkeypatch.setenv('PATH', str(tmp_path))
    monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path / 'cache'))
    with pytest.raises(testserver.FerretDBUnavailable, match='no FerretDB'):
        testserver.find_ferretdb(build=False)


def test_without_go_the_reason_names_the_alternatives(monkeypatch):
    monkeypatch.setattr(testserver.shutil, 'which', lambda name: None)
    monkeypatch.setattr(testserver.os, 'access', lambda path, mode: False)
    with pytest.raises(testserver.FerretDBUnavailable,
                       match='M01_REMOTE_TEST_MONGODB_URI'):
        testserver.build_ferretdb()


@pytest.mark.ferretdb
def test_a_restarted_server_keeps_its_data(ferretdb_uri):
    try:
        binary = testserver.find_ferretdb(build=False)
    except testserver.FerretDBUnavailable as e:
        pytest.skip(str(e))  # the tests use a server given by URI
    with testserver.FerretDBServer(binary=binary) as server:
        client = store.connect(server.uri)
        client.m01test.jobs.insert_one({'_id': 'kept'})
        client.close()
        server.kill()
        server.start()
        client = store.connect(server.uri)
        try:
            assert client.m01test.jobs.find_one() == {'_id': 'kept'}
        finally:
            client.close()
