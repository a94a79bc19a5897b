"""All ``m01.remote.*`` settings, parsed in one place.

``parse_settings(settings)`` turns the application's settings (strings
from an ini file, or already typed values from Python) into one frozen
``RemoteSettings``. Every value is typed and checked, and an unknown
``m01.remote.*`` key is an error: a misspelt option silently ignored is
worse than a site that refuses to start.
"""
import dataclasses
import os
import re
import urllib.parse

from pyramid.exceptions import ConfigurationError
from pyramid.settings import falsey, truthy

from m01.remote.limits import loadJSON
from m01.remote.queuenames import checkQueueName

PREFIX = 'm01.remote.'

STORE_SCHEMES = ('mongomock', 'mongodb', 'mongodb+srv')

# MongoDB refuses these in database names.
_DATABASE_FORBIDDEN = set('/\\. "$*<>:|?\0')
_COLLECTION_PREFIX = re.compile(r'^[A-Za-z0-9_][A-Za-z0-9_.-]*$')
_KIND = re.compile(r'^[A-Za-z0-9_][A-Za-z0-9_.:-]*$')


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

def _text(value):
    if not isinstance(value, str):
        raise ValueError('expected text')
    value = value.strip()
    if not value:
        raise ValueError('must not be empty')
    return value


def _uri(value):
    value = _text(value)
    scheme = urllib.parse.urlsplit(value).scheme
    if scheme not in STORE_SCHEMES:
        raise ValueError(
            'use mongodb://host:port/ for a MongoDB server or mongomock:// '
            'for the embedded in-memory store')
    return value


def _database(value):
    value = _text(value)
    bad = sorted(_DATABASE_FORBIDDEN.intersection(value))
    if bad or len(value) > 63:
        raise ValueError('a MongoDB database name has at most 63 characters '
                         'and none of / \\ . " $ * < > : | ? or spaces')
    return value


def _collection_prefix(value):
    value = _text(value)
    if not _COLLECTION_PREFIX.match(value) or value.startswith('system.'):
        raise ValueError('use letters, digits, "_", "-" or "." and do not '
                         'start with "system."')
    return value


def _kind(value):
    value = _text(value)
    if not _KIND.match(value):
        raise ValueError('a worker kind is a name such as simple or multi')
    return value


def _boolean(value):
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in truthy:
        return True
    if isinstance(value, str) and value.strip().lower() in falsey:
        return False
    raise ValueError('expected true or false')


def _number(value, kind):
    if isinstance(value, bool):
        raise ValueError('expected a number')
    try:
        return kind(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError, OverflowError):
        raise ValueError('expected %s' % (
            'an integer' if kind is int else 'a number'))


def _seconds(value):
    value = _number(value, float)
    if not value >= 0 or value == float('inf'):
        raise ValueError('expected a number of seconds >= 0')
    return value


def _positive_seconds(value):
    value = _seconds(value)
    if value == 0:
        raise ValueError('expected a number of seconds > 0')
    return value


def _max_threads(value):
    if isinstance(value, float):
        raise ValueError('expected an integer')
    value = _number(value, int)
    if value < 1:
        raise ValueError('expected an integer >= 1')
    return value


def _batch_size(value):
    if value is None or isinstance(value, str) and \
            value.strip().lower() in ('', 'auto'):
        return None     # sized by the worker
    if isinstance(value, float):
        raise ValueError('expected an integer')
    value = _number(value, int)
    if not 1 <= value <= 1000:
        raise ValueError('expected an integer from 1 to 1000')
    return value


def _async_limit(value):
    if isinstance(value, float):
        raise ValueError('expected an integer')
    value = _number(value, int)
    if not 0 <= value <= 100000:
        raise ValueError('expected an integer from 0 to 100000')
    return value
def _queues(value):
    """``mail:4, reports, default``: the queues a worker serves, each
    with its own number of threads or (none given) sharing the worker's.
    """
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError('expected queue names, such as "mail:4, reports"')
    queues = {}
    for part in value.replace('\n', ',').split(','):
        part = part.strip()
        if not part:
            continue
        name, _, threads = part.partition(':')
        name = name.strip()
        try:
            checkQueueName(name)
        except ValueError as e:
            raise ValueError(str(e))
        if name in queues:
            raise ValueError('names queue %r twice' % name)
        queues[name] = _max_threads(threads.strip()) if threads else None
    return queues or None


def _max_jobs_per_child(value):
    if value is None or isinstance(value, str) and not value.strip():
        return None     # no limit
    return _max_threads(value)


def _job_query(value):
    if isinstance(value, str):
        if not value.strip():
            return None
        try:
            value = loadJSON(value, 'the filter')
        except ValueError as e:
            raise ValueError('expected a JSON object (%s)' % e)
    if value is not None and not isinstance(value, dict):
        raise ValueError('expected a JSON object such as '
                         '{"name": {"$in": ["echo"]}}')
    return value


def _days(value):
    if isinstance(value, float):
        raise ValueError('expected a whole number of days')
    value = _number(value, int)
    if not 1 <= value <= 3660:
        raise ValueError('expected a whole number of days from 1 to 3660')
    return value


