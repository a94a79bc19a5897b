"""A throw-away MongoDB-wire server for tests, benchmarks and scripts.

``ferretdb_server()`` starts FerretDB v1 with its SQLite backend on a free
loopback port, with its data in a temporary directory, and yields the
``mongodb://`` URI; leaving the ``with`` block stops the server and
removes the data::

    from support.testserver import ferretdb_server

    with ferretdb_server() as uri:
        ...

The binary is ``ferretdb`` from ``PATH`` when that is a working v1 build,
else the one cached in ``~/.cache/m01.remote/bin`` (``$XDG_CACHE_HOME`` is
honoured), else it is built there with Go from the FerretDB module, once.

``python -m support.testserver`` runs a server until interrupted and
prints its URI (handy for ``M01_REMOTE_TEST_MONGODB_URI``);
``python -m support.testserver --build`` only finds or builds the binary.

``support.javaserver`` starts the other throw-away server, and shares this
module's helpers: the cache, the build lock, the bounded build step, the
wait for ``ping`` and the process handling of ``ServerProcess``.
"""
import argparse
import contextlib
import itertools
import os
import pathlib
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

from m01.remote import store
from m01.remote.jobwrites import isFerretDB

FERRETDB_MODULE = 'github.com/FerretDB/FerretDB'
FERRETDB_VERSION = 'v1.24.2'

#: Seconds a cold build may take (about two minutes on two cores).
BUILD_TIMEOUT = 1200
#: Seconds the server may take to answer ``ping`` after it was started.
START_TIMEOUT = 30
#: Seconds a terminated server may take to exit before it is killed.
STOP_TIMEOUT = 10

_counter = itertools.count(1)


class ServerUnavailable(RuntimeError):
    """A throw-away server could not be found, built or started."""


class FerretDBUnavailable(ServerUnavailable):
    """No FerretDB binary could be found or built, or it did not start."""


def unique_database_name(prefix='m01test'):
    """A database name no other test of this or another process uses."""
    return '%s_%d_%d' % (prefix, os.getpid(), next(_counter))


def is_ferretdb(database):
    """Whether ``database`` (or a client) is served by FerretDB.

    FerretDB v1 runs ``update`` and ``findAndModify`` as a read followed
    by a write by ``_id``, so two clients racing for the same document
    can both match it; only inserts (the unique ``_id``) are atomic there.
    Tests of that guarantee say so with this check.
    """
    import pymongo
    if isinstance(database, (pymongo.MongoClient, store.SerializedClient)):
        # A client: its attributes are databases, so never getattr it.
        database = database.get_database('admin')
    return isFerretDB(database)


def cache_root():
    """The per-user directory of what the test servers build."""
    base = os.environ.get('XDG_CACHE_HOME') or os.path.join(
        os.path.expanduser('~'), '.cache')
    return pathlib.Path(base) / 'm01.remote'


def cache_dir():
    """The per-user directory holding the built FerretDB binary."""
    return cache_root() / 'bin'


def cached_binary():
    return cache_dir() / ('ferretdb-%s' % FERRETDB_VERSION)


def find_ferretdb(build=True, progress=None):
    """Return the path of a working FerretDB v1 binary.

    Looks on ``PATH``, then in the cache; builds into the cache when
    ``build`` is true. Raises FerretDBUnavailable with the reason.
    """
    found = shutil.which('ferretdb')
    if found and _is_usable(found):
        return found
    cached = cached_binary()
    if cached.exists() and _is_usable(cached):
        return str(cached)
    if not build:
        raise FerretDBUnavailable(
            'no FerretDB v1 binary on PATH or in %s' % cache_dir())
    return build_ferretdb(progress=progress)


def build_ferretdb(progress=None, timeout=BUILD_TIMEOUT):
    """Build FerretDB into the cache and return the binary's path.

    A plain ``go install .../cmd/ferretdb@VERSION`` gives a binary that
    panics at start-up: FerretDB embeds ``build/version/version.txt``,
    which its release tooling generates and the published module lacks.
    So the module source is copied out of Go's module cache, the file is
    written, and ``go build`` runs there, which is what FerretDB's own
    build does. Concurrent callers wait on a lock; one builds.
    """
    go = _find_go()
    target = cached_binary()
    target.parent.mkdir(parents=True, exist_ok=True)
    with _locked(target.parent / '.build.lock'):
        if target.exists() and _is_usable(target):
            return str(target)
        if progress:
            progress('building FerretDB %s with %s into %s (first run '
                     'only, a few minutes)' % (FERRETDB_VERSION, go,
                                               target.parent))
        started = time.monotonic()
        with tempfile.TemporaryDirectory(prefix='m01-ferretdb-build-') as tmp:
            source = _module_source(go, pathlib.Path(tmp), timeout)
            (source / 'build' / 'version' / 'version.txt').write_text(
                FERRETDB_VERSION + '\n')
            partial = target.with_name(target.name + '.partial')
            env = dict(os.environ, CGO_ENABLED='0')
            _run([go, 'build', '-buildvcs=false', '-trimpath',
                  '-o', str(partial), './cmd/ferretdb'],
                 cwd=source, env=env,
                 timeout=timeout - (time.monotonic() - started))
            # Renamed only when complete: an interrupted build leaves no
            # binary that a later run would take for a good one.
            os.replace(partial, target)
        if progress:
            progress('built FerretDB in %.0fs' % (time.monotonic() - started))
    if not _is_usable(target):
        raise FerretDBUnavailable('the FerretDB built at %s does not run'
                                  % target)
    return str(target)


