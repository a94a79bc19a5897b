"""A throw-away PostgreSQL server for tests, benchmarks and scripts.

The site's own database, next to the queue: the tests of a host site on
SQLAlchemy (one-phase and two-phase ``zope.sqlalchemy``) run against a
real PostgreSQL, whose SERIALIZABLE isolation and deferred constraints
refuse a COMMIT. ``postgres_server()`` runs ``initdb`` in a temporary
directory, starts ``postgres`` on a free loopback port (its unix socket
in that directory too, nowhere else) and yields a ``postgresql://`` URI;
leaving the ``with`` block stops the server and removes the directory::

    from support.postgres import postgres_server, scratch_database

    with postgres_server() as uri:
        with scratch_database(uri) as database_uri:
            ...

The binaries (``initdb``, ``postgres``) are found on ``PATH``, else in
the newest ``/usr/lib/postgresql/*/bin`` (Debian's ``postgresql``
package puts them there, off ``PATH``). PostgreSQL refuses to run as
root: under root the server runs as the ``postgres`` user, which owns
the temporary directory; otherwise as the current user.

The server is made for tests: ``fsync`` off (a crash of the machine may
lose it, nothing else), ``max_prepared_transactions`` above zero for
two-phase commit, and the ``postgres`` superuser trusted on loopback.

``python -m support.postgres`` runs a server until interrupted and
prints its URI.
"""
import argparse
import contextlib
import glob
import os
import pathlib
import pwd
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import psycopg
import psycopg.sql

from support import testserver

#: Seconds ``initdb`` may take.
INITDB_TIMEOUT = 120
#: Seconds the server may take to accept connections.
START_TIMEOUT = 30
STOP_TIMEOUT = testserver.STOP_TIMEOUT

#: The superuser ``initdb`` creates, and the account the server runs as
#: under root.
SUPERUSER = 'postgres'
#: Two-phase commit needs this above zero; each open prepared transaction
#: takes one.
MAX_PREPARED_TRANSACTIONS = 64
MAX_CONNECTIONS = 100

BINARIES = ('initdb', 'postgres')

_READY = 'database system is ready to accept connections'
_ADDRESS_IN_USE = re.compile(r'could not bind|address already in use',
                             re.IGNORECASE)


class PostgresUnavailable(testserver.ServerUnavailable):
    """No PostgreSQL binaries were found, or the server did not start."""


def find_binaries():
    """A dict of the paths of ``initdb`` and ``postgres``, from one
    directory: ``PATH``'s when it has both, else the newest
    ``/usr/lib/postgresql/*/bin``. Raises PostgresUnavailable."""
    candidates = []
    initdb = shutil.which('initdb')
    if initdb:
        candidates.append(os.path.dirname(initdb))
    candidates += sorted(glob.glob('/usr/lib/postgresql/*/bin'),
                         key=_version_key, reverse=True)
    for directory in candidates:
        paths = {name: os.path.join(directory, name) for name in BINARIES}
        if all(os.access(path, os.X_OK) for path in paths.values()):
            return paths
    raise PostgresUnavailable(
        'PostgreSQL is not installed (no initdb and postgres on PATH or in '
        '/usr/lib/postgresql/*/bin); install Debian\'s postgresql package')


def _version_key(directory):
    version = os.path.basename(os.path.dirname(directory))
    return tuple(int(part) if part.isdigit() else 0
                 for part in version.split('.'))


