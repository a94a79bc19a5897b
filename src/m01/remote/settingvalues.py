"""How each ``m01.remote.*`` setting is read (``settings.OPTIONS``): each
``read_*`` function takes the value as the ini file gives it (text) or as
Python does (typed), and returns it typed and checked, or raises
``ValueError`` saying what it expected."""
import re
import urllib.parse

from pyramid.settings import falsey, truthy

from m01.remote.limits import loadJSON
from m01.remote.queuenames import checkQueueName

STORE_SCHEMES = ('mongomock', 'mongodb', 'mongodb+srv')

# MongoDB refuses these in database names.
_DATABASE_FORBIDDEN = set('/\\. "$*<>:|?\0')
_COLLECTION_PREFIX = re.compile(r'^[A-Za-z0-9_][A-Za-z0-9_.-]*$')
_KIND = re.compile(r'^[A-Za-z0-9_][A-Za-z0-9_.:-]*$')


def read_text(value):
    if not isinstance(value, str):
        raise ValueError('expected text')
    value = value.strip()
    if not value:
        raise ValueError('must not be empty')
    return value


def read_uri(value):
    value = read_text(value)
    scheme = urllib.parse.urlsplit(value).scheme
    if scheme not in STORE_SCHEMES:
        raise ValueError(
            'use mongodb://host:port/ for a MongoDB server or mongomock:// '
            'for the embedded in-memory store')
    return value


def read_database(value):
    value = read_text(value)
    bad = sorted(_DATABASE_FORBIDDEN.intersection(value))
    if bad or len(value) > 63:
        raise ValueError('a MongoDB database name has at most 63 characters '
                         'and none of / \\ . " $ * < > : | ? or spaces')
    return value


def read_collection_prefix(value):
    value = read_text(value)
    if not _COLLECTION_PREFIX.match(value) or value.startswith('system.'):
        raise ValueError('use letters, digits, "_", "-" or "." and do not '
                         'start with "system."')
    return value


def read_kind(value):
    value = read_text(value)
    if not _KIND.match(value):
        raise ValueError('a worker kind is a name such as simple or multi')
    return value


def read_boolean(value):
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in truthy:
        return True
    if isinstance(value, str) and value.strip().lower() in falsey:
        return False
    raise ValueError('expected true or false')


def read_number(value, kind):
    if isinstance(value, bool):
        raise ValueError('expected a number')
    try:
        return kind(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError, OverflowError):
        raise ValueError('expected %s' % (
            'an integer' if kind is int else 'a number'))


def read_seconds(value):
    value = read_number(value, float)
    if not value >= 0 or value == float('inf'):
        raise ValueError('expected a number of seconds >= 0')
    return value


def read_positive_seconds(value):
    value = read_seconds(value)
    if value == 0:
        raise ValueError('expected a number of seconds > 0')
    return value


def read_max_threads(value):
    if isinstance(value, float):
        raise ValueError('expected an integer')
    value = read_number(value, int)
    if value < 1:
        raise ValueError('expected an integer >= 1')
    return value


def read_batch_size(value):
    if value is None or isinstance(value, str) and \
            value.strip().lower() in ('', 'auto'):
        return None     # sized by the worker
    if isinstance(value, float):
        raise ValueError('expected an integer')
    value = read_number(value, int)
    if not 1 <= value <= 1000:
        raise ValueError('expected an integer from 1 to 1000')
    return value


def read_async_limit(value):
    if isinstance(value, float):
        raise ValueError('expected an integer')
    value = read_number(value, int)
    if not 0 <= value <= 100000:
        raise ValueError('expected an integer from 0 to 100000')
    return value
def read_queues(value):
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
        queues[name] = read_max_threads(threads.strip()) if threads else None
    return queues or None


def read_max_jobs_per_child(value):
    if value is None or isinstance(value, str) and not value.strip():
        return None     # no limit
    return read_max_threads(value)


def read_job_query(value):
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


def read_days(value):
    if isinstance(value, float):
        raise ValueError('expected a whole number of days')
    value = read_number(value, int)
    if not 1 <= value <= 3660:
        raise ValueError('expected a whole number of days from 1 to 3660')
    return value


#: The units a retention period may be given in, in seconds.
PERIOD_UNITS = {'s': 1, 'm': 60, 'h': 3600, 'd': 24 * 3600, 'w': 7 * 24 * 3600}
#: What keeps finished jobs for ever.
FOREVER = ('forever', 'never')
_PERIOD = re.compile(r'^(\d+(?:\.\d+)?)\s*([smhdw]?)$')


def read_period(value):
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
    value = read_seconds(value)
    if value > 100 * 365 * 24 * 3600:
        raise ValueError('expected at most a century (or forever)')
    return value


METRICS = ('false', 'pages', 'public')


def read_metrics(value):
    if value is False:
        return 'false'
    if not isinstance(value, str) or value.strip().lower() not in METRICS:
        raise ValueError('expected false (no metrics), pages (behind the '
                         "pages' permission) or public (no permission)")
    return value.strip().lower()


WAKEUPS = ('auto', 'changestream', 'poll')


def read_wakeup(value):
    value = read_text(value)
    if value not in WAKEUPS:
        raise ValueError('expected one of %s' % ', '.join(WAKEUPS))
    return value


def read_write_concern(value):
    if isinstance(value, str) and value.strip() == 'majority':
        return 'majority'
    if isinstance(value, float):
        value = 'not an integer'
    try:
        members = read_number(value, int)
    except ValueError:
        members = 0
    if members < 1:
        raise ValueError('expected majority or a number of members >= 1')
    return members


#: As MongoDB spells them (``m01.remote.store.cluster`` has the objects).
READ_PREFERENCES = ('primary', 'primaryPreferred', 'secondary',
                    'secondaryPreferred', 'nearest')


def read_read_preference(value):
    value = read_text(value)
    for name in READ_PREFERENCES:
        if value.lower() == name.lower():
            return name
    raise ValueError('expected one of %s' % ', '.join(READ_PREFERENCES))


def read_route_prefix(value):
    value = read_text(value)
    if not value.startswith('/') or '*' in value or '{' in value:
        raise ValueError('expected a URL path such as /remote')
    return value if value == '/' else value.rstrip('/')


def read_logout_url(value):
    if value is None or isinstance(value, str) and not value.strip():
        return None     # the site has no logout the pages could offer
    value = read_text(value)
    parts = urllib.parse.urlsplit(value)
    local = value.startswith('/') and not value.startswith('//') \
        and not parts.scheme and not parts.netloc
    remote = parts.scheme in ('http', 'https') and parts.netloc
    if not (local or remote) or any(char.isspace() or char in '"<>\\'
                                    for char in value):
        raise ValueError('expected the URL of the site\'s logout, a path '
                         'such as /logout or an http(s) URL')
    return value