class ServerProcess:
    """What the throw-away servers share: a process logging to
    ``log_path``, stopped in bounded time, killed as a crash would.

    Subclasses start ``process`` and define ``start()`` and ``close()``.
    """

    process = None
    log_path = None

    def stop(self, timeout=STOP_TIMEOUT):
        process, self.process = self.process, None
        if process is None:
            return
        try:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout)
        finally:
            _close_pipes(process)

    def kill(self):
        """Kill the server at once, as a crash would."""
        process, self.process = self.process, None
        if process is None:
            return
        try:
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
                process.wait(STOP_TIMEOUT)
        finally:
            _close_pipes(process)

    def log_tail(self, lines=40):
        if self.log_path is None:
            return ''
        try:
            text = self.log_path.read_text(errors='replace')
        except OSError:
            return ''
        return '\n'.join(text.splitlines()[-lines:])

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc_info):
        self.close()


def _close_pipes(process):
    for pipe in (process.stdin, process.stdout, process.stderr):
        if pipe is not None:
            pipe.close()


class FerretDBServer(ServerProcess):
    """One FerretDB process on a loopback port with its own data directory.

    ``start()`` returns once the server answers ``ping``; ``stop()``
    terminates it (and kills it if it does not exit in time). Stopping and
    starting again keeps the data and the port, which is what a script
    simulating a server restart needs.
    """

    def __init__(self, binary=None, data_dir=None, port=None,
                 start_timeout=START_TIMEOUT, progress=None):
        self.binary = binary
        self.port = port
        self.start_timeout = start_timeout
        self.progress = progress
        self._own_dir = data_dir is None
        self.data_dir = pathlib.Path(
            data_dir or tempfile.mkdtemp(prefix='m01-ferretdb-'))
        self.log_path = self.data_dir / 'ferretdb.log'
        self.process = None

    @property
    def uri(self):
        return 'mongodb://127.0.0.1:%d/' % self.port

    def start(self):
        if self.binary is None:
            self.binary = find_ferretdb(progress=self.progress)
        # A free port can be taken by someone else before the server binds
        # it; only a port we picked ourselves is worth another try.
        attempts = 1 if self.port else 3
        for attempt in range(attempts):
            port = self.port or _free_port()
            try:
                self._start_on(port)
            except FerretDBUnavailable:
                if attempt + 1 == attempts or 'address already in use' \
                        not in self.log_tail().lower():
                    raise
            else:
                self.port = port
                return self.uri

    def _start_on(self, port):
        self.data_dir.mkdir(parents=True, exist_ok=True)
        command = [
            str(self.binary),
            '--handler=sqlite',
            '--sqlite-url=file:%s/' % self.data_dir,
            '--state-dir=%s' % self.data_dir,
            '--listen-addr=127.0.0.1:%d' % port,
            '--debug-addr=-',
            '--telemetry=disable',
        ]
        # The server stays in our process group, so that killing the group
        # of a hung test run (as CI and ``kill -- -PGID`` do) ends it too
        # instead of leaving it running, orphaned.
        with open(self.log_path, 'ab') as log:
            self.process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT)
        try:
            _wait_for_ping(self.process, 'mongodb://127.0.0.1:%d/' % port,
                           self.start_timeout)
        except FerretDBUnavailable as e:
            self.stop()
            raise FerretDBUnavailable('%s\n%s' % (e, self._describe_log()))

    def close(self):
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def _describe_log(self):
        tail = self.log_tail()
        hint = ''
        if 'version.txt' in tail:
            hint = ('\nThis binary was built by a plain "go install"; '
                    'remove it from PATH and let m01.remote.testserver '
                    'build a working one.')
        return 'Last lines of %s:\n%s%s' % (self.log_path, tail or
                                            '(empty)', hint)


@contextlib.contextmanager
def ferretdb_server(binary=None, progress=None, start_timeout=START_TIMEOUT):
    """Run a FerretDB server for the ``with`` block; yield its URI."""
    server = FerretDBServer(binary=binary, progress=progress,
                            start_timeout=start_timeout)
    try:
        yield server.start()
    finally:
        server.close()


