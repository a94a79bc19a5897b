"""What the throw-away MongoDB-wire servers of the tests share.

``scratch_database(uri)`` gives a uniquely named database on a server for
a ``with`` block and drops it at the end; ``unique_database_name()``
names one that no other test of this or another process uses.

``support.javaserver`` starts the throw-away server (mongo-java-server)
with this module's helpers: the cache, the build lock, the bounded build
step, the wait for ``ping`` and the process handling of
``ServerProcess``.
"""
import contextlib
import fcntl
import itertools
import os
import pathlib
import re
import signal
import socket
import subprocess
import time

import pymongo
import pymongo.errors

from m01.remote import store

#: Seconds a terminated server may take to exit before it is killed.
STOP_TIMEOUT = 10

_counter = itertools.count(1)


class ServerUnavailable(RuntimeError):
    """A throw-away server could not be found, built or started."""


def unique_database_name(prefix='m01test'):
    """A database name no other test of this or another process uses."""
    return '%s_%d_%d' % (prefix, os.getpid(), next(_counter))


def cache_root():
    """The per-user directory of what the test servers build."""
    base = os.environ.get('XDG_CACHE_HOME') or os.path.join(
        os.path.expanduser('~'), '.cache')
    return pathlib.Path(base) / 'm01.remote'


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


def _wait_for_ping(process, uri, timeout, name, error):
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


def _run(command, cwd, timeout, error, env=None):
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
    with open(path, 'w') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
