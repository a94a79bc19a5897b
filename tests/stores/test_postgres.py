"""support.postgres: the throw-away PostgreSQL server the SQL tests run
on allows two-phase commit, listens on loopback only, runs as an account
PostgreSQL accepts, and leaves nothing behind."""
import os

import psycopg
import pytest

from support import postgres


def test_the_server_allows_two_phase_commit(postgres_database):
    with psycopg.connect(postgres_database) as conn:
        prepared = conn.execute('SHOW max_prepared_transactions').fetchone()
        assert int(prepared[0]) > 0
        conn.execute('CREATE TABLE t (n integer)')
        conn.commit()
        conn.execute("INSERT INTO t VALUES (1)")
        conn.execute("PREPARE TRANSACTION 'm01-test'")
    with psycopg.connect(postgres_database, autocommit=True) as conn:
        conn.execute("COMMIT PREPARED 'm01-test'")
        assert conn.execute('SELECT n FROM t').fetchall() == [(1,)]


def test_the_server_listens_on_loopback_only(postgres_uri):
    with psycopg.connect(postgres_uri) as conn:
        addresses = conn.execute('SHOW listen_addresses').fetchone()[0]
        sockets = conn.execute('SHOW unix_socket_directories').fetchone()[0]
        user = conn.execute('SELECT current_user').fetchone()[0]
    assert addresses == '127.0.0.1'
    assert os.path.basename(sockets).startswith('m01-postgres-')
    assert user == postgres.SUPERUSER


def test_a_scratch_database_is_dropped_with_its_sessions(postgres_uri):
    with postgres.scratch_database(postgres_uri) as uri:
        name = uri.rpartition('/')[2]
        left_open = psycopg.connect(uri)
    try:
        with psycopg.connect(postgres_uri) as conn:
            found = conn.execute('SELECT count(*) FROM pg_database '
                                 'WHERE datname = %s', (name,)).fetchone()
        assert found == (0,)
    finally:
        left_open.close()


def test_the_server_runs_as_postgres_under_root_and_is_removed(
        postgres_uri):
    # postgres_uri: skipped (failed under CI) where there is no PostgreSQL
    server = postgres.PostgresServer()
    try:
        server.start()
        owner = os.stat(server.data_dir).st_uid
        assert owner == (postgres.server_account().pw_uid
                         if os.geteuid() == 0 else os.geteuid())
        server.stop()
        server.start()  # the cluster and the port are kept
        with psycopg.connect(server.uri) as conn:
            assert conn.execute('SELECT 1').fetchone() == (1,)
    finally:
        server.close()
    assert not server.work_dir.exists()


def test_no_binaries_is_a_reason_not_a_traceback(monkeypatch):
    monkeypatch.setenv('PATH', '')
    monkeypatch.setattr(postgres.glob, 'glob', lambda pattern: [])
    with pytest.raises(postgres.PostgresUnavailable, match='postgresql'):
        postgres.find_binaries()