#: The units a retention period may be given in, in seconds.
PERIOD_UNITS = {'s': 1, 'm': 60, 'h': 3600, 'd': 24 * 3600, 'w': 7 * 24 * 3600}
#: What keeps finished jobs for ever.
FOREVER = ('forever', 'never')
_PERIOD = re.compile(r'^(\d+(?:\.\d+)?)\s*([smhdw]?)$')


def _period(value):
    """Seconds, or None for ever: a number of seconds, a number with a
    unit (``90s``, ``30m``, ``12h``, ``7d``, ``2w``) or ``forever``."""
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip().lower()
        if text in FOREVER:
            return None
        match = _PERIOD.match(text)
        if match is None:
            raise ValueError('expected a number of seconds, a number with '
                             'a unit (30m, 12h, 7d, 2w) or forever')
        value = float(match.group(1)) * PERIOD_UNITS[match.group(2) or 's']
    value = _seconds(value)
    if value > 100 * 365 * 24 * 3600:
        raise ValueError('expected at most a century (or forever)')
    return value


METRICS = ('false', 'pages', 'public')


def _metrics(value):
    if value is False:
        return 'false'
    if not isinstance(value, str) or value.strip().lower() not in METRICS:
        raise ValueError('expected false (no metrics), pages (behind the '
                         "pages' permission) or public (no permission)")
    return value.strip().lower()


WAKEUPS = ('auto', 'changestream', 'poll')


def _wakeup(value):
    value = _text(value)
    if value not in WAKEUPS:
        raise ValueError('expected one of %s' % ', '.join(WAKEUPS))
    return value


def _write_concern(value):
    if isinstance(value, str) and value.strip() == 'majority':
        return 'majority'
    if isinstance(value, float):
        value = 'not an integer'
    try:
        members = _number(value, int)
    except ValueError:
        members = 0
    if members < 1:
        raise ValueError('expected majority or a number of members >= 1')
    return members


#: As MongoDB spells them (``m01.remote.store.cluster`` has the objects).
READ_PREFERENCES = ('primary', 'primaryPreferred', 'secondary',
                    'secondaryPreferred', 'nearest')


def _read_preference(value):
    value = _text(value)
    for name in READ_PREFERENCES:
        if value.lower() == name.lower():
            return name
    raise ValueError('expected one of %s' % ', '.join(READ_PREFERENCES))


def _route_prefix(value):
    value = _text(value)
    if not value.startswith('/') or '*' in value or '{' in value:
        raise ValueError('expected a URL path such as /remote')
    return value if value == '/' else value.rstrip('/')


def _logout_url(value):
    if value is None or isinstance(value, str) and not value.strip():
        return None     # the site has no logout the pages could offer
    value = _text(value)
    parts = urllib.parse.urlsplit(value)
    local = value.startswith('/') and not value.startswith('//') \
        and not parts.scheme and not parts.netloc
    remote = parts.scheme in ('http', 'https') and parts.netloc
    if not (local or remote) or any(char.isspace() or char in '"<>\\'
                                    for char in value):
        raise ValueError('expected the URL of the site\'s logout, a path '
                         'such as /logout or an http(s) URL')
    return value


#: setting key (after the prefix) -> (RemoteSettings field, parser)
OPTIONS = {
    'uri': ('uri', _uri),
    'database': ('database', _database),
    'collection_prefix': ('collection_prefix', _collection_prefix),
    'name': ('name', _text),
    'worker': ('worker', _kind),
    'worker.wait_time': ('worker_wait_time', _seconds),
    'worker.max_threads': ('worker_max_threads', _max_threads),
    'worker.job_query': ('worker_job_query', _job_query),
    'worker.batch_size': ('worker_batch_size', _batch_size),
    'worker.queues': ('worker_queues', _queues),
    'worker.max_processes': ('worker_max_processes', _max_threads),
    'worker.max_jobs_per_child': ('worker_max_jobs_per_child',
                                  _max_jobs_per_child),
    'worker.kill_grace': ('worker_kill_grace', _seconds),
    'worker.async_limit': ('worker_async_limit', _async_limit),
    'tracing': ('tracing', _boolean),
    'lease_time': ('lease_time', _positive_seconds),
    'start_worker': ('start_worker', _boolean),
    'start_scheduler': ('start_scheduler', _boolean),
    'scheduler.wait_time': ('scheduler_wait_time', _seconds),
    'route_prefix': ('route_prefix', _route_prefix),
    'permission': ('permission', _text),
    'pages': ('pages', _boolean),
    'stats.retention_days': ('stats_retention_days', _days),
    'retention.completed': ('retention_completed', _period),
    'retention.error': ('retention_error', _period),
    'retention.cancelled': ('retention_cancelled', _period),
    'metrics': ('metrics', _metrics),
    'wakeup': ('wakeup', _wakeup),
    'write_concern': ('write_concern', _write_concern),
    'read_preference': ('read_preference', _read_preference),
    'socket_timeout': ('socket_timeout', _positive_seconds),
    'connect_timeout': ('connect_timeout', _positive_seconds),
    'server_selection_timeout': ('server_selection_timeout',
                                 _positive_seconds),
    'logout_url': ('logout_url', _logout_url),
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
