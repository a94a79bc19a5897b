"""A throw-away mongo-java-server for tests, benchmarks and scripts.

The real MongoDB-wire server of the tests, for the path a MongoDB
deployment takes: mongo-java-server runs each operation on a collection
under one lock, so ``find_one_and_update`` is atomic and unique indexes
hold. ``java_server()`` starts one on a free loopback port and yields
its ``mongodb://`` URI; leaving the ``with`` block stops it::

    from support.javaserver import java_server

    with java_server() as uri:
        ...

The data is in memory unless ``backend='h2'`` keeps it in an H2 file.
Other indexes than unique ones are accepted and not built (a sorted query
reads the whole collection); a unique index ignores its
``partialFilterExpression`` and holds over the whole collection; TTL
indexes remove nothing; there are no sessions, so no transactions.

``oplog=True`` keeps an oplog, for a collection's ``watch()`` (a
database's delivers no events, the client's is refused). Give ``watch()``
a ``start_at_operation_time``: the server's replies carry no
``operationTime`` to start from. Its change events fall short of
MongoDB's: an update's ``documentKey`` is the update (``{'$set': ...}``),
not the document's ``_id``, and the ``find_one_and_*`` methods emit no
event at all.

The server runs in a small launcher of ours (``mongojava/``, a Maven
project), built once with Maven into ``~/.cache/m01.remote/mongojava``
(``$XDG_CACHE_HOME`` is honoured), under a directory named after the
library's version and a hash of the launcher's sources, so that an edited
launcher is built again. The first build fetches the libraries from Maven
Central; later ones need no network.

``python -m support.javaserver`` runs a server until interrupted and
prints its URI; ``--oplog`` and ``--h2 PATH`` as above, ``--build`` only
builds the launcher and prints its path.
"""
import argparse
import contextlib
import hashlib
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree

from support import testserver

PROJECT_DIR = pathlib.Path(__file__).with_name('mongojava')
JAR_NAME = 'm01-mongojava.jar'
#: One GC thread: the tests share few cores, and a test server's heap is
#: small. (Stopping the JIT at C1 would not start it faster, measured, but
#: makes a sorted claim over 10,000 documents twice as slow.)
JVM_OPTIONS = ('-XX:+UseSerialGC',)

#: Seconds a cold build may take (downloads included).
BUILD_TIMEOUT = 600
#: Seconds the server may take to listen and answer ``ping``.
START_TIMEOUT = 30
STOP_TIMEOUT = testserver.STOP_TIMEOUT

BACKENDS = ('memory', 'h2')

_LISTENING = re.compile(r'^listening (\S+):(\d+)$', re.MULTILINE)


class JavaServerUnavailable(testserver.ServerUnavailable):
    """The launcher could not be built, or the server did not start."""


def library_version(project=PROJECT_DIR):
    """The mongo-java-server version the launcher's ``pom.xml`` names."""
    pom = xml.etree.ElementTree.parse(project / 'pom.xml')
    namespace = {'m': 'http://maven.apache.org/POM/4.0.0'}
    return pom.getroot().findtext(
        'm:properties/m:mongo-java-server.version', namespaces=namespace)


def launcher_key(project=PROJECT_DIR):
    """The library version and a hash of the launcher's sources: a
    changed ``pom.xml`` or Java file gets a build of its own."""
    digest = hashlib.sha256()
    for path in _project_files(project):
        digest.update(str(path.relative_to(project)).encode() + b'\0')
        digest.update(path.read_bytes() + b'\0')
    return '%s-%s' % (library_version(project), digest.hexdigest()[:12])


def cache_dir():
    """The per-user directory holding the built launchers."""
    return testserver.cache_root() / 'mongojava'


def cached_launcher(project=PROJECT_DIR):
    return cache_dir() / launcher_key(project) / JAR_NAME


def find_java():
    """The ``java`` of ``$JAVA_HOME``, else the one on ``PATH``."""
    home = os.environ.get('JAVA_HOME')
    if home and os.access(os.path.join(home, 'bin', 'java'), os.X_OK):
        return os.path.join(home, 'bin', 'java')
    java = shutil.which('java')
    if java is None:
        raise JavaServerUnavailable(
            'Java is not installed (no java on PATH or in JAVA_HOME); '
            'mongo-java-server needs Java 17 or later')
    return java


