"""All ``m01.remote.*`` settings, parsed in one place.

``parse_settings(settings)`` turns the application's settings (strings
from an ini file, or already typed values from Python) into one frozen
``RemoteSettings``. Every value is typed and checked, and an unknown
``m01.remote.*`` key is an error: a misspelt option silently ignored is
worse than a site that refuses to start.
"""
import dataclasses
import os
import urllib.parse

from pyramid.exceptions import ConfigurationError

from m01.remote.settingvalues import (
    read_async_limit,
    read_batch_size,
    read_boolean,
    read_collection_prefix,
    read_database,
    read_days,
    read_job_query,
    read_kind,
    read_logout_url,
    read_max_jobs_per_child,
    read_max_threads,
    read_metrics,
    read_period,
    read_positive_seconds,
    read_queues,
    read_read_preference,
    read_route_prefix,
    read_seconds,
    read_text,
    read_uri,
    read_wakeup,
    read_write_concern,
)

PREFIX = 'm01.remote.'

#: Seconds a call to the server may wait for an answer by default: far
#: above the change stream's await (1 s) and an outcome of a few hundred
#: kilobytes on a slow link; below a third of the default lease (60 s),
#: so that a renewal stuck on a dead connection gives up and is tried
#: again on a new one before the leases it renews expire.
SOCKET_TIMEOUT = 20.0
#: Seconds opening a connection (and the driver's check of the server,
#: which uses this as its timeout) may take by default.
CONNECT_TIMEOUT = 10.0
#: Seconds a call waits for a server to send it to by default: fail
#: within seconds when the server is down, not after pymongo's 30 s.
SERVER_SELECTION_TIMEOUT = 5.0


class SettingsError(ConfigurationError):
    """One or more ``m01.remote.*`` settings are wrong."""


def default_max_threads():
    return os.cpu_count() or 1


@dataclasses.dataclass(frozen=True)
class RemoteSettings:
    """The typed ``m01.remote.*`` settings of one application."""

    uri: str = 'mongomock://'
    database: str = 'm01remote'
    collection_prefix: str = 'r'
    name: str = 'root'
    worker: str = 'simple'
    worker_wait_time: float = 1.0
    worker_max_threads: int = dataclasses.field(
        default_factory=default_max_threads)
    worker_job_query: dict = None
    worker_batch_size: int = None
    worker_queues: dict = None
    worker_max_processes: int = dataclasses.field(
        default_factory=default_max_threads)
    worker_max_jobs_per_child: int = None
    worker_kill_grace: float = 5.0
    worker_async_limit: int = 100
    tracing: bool = True
    lease_time: float = 60.0
    start_worker: bool = False
    start_scheduler: bool = False
    scheduler_wait_time: float = 1.0
    route_prefix: str = '/remote'
    permission: str = 'm01.remote.manage'
    pages: bool = True
    stats_retention_days: int = 8
    retention_completed: float = 24 * 3600.0
    retention_error: float = 7 * 24 * 3600.0
    retention_cancelled: float = 7 * 24 * 3600.0
    metrics: str = 'false'
    wakeup: str = 'auto'
    write_concern: str | int = 'majority'
    read_preference: str = 'primary'
    socket_timeout: float = SOCKET_TIMEOUT
    connect_timeout: float = CONNECT_TIMEOUT
    server_selection_timeout: float = SERVER_SELECTION_TIMEOUT
    logout_url: str = None

    @property
    def embedded(self):
        """Whether the store is the in-memory one only this process sees.
        """
        return urllib.parse.urlsplit(self.uri).scheme == 'mongomock'

    @property
    def route_pattern(self):
        # '/remote*traverse' matches /remote, /remote/ and /remote/jobs/1;
        # a prefix of '/' makes the processor the root of the whole site.
        if self.route_prefix == '/':
            return '/*traverse'
        return self.route_prefix + '*traverse'

    @property
    def timeouts(self):
        """The timeouts ``store.connect`` takes, in seconds."""
        return {'socketTimeout': self.socket_timeout,
                'connectTimeout': self.connect_timeout,
                'serverSelectionTimeout': self.server_selection_timeout}

    @property
    def retention(self):
        """How long finished jobs are kept by final status (seconds, None
        for ever): ``JobRetention.periods``."""
        return {'completed': self.retention_completed,
                'error': self.retention_error,
                'cancelled': self.retention_cancelled}

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)


# Parsers take the raw value and return the typed one or raise ValueError
# with a message that completes "m01.remote.<key> = <value>: ...".