@contextlib.contextmanager
def scratch_database(uri, prefix='m01test'):
    """A uniquely named database on the server at ``uri`` for the
    ``with`` block, dropped at its end."""
    client = store.connect(uri)
    name = unique_database_name(prefix)
    try:
        yield client[name]
    finally:
        client.drop_database(name)
        client.close()


@contextlib.contextmanager
def server_uri(uri=None):
    """For benchmarks: yield ``uri`` when one is given, else the URI of a
    throw-away FerretDB run for the ``with`` block, reporting its start
    on stderr."""
    if uri:
        yield uri
        return
    with ferretdb_server(progress=lambda message: print(
            message, file=sys.stderr, flush=True)) as started:
        print('FerretDB at %s' % started, flush=True)
        yield started


def _wait_for_ping(process, uri, timeout, name='FerretDB',
                   error=FerretDBUnavailable):
    import pymongo
    import pymongo.errors

    deadline = time.monotonic() + timeout
    client = pymongo.MongoClient(
        uri, serverSelectionTimeoutMS=250, connectTimeoutMS=250)
    try:
        while True:
            if process.poll() is not None:
                raise error('%s exited with status %s before answering ping'
                            % (name, process.returncode))
            try:
                client.admin.command('ping')
                return
            except pymongo.errors.PyMongoError as e:
                if time.monotonic() > deadline:
                    raise error('%s did not answer ping at %s within %ss: %s'
                                % (name, uri, timeout, e))
            time.sleep(0.05)
    finally:
        client.close()


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _is_usable(binary):
    """Whether ``binary`` runs and is FerretDB v1 (v2 has no SQLite)."""
    try:
        result = subprocess.run(
            [str(binary), '--version'], stdin=subprocess.DEVNULL,
            capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0 and 'version: v1.' in result.stdout


def _find_go():
    go = shutil.which('go')
    if go is None and os.access('/usr/local/go/bin/go', os.X_OK):
        go = '/usr/local/go/bin/go'  # the official tarball's place
    if go is None:
        raise FerretDBUnavailable(
            'no ferretdb binary was found and Go is not installed to build '
            'one (put ferretdb v1 on PATH, install Go, or set '
            'M01_REMOTE_TEST_MONGODB_URI)')
    return go


def _module_source(go, tmp, timeout):
    """Copy the FerretDB module's source to ``tmp``, writable."""
    import json

    output = _run([go, 'mod', 'download', '-json',
                   '%s@%s' % (FERRETDB_MODULE, FERRETDB_VERSION)],
                  cwd=tmp, timeout=timeout)
    origin = json.loads(output)['Dir']
    source = tmp / 'ferretdb'
    # copyfile, not copy2: the module cache is read-only, the copy must
    # not be.
    shutil.copytree(origin, source, copy_function=shutil.copyfile)
    for path in itertools.chain([source], source.rglob('*')):
        if path.is_dir():
            path.chmod(0o755)
    return source


def _run(command, cwd, timeout, env=None, error=FerretDBUnavailable):
    """Run a build step; raise ``error`` with the tail of its output."""
    try:
        result = subprocess.run(
            command, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
            capture_output=True, text=True, timeout=max(timeout, 1))
    except subprocess.TimeoutExpired:
        raise error('%s timed out after %ss'
                    % (' '.join(command), int(timeout)))
    except OSError as e:
        raise error('%s could not run: %s' % (command[0], e))
    if result.returncode != 0:
        # Maven colours its output even in batch mode.
        output = _ANSI_ESCAPE.sub('', result.stdout + result.stderr)
        tail = '\n'.join(output.splitlines()[-30:])
        raise error('%s failed with status %d:\n%s' % (
            ' '.join(command), result.returncode, tail))
    return result.stdout


_ANSI_ESCAPE = re.compile(r'\x1b\[[0-9;]*[A-Za-z]')


@contextlib.contextmanager
def _locked(path):
    import fcntl

    with open(path, 'w') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog='python -m support.testserver',
        description='Run a throw-away FerretDB server until interrupted.')
    parser.add_argument('--build', action='store_true',
                        help='only find or build the binary, print its path')
    args = parser.parse_args(argv)

    def progress(message):
        print(message, file=sys.stderr, flush=True)

    try:
        if args.build:
            print(find_ferretdb(progress=progress))
            return 0
        with FerretDBServer(progress=progress) as server:
            print(server.uri, flush=True)
            progress('FerretDB is running (data in %s); Ctrl-C stops it'
                     % server.data_dir)
            signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
            while server.process.poll() is None:
                time.sleep(0.5)
            progress('FerretDB exited:\n%s' % server.log_tail())
            return 1
    except FerretDBUnavailable as e:
        progress(str(e))
        return 1
    except KeyboardInterrupt:
        return 0


if __name__ == '__main__':
    sys.exit(main())