def find_maven():
    mvn = shutil.which('mvn')
    if mvn is None:
        raise JavaServerUnavailable(
            'Maven is not installed (no mvn on PATH); it builds the '
            'mongo-java-server launcher once')
    return mvn


def find_launcher(build=True, progress=None, project=PROJECT_DIR):
    """Return the path of the built launcher jar.

    Builds it into the cache when it is missing and ``build`` is true.
    Raises JavaServerUnavailable with the reason.
    """
    launcher = cached_launcher(project)
    if launcher.exists():
        return launcher
    if not build:
        raise JavaServerUnavailable('the mongo-java-server launcher is not '
                                    'built (no %s)' % launcher)
    return build_launcher(progress=progress, project=project)


def build_launcher(progress=None, timeout=BUILD_TIMEOUT, project=PROJECT_DIR):
    """Build the launcher into the cache and return the jar's path.

    Maven builds a copy of the project in a scratch directory next to the
    cache entry, which is renamed into place only when complete, so an
    interrupted build leaves nothing a later run would take for a good
    one. Concurrent callers wait on a lock; one builds.
    """
    find_java()  # Maven needs it too; say so before Maven does
    mvn = find_maven()
    target = cached_launcher(project)
    cache_dir().mkdir(parents=True, exist_ok=True)
    with testserver._locked(cache_dir() / '.build.lock'):
        if target.exists():
            return target
        if progress:
            progress('building the mongo-java-server %s launcher with %s '
                     'into %s (first run only)'
                     % (library_version(project), mvn, target.parent))
        started = time.monotonic()
        with tempfile.TemporaryDirectory(prefix='.build-',
                                         dir=cache_dir()) as tmp:
            source = pathlib.Path(tmp) / 'project'
            source.mkdir()
            for path in _project_files(project):
                copy = source / path.relative_to(project)
                copy.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, copy)
            testserver._run(
                [mvn, '--batch-mode', '--quiet', '-Dstyle.color=never',
                 'package'],
                cwd=source, timeout=timeout, error=JavaServerUnavailable)
            staged = pathlib.Path(tmp) / 'launcher'
            staged.mkdir()
            os.replace(source / 'target' / JAR_NAME, staged / JAR_NAME)
            os.replace(source / 'target' / 'lib', staged / 'lib')
            if target.parent.exists():  # a build emptied by hand
                shutil.rmtree(target.parent)
            os.replace(staged, target.parent)
        if progress:
            progress('built the launcher in %.0fs'
                     % (time.monotonic() - started))
    return target


def launcher_command(build=True, progress=None):
    """The command that runs the launcher, options to be appended."""
    java = find_java()
    launcher = find_launcher(build=build, progress=progress)
    return [java, *JVM_OPTIONS, '-jar', str(launcher)]


