"""Processes and bounded waits for the fault scenarios (``faults.py``).

A ``Run`` is one scenario: a uniquely named database on the server, the
ini files of its processes (each the ``support.faults.app`` application), the
``m01remote`` processes it started, and the driver's own processor
(loaded from the same ini file, as a site would load it). ``close()``
stops every process it started, even stopped or hung ones, and drops the
database. Every wait here is bounded.
"""
import datetime
import os
import signal
import socket
import subprocess
import sys
import time

import transaction

from m01.remote import store
from m01.remote.console import load_processor
from support.faults.audit import stuckJobs, unfinished
from support.inifile import pasteIni
from support.testserver import unique_database_name

#: The directory holding the ``support`` package: on ``PYTHONPATH`` of
#: every process a scenario starts, which load ``support.faults.app``.
TESTS = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
#: How to run the producer process (as a module: a script's directory
#: would be first on its ``sys.path``).
FAULT_WORKER = ('-m', 'support.faults.worker')
#: Seconds added to every recovery bound for a busy server's latency.
LATENCY = 10.0

#: Seconds a process may take to exit after SIGTERM before it is killed.
PROCESS_STOP_TIMEOUT = 60.0

class ScenarioTimeout(Exception):
    """A condition a scenario waited for did not come within its bound."""


def waitFor(condition, timeout, what, interval=0.2):
    """Poll ``condition`` until it returns a true value (returned) or
    ``timeout`` seconds passed (``ScenarioTimeout``)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise ScenarioTimeout('%s did not happen within %.0f s'
                                  % (what, timeout))
        time.sleep(interval)


def commandPrefix():
    """How to run ``m01remote``: the installed script next to this
    Python when there is one, else its module."""
    script = os.path.join(os.path.dirname(sys.executable), 'm01remote')
    if os.access(script, os.X_OK):
        return [script]
    return [sys.executable, '-m', 'm01.remote.console']


class Process:
    """A process of a scenario, its output going to a log file."""

    def __init__(self, label, args, logPath):
        self.label = label
        self.args = args
        self.logPath = logPath
        env = dict(os.environ, PYTHONUNBUFFERED='1')
        env['PYTHONPATH'] = os.pathsep.join(
            [TESTS] + [p for p in env.get('PYTHONPATH', '').split(os.pathsep)
                      if p])
        self._log = open(logPath, 'wb')
        self.popen = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=self._log,
            stderr=subprocess.STDOUT, env=env)

    @property
    def pid(self):
        return self.popen.pid

    @property
    def alive(self):
        return self.popen.poll() is None

    def signal(self, signum):
        if self.alive:
            self.popen.send_signal(signum)

    def wait(self, timeout):
        """The exit status, or None when still running after timeout."""
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def output(self):
        with open(self.logPath, 'rb') as log:
            return log.read().decode('utf-8', 'replace')

    def stop(self, timeout=PROCESS_STOP_TIMEOUT):
        """SIGCONT (it may be stopped), SIGTERM, then SIGKILL."""
        if self.alive:
            self.signal(signal.SIGCONT)
            self.signal(signal.SIGTERM)
            if self.wait(timeout) is None:
                self.popen.kill()
                self.popen.wait(timeout)
        self._log.close()
        return self.popen.returncode


class Run:
    """The database, ini files and processes of one scenario."""

    def __init__(self, uri, workdir, name, **settings):
        self.uri = uri
        self.name = name
        self.workdir = os.path.join(workdir, name)
        os.makedirs(self.workdir, exist_ok=True)
        self.databaseName = unique_database_name('m01faults')
        self.client = store.connect(uri)
        self.database = self.client[self.databaseName]
        self.settings = {
            'm01.remote.uri': uri,
            'm01.remote.database': self.databaseName,
            'm01.remote.worker': 'multi',
            'm01.remote.worker.max_threads': '4',
            'm01.remote.worker.wait_time': '0.2',
            'm01.remote.scheduler.wait_time': '0.2',
            'm01.remote.lease_time': '60',
            'm01.remote.pages': 'false',
        }
        self.settings.update(settings)
        self.processes = []
        self._closers = []
        self._counter = 0

    def ini(self, label='main', **settings):
        """Write an ini file of the scenario's application; its path."""
        values = dict(self.settings, **settings)
        path = os.path.join(self.workdir, '%s.ini' % label)
        with open(path, 'w') as ini:
            ini.write(pasteIni('call:support.faults.app:main', values))
        return path

    def processor(self, **settings):
        """The driver's processor, from the scenario's own ini file."""
        processor, closer = load_processor(self.ini('driver', **settings))
        self._closers.append(closer)
        return processor

    def start(self, command, *options, ini=None, label=None):
        """Start ``m01remote COMMAND INI``; the ``Process``."""
        self._counter += 1
        label = label or '%s-%d' % (command, self._counter)
        args = commandPrefix() + [command, ini or self.ini()] + list(options)
        process = Process(label, args,
                          os.path.join(self.workdir, label + '.log'))
        self.processes.append(process)
        return process

    def startPython(self, label, *args):
        self._counter += 1
        process = Process(label, [sys.executable] + list(args),
                          os.path.join(self.workdir, label + '.log'))
        self.processes.append(process)
        return process

    def workerId(self, process, name='root'):
        """The worker id the jobs of ``process`` carry (host:pid:name)."""
        return '%s:%d:%s' % (socket.gethostname(), process.pid, name)

    def close(self, drop=True):
        """Stop every process (in parallel), close, drop the database."""
        for process in self.processes:
            if process.alive:
                process.signal(signal.SIGCONT)
                process.signal(signal.SIGTERM)
        for process in self.processes:
            process.stop()
        transaction.abort()
        for closer in reversed(self._closers):
            closer()
        self._closers = []
        if drop:
            try:
                self.client.drop_database(self.databaseName)
            except Exception:  # the server may be down after a failure
                pass
        self.client.close()