#: setting key (after the prefix) -> (RemoteSettings field, parser)
OPTIONS = {
    'uri': ('uri', read_uri),
    'database': ('database', read_database),
    'collection_prefix': ('collection_prefix', read_collection_prefix),
    'name': ('name', read_text),
    'worker': ('worker', read_kind),
    'worker.wait_time': ('worker_wait_time', read_seconds),
    'worker.max_threads': ('worker_max_threads', read_max_threads),
    'worker.job_query': ('worker_job_query', read_job_query),
    'worker.batch_size': ('worker_batch_size', read_batch_size),
    'worker.queues': ('worker_queues', read_queues),
    'worker.max_processes': ('worker_max_processes', read_max_threads),
    'worker.max_jobs_per_child': ('worker_max_jobs_per_child',
                                  read_max_jobs_per_child),
    'worker.kill_grace': ('worker_kill_grace', read_seconds),
    'worker.async_limit': ('worker_async_limit', read_async_limit),
    'tracing': ('tracing', read_boolean),
    'lease_time': ('lease_time', read_positive_seconds),
    'start_worker': ('start_worker', read_boolean),
    'start_scheduler': ('start_scheduler', read_boolean),
    'scheduler.wait_time': ('scheduler_wait_time', read_seconds),
    'route_prefix': ('route_prefix', read_route_prefix),
    'permission': ('permission', read_text),
    'pages': ('pages', read_boolean),
    'stats.retention_days': ('stats_retention_days', read_days),
    'retention.completed': ('retention_completed', read_period),
    'retention.error': ('retention_error', read_period),
    'retention.cancelled': ('retention_cancelled', read_period),
    'metrics': ('metrics', read_metrics),
    'wakeup': ('wakeup', read_wakeup),
    'write_concern': ('write_concern', read_write_concern),
    'read_preference': ('read_preference', read_read_preference),
    'socket_timeout': ('socket_timeout', read_positive_seconds),
    'connect_timeout': ('connect_timeout', read_positive_seconds),
    'server_selection_timeout': ('server_selection_timeout',
                                 read_positive_seconds),
    'logout_url': ('logout_url', read_logout_url),
}


def _combination_problems(values, prefix):
    """What is wrong with values that are right one by one."""
    problems = []
    embedded = urllib.parse.urlsplit(
        values.get('uri', RemoteSettings.uri)).scheme == 'mongomock'
    if values.get('wakeup') == 'changestream' and embedded:
        problems.append('%swakeup = changestream: the embedded store has '
                        'no change streams (use auto or poll)' % prefix)
    return problems


def valid_keys(prefix=PREFIX):
    return sorted(prefix + key for key in OPTIONS)


def parse_settings(settings, prefix=PREFIX):
    """Return the ``RemoteSettings`` given by ``settings`` (a mapping).

    Keys outside ``prefix`` are ignored. Raises ``SettingsError`` (a
    ``pyramid.exceptions.ConfigurationError``) naming every unknown key
    and every bad value at once.
    """
    values = {}
    problems = []
    unknown = []
    for key in sorted(k for k in (settings or {}) if k.startswith(prefix)):
        option = OPTIONS.get(key[len(prefix):])
        if option is None:
            unknown.append(key)
            continue
        field, parse = option
        raw = settings[key]
        try:
            values[field] = parse(raw)
        except ValueError as e:
            problems.append('%s = %r: %s' % (key, raw, e))
    problems += _combination_problems(values, prefix)
    if unknown:
        problems.append(
            'unknown setting%s %s; the valid settings are: %s' % (
                's' if len(unknown) > 1 else '', ', '.join(unknown),
                ', '.join(valid_keys(prefix))))
    if values.get('worker') == 'process' and urllib.parse.urlsplit(
            values.get('uri', RemoteSettings.uri)).scheme == 'mongomock':
        problems.append(
            'm01.remote.worker = process: the process worker runs jobs in '
            'child processes, which cannot see the embedded store '
            '(mongomock://); use a MongoDB server, or the simple or multi '
            'worker')
    if problems:
        raise SettingsError('Invalid m01.remote settings:\n  '
                            + '\n  '.join(problems))
    return RemoteSettings(**values)


def get_remote_settings(registry):
    """The ``RemoteSettings`` of ``registry``, parsed once and kept on it.
    """
    parsed = getattr(registry, 'm01_remote_settings', None)
    if parsed is None:
        parsed = parse_settings(getattr(registry, 'settings', None) or {})
        registry.m01_remote_settings = parsed
    return parsed