def server_account():
    """The account the server runs as: ``postgres`` under root (which
    PostgreSQL refuses), else None (the current user)."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(SUPERUSER)
    except KeyError:
        raise PostgresUnavailable(
            'running as root, and there is no %r user to run PostgreSQL '
            'as (it refuses to run as root)' % SUPERUSER)


class PostgresServer(testserver.ServerProcess):
    """One PostgreSQL server on a loopback port, its cluster in a
    temporary directory.

    ``start()`` runs ``initdb`` the first time, starts the server and
    returns the URI once it accepts connections; ``stop()`` shuts it down
    fast (SIGINT: open sessions are ended, committed data kept);
    ``close()`` stops it and removes the directory. Stopping and starting
    again keeps the data and the port.
    """

    def __init__(self, port=None, start_timeout=START_TIMEOUT,
                 binaries=None, settings=None):
        self.port = port
        self.start_timeout = start_timeout
        self.binaries = binaries
        self.settings = dict(settings or {})
        self.account = None
        self.work_dir = pathlib.Path(tempfile.mkdtemp(prefix='m01-postgres-'))
        self.data_dir = self.work_dir / 'data'
        self.log_path = self.work_dir / 'postgres.log'
        self.process = None

    @property
    def uri(self):
        return 'postgresql://%s@127.0.0.1:%d/postgres' % (SUPERUSER,
                                                          self.port)

    def start(self):
        if self.binaries is None:
            self.binaries = find_binaries()
        self.account = server_account()
        if self.account is not None:
            os.chown(self.work_dir, self.account.pw_uid, self.account.pw_gid)
        if not (self.data_dir / 'PG_VERSION').exists():
            self._initdb()
        # PostgreSQL cannot be given port 0; a free port can be taken by
        # someone else before the server binds it, so one we picked
        # ourselves is worth another try.
        attempts = 1 if self.port else 3
        for attempt in range(attempts):
            port = self.port or testserver._free_port()
            try:
                self._start_on(port)
            except PostgresUnavailable:
                if attempt + 1 == attempts or not _ADDRESS_IN_USE.search(
                        self.log_tail()):
                    raise
            else:
                self.port = port
                return self.uri

    def _initdb(self):
        command = [self.binaries['initdb'], '--pgdata', str(self.data_dir),
                   '--username', SUPERUSER, '--auth', 'trust',
                   '--encoding', 'UTF8', '--locale', 'C', '--no-sync']
        try:
            result = subprocess.run(
                command, cwd=self.work_dir, stdin=subprocess.DEVNULL,
                capture_output=True, text=True, timeout=INITDB_TIMEOUT,
                **self._as_account())
        except subprocess.TimeoutExpired:
            raise PostgresUnavailable('initdb timed out after %ss'
                                      % INITDB_TIMEOUT)
        except OSError as e:
            raise PostgresUnavailable('initdb could not run: %s' % e)
        if result.returncode != 0:
            tail = '\n'.join(
                (result.stdout + result.stderr).splitlines()[-20:])
            raise PostgresUnavailable('initdb failed with status %d:\n%s'
                                      % (result.returncode, tail))

    def _start_on(self, port):
        settings = {
            'listen_addresses': '127.0.0.1',
            'port': port,
            'unix_socket_directories': str(self.work_dir),
            'max_prepared_transactions': MAX_PREPARED_TRANSACTIONS,
            'max_connections': MAX_CONNECTIONS,
            'shared_buffers': '32MB',
            'fsync': 'off',
            'synchronous_commit': 'off',
            'full_page_writes': 'off',
            'logging_collector': 'off',
        }
        settings.update(self.settings)
        command = [self.binaries['postgres'], '-D', str(self.data_dir)]
        for name, value in settings.items():
            command += ['-c', '%s=%s' % (name, value)]
        deadline = time.monotonic() + self.start_timeout
        with open(self.log_path, 'ab') as log:
            offset = log.tell()
            # In our process group, as the other test servers are, so
            # that killing the group of a hung test run ends it too.
            self.process = subprocess.Popen(
                command, cwd=self.work_dir, stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT, **self._as_account())
        try:
            self._wait_until_ready(offset, deadline, port)
        except PostgresUnavailable as e:
            self.stop()
            raise PostgresUnavailable('%s\nLast lines of %s:\n%s' % (
                e, self.log_path, self.log_tail() or '(empty)'))

    def _wait_until_ready(self, offset, deadline, port):
        while True:
            with open(self.log_path, 'rb') as log:
                log.seek(offset)
                text = log.read().decode(errors='replace')
            if _READY in text:
                break
            if self.process.poll() is not None:
                raise PostgresUnavailable(
                    'postgres exited with status %s before accepting '
                    'connections' % self.process.returncode)
            if time.monotonic() > deadline:
                raise PostgresUnavailable(
                    'postgres did not accept connections within %ss'
                    % self.start_timeout)
            time.sleep(0.05)
        with psycopg.connect(host='127.0.0.1', port=port, user=SUPERUSER,
                             dbname='postgres', connect_timeout=5) as conn:
            conn.execute('SELECT 1')

    def _as_account(self):
        """Popen's arguments that run a command as the server's account.
        """
        if self.account is None:
            return {}
        env = dict(os.environ, HOME=self.account.pw_dir,
                   USER=self.account.pw_name, LOGNAME=self.account.pw_name)
        return {'user': self.account.pw_uid, 'group': self.account.pw_gid,
                'extra_groups': [], 'env': env}

    def stop(self, timeout=STOP_TIMEOUT):
        """Fast shutdown (SIGINT): a smart one (SIGTERM) would wait for
        every client to disconnect."""
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout)

    def close(self):
        self.stop()
        shutil.rmtree(self.work_dir, ignore_errors=True)


@contextlib.contextmanager
def postgres_server(start_timeout=START_TIMEOUT):
    """Run a PostgreSQL server for the ``with`` block; yield its URI."""
    server = PostgresServer(start_timeout=start_timeout)
    try:
        yield server.start()
    finally:
        server.close()


def database_uri(uri, name):
    """``uri`` with its database replaced by ``name``."""
    base, _, _ = uri.rpartition('/')
    return '%s/%s' % (base, name)


@contextlib.contextmanager
def scratch_database(uri, prefix='m01test'):
    """A uniquely named database on the server at ``uri`` for the
    ``with`` block (its URI is yielded), dropped at its end, with the
    sessions still connected to it."""
    name = testserver.unique_database_name(prefix)
    with psycopg.connect(uri, autocommit=True) as conn:
        conn.execute(psycopg.sql.SQL('CREATE DATABASE {}').format(
            psycopg.sql.Identifier(name)))
    try:
        yield database_uri(uri, name)
    finally:
        with psycopg.connect(uri, autocommit=True) as conn:
            conn.execute(psycopg.sql.SQL(
                'DROP DATABASE IF EXISTS {} WITH (FORCE)').format(
                    psycopg.sql.Identifier(name)))


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog='python -m support.postgres',
        description='Run a throw-away PostgreSQL server until interrupted.')
    parser.parse_args(argv)

    def progress(message):
        print(message, file=sys.stderr, flush=True)

    try:
        with PostgresServer() as server:
            print(server.uri, flush=True)
            progress('PostgreSQL is running (cluster in %s); Ctrl-C stops '
                     'it' % server.data_dir)
            signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
            while server.process.poll() is None:
                time.sleep(0.5)
            progress('postgres exited:\n%s' % server.log_tail())
            return 1
    except PostgresUnavailable as e:
        progress(str(e))
        return 1
    except KeyboardInterrupt:
        return 0


if __name__ == '__main__':
    sys.exit(main())