class Environment:
    """Where the scenarios run: the server URI, the server itself when
    this run started it, and a directory for ini files and logs."""

    def __init__(self, uri, workdir, server=None):
        self.uri = uri
        self.workdir = workdir
        self.server = server


def now():
    return datetime.datetime.now(datetime.timezone.utc)


def settingsFor(size, **extra):
    settings = {'m01.remote.worker.max_threads': str(size.get('threads', 4)),
                'm01.remote.lease_time': str(size.get('lease', 60))}
    if size.get('batch'):
        settings['m01.remote.worker.batch_size'] = str(size['batch'])
    settings.update({key: str(value) for key, value in extra.items()})
    return settings


def addRecordJobs(processor, count, seconds=0, **input):
    jobids = [processor.addJob('record', dict(input, seconds=seconds,
                                              number=number))
              for number in range(count)]
    transaction.commit()
    return jobids


def waitForCompletion(run, jobids, timeout, what='every job completing',
                      stall=None, interval=1.0):
    """Wait (bounded) until none of ``jobids`` is queued or processing;
    the seconds waited. Gives up early when ``stall`` seconds pass
    without one more job finishing."""
    started = last = time.monotonic()
    left = None
    while True:
        remaining = len(unfinished(run.database, jobids))
        if not remaining:
            return time.monotonic() - started
        if left is None or remaining < left:
            left, last = remaining, time.monotonic()
        waited = time.monotonic() - started
        if waited > timeout or (stall and time.monotonic() - last > stall):
            raise ScenarioTimeout(
                '%s: %d of %d jobs still queued or processing after '
                '%.0f s (%.0f s without progress)' % (
                    what, remaining, len(set(jobids)), waited,
                    time.monotonic() - last))
        time.sleep(interval)


def drain(result, run, jobids, timeout, stall=None, what=None,
          interval=1.0):
    """``waitForCompletion``, a timeout being a problem of ``result``
    (with the reason each job is stuck); the seconds waited or None."""
    try:
        return waitForCompletion(run, jobids, timeout,
                                 what or 'every job completing', stall,
                                 interval)
    except ScenarioTimeout as e:
        stuck = stuckJobs(run.database, jobids)
        result.problems.append('%s; %s' % (e, ', '.join(
            'job %s: %s' % item for item in sorted(stuck.items()))))
        result.stuck.update(stuck)
        reasons = list(result.stuck.values())
        result.details['stuck'] = ','.join(
            '%s:%d' % (reason.replace(' ', '-'), reasons.count(reason))
            for reason in sorted(set(reasons)))
        return None


def stopAll(result, processes, label, timeout=60):
    """SIGTERM ``processes`` together; each must exit 0 in time."""
    for process in processes:
        process.signal(signal.SIGTERM)
    for process in processes:
        status = process.wait(timeout)
        result.check(status == 0, '%s %s exited with %s (log %s)' % (
            label, process.label, status, process.logPath))


def waitServing(processes, timeout=120):
    """Wait (bounded) until every process says it serves: loading the
    application takes seconds on a busy machine."""
    waitFor(lambda: all('serving processor' in p.output()
                        for p in processes), timeout,
            'the processes starting', interval=0.2)


def heldMidRun(run, process, seconds, minimum=1, ignore=()):
    """The jobs ``process`` runs (``{jobid: claim}``) once it runs at
    least ``minimum`` and each of them (but those in ``ignore``) started
    long enough before the end of its ``seconds`` of work that a signal
    sent now finds it working, not storing its outcome."""
    worker = run.workerId(process)
    jobs = list(run.database.rjobs.find(
        {'status': 'processing', 'worker': worker},
        {'picked': 1, 'claim': 1}))
    if len(jobs) < minimum:
        return None
    youngest = now() - datetime.timedelta(seconds=max(seconds - 0.7,
                                                      seconds / 2.0))
    if any(job['picked'] < youngest for job in jobs
           if str(job['_id']) not in ignore):
        return None
    return {str(job['_id']): job['claim'] for job in jobs}