class JavaServer(testserver.ServerProcess):
    """One mongo-java-server process on a loopback port.

    ``start()`` returns the URI once the server answers ``ping``;
    ``stop()`` ends it with SIGTERM, which closes the store (H2 keeps
    every acknowledged write). ``kill()`` is a crash: the memory backend
    loses everything, H2 the writes of about its last second, which its
    store commits in the background. Stopping and starting again keeps the
    port, and with ``backend='h2'`` the data: in ``h2_file``, by default
    a file in the server's own directory, removed by ``close()``.

    ``command`` replaces the launcher command (tests pass fakes).
    """

    def __init__(self, backend='memory', h2_file=None, oplog=False,
                 port=None, command=None, start_timeout=START_TIMEOUT,
                 progress=None):
        if backend not in BACKENDS:
            raise ValueError('backend is one of %s, not %r'
                             % (', '.join(BACKENDS), backend))
        if h2_file is not None and backend != 'h2':
            raise ValueError("h2_file needs backend='h2'")
        self.backend = backend
        self.oplog = oplog
        self.port = port
        self.command = command
        self.start_timeout = start_timeout
        self.progress = progress
        self.work_dir = pathlib.Path(
            tempfile.mkdtemp(prefix='m01-mongojava-'))
        self.log_path = self.work_dir / 'mongo-java-server.log'
        self.h2_file = None
        if backend == 'h2':
            self.h2_file = pathlib.Path(
                h2_file or self.work_dir / 'data.mv.db')
        self.process = None

    @property
    def uri(self):
        return 'mongodb://127.0.0.1:%d/' % self.port

    def start(self):
        if self.command is None:
            self.command = launcher_command(progress=self.progress)
        command = [*self.command, '--host', '127.0.0.1',
                   '--port', str(self.port or 0), '--exit-on-eof']
        if self.h2_file is not None:
            self.h2_file.parent.mkdir(parents=True, exist_ok=True)
            command += ['--backend', 'h2', '--h2-file', str(self.h2_file)]
        if self.oplog:
            command.append('--oplog')
        deadline = time.monotonic() + self.start_timeout
        self.work_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, 'ab') as log:
            offset = log.tell()
            # In our process group, so that killing the group of a hung
            # test run ends it too; and stdin is a pipe
            # that only we hold, so the launcher (--exit-on-eof) stops when
            # this process dies without stopping it.
            self.process = subprocess.Popen(
                command, stdin=subprocess.PIPE, stdout=log,
                stderr=subprocess.STDOUT)
        try:
            port = self._wait_for_listening(offset, deadline)
            testserver._wait_for_ping(
                self.process, 'mongodb://127.0.0.1:%d/' % port,
                max(deadline - time.monotonic(), 0.1),
                name='mongo-java-server', error=JavaServerUnavailable)
        except JavaServerUnavailable as e:
            self.stop()
            raise JavaServerUnavailable('%s\n%s' % (e, self._describe_log()))
        self.port = port
        return self.uri

    def _wait_for_listening(self, offset, deadline):
        """The port of the launcher's ``listening`` line; with port 0 no
        other process can take it between our choice and its bind."""
        while True:
            with open(self.log_path, 'rb') as log:
                log.seek(offset)
                text = log.read().decode(errors='replace')
            found = _LISTENING.search(text)
            if found:
                return int(found.group(2))
            if self.process.poll() is not None:
                raise JavaServerUnavailable(
                    'mongo-java-server exited with status %s before '
                    'listening' % self.process.returncode)
            if time.monotonic() > deadline:
                raise JavaServerUnavailable(
                    'mongo-java-server did not listen within %ss'
                    % self.start_timeout)
            time.sleep(0.05)

    def close(self):
        self.stop()
        shutil.rmtree(self.work_dir, ignore_errors=True)

    def _describe_log(self):
        return 'Last lines of %s:\n%s' % (self.log_path,
                                          self.log_tail() or '(empty)')


@contextlib.contextmanager
def java_server(backend='memory', h2_file=None, oplog=False, command=None,
                progress=None, start_timeout=START_TIMEOUT):
    """Run a mongo-java-server for the ``with`` block; yield its URI."""
    server = JavaServer(backend=backend, h2_file=h2_file, oplog=oplog,
                        command=command, progress=progress,
                        start_timeout=start_timeout)
    try:
        yield server.start()
    finally:
        server.close()


def _project_files(project):
    """The launcher's sources: ``pom.xml`` and ``src``, no build output."""
    return [project / 'pom.xml'] + sorted(
        path for path in (project / 'src').rglob('*') if path.is_file())


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog='python -m support.javaserver',
        description='Run a throw-away mongo-java-server until interrupted.')
    parser.add_argument('--oplog', action='store_true',
                        help='keep an oplog, for change streams')
    parser.add_argument('--h2', metavar='PATH',
                        help='keep the data in this H2 file (kept after '
                             'the server stops) instead of in memory')
    parser.add_argument('--build', action='store_true',
                        help='only build the launcher, print its path')
    args = parser.parse_args(argv)

    def progress(message):
        print(message, file=sys.stderr, flush=True)

    try:
        if args.build:
            print(find_launcher(progress=progress))
            return 0
        server = JavaServer(backend='h2' if args.h2 else 'memory',
                            h2_file=args.h2, oplog=args.oplog,
                            progress=progress)
        with server:
            print(server.uri, flush=True)
            progress('mongo-java-server is running (%s%s, log in %s); '
                     'Ctrl-C stops it'
                     % (server.h2_file or 'in memory',
                        ', oplog' if args.oplog else '', server.log_path))
            signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
            while server.process.poll() is None:
                time.sleep(0.5)
            progress('mongo-java-server exited:\n%s' % server.log_tail())
            return 1
    except JavaServerUnavailable as e:
        progress(str(e))
        return 1
    except KeyboardInterrupt:
        return 0


if __name__ == '__main__':
    sys.exit(main())
