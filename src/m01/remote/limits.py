"""Limits on what enters the queue, checked before the work they bound.

Every way in (the Python API, the management pages, the settings) checks
its input here first. A value that would make the JSON parser, the store
or a page do unbounded work is refused with a ``ValueError`` naming the
limit before any of that work starts: JSON nesting is measured without
recursion before ``json.loads`` (or the store, which copies values
recursively) could recurse, and a cron range is checked against its
field's bounds before it is expanded.
"""
import datetime
import itertools
import json
import re

from m01.remote import interfaces
from m01.remote.clock import toBSONTime

#: BSON's document size limit; MongoDB refuses anything larger.
MAX_BSON_SIZE = 16 * 1024 * 1024
#: How deeply lists and objects may nest in a stored value (``[]`` is 1).
#: MongoDB refuses documents nested deeper than 100 levels and a job
#: document wraps its input; Python's JSON parser and the embedded store
#: recurse once or more per level.
MAX_DEPTH = 64
#: The same for a whole document or a factory's settings, which wrap the
#: values given in up to two levels (a document's ``data`` holds the
#: fields a job class declares).
MAX_DOCUMENT_DEPTH = MAX_DEPTH + 2
#: The longest JSON text (in characters) a page or a setting parses.
MAX_JSON_TEXT = MAX_BSON_SIZE

#: The largest request body the pages read: a form holding JSON text of
#: MAX_JSON_TEXT characters, which URL-encoding may make three times
#: longer, and the other fields.
MAX_REQUEST_BODY = 4 * MAX_JSON_TEXT
#: The most fields a form of the pages may hold, counted before it is
#: parsed: the bulk forms send one per job of a page (at most 200) and a
#: few more. Parsing costs time and memory per field, whatever its size.
MAX_FORM_FIELDS = 1000

#: Text fields of scheduler items, in characters.
MAX_NAME = 200
MAX_TITLE = 200
MAX_DESCRIPTION = 2000
#: A cron expression, and one cron field as typed in a form.
MAX_CRON_TEXT = 200
#: The most values a cron field's list holds: the minutes of an hour.
#: A longer list can only repeat values.
MAX_CRON_VALUES = 60
#: IANA time zone names are at most 32 characters long; they are made
#: of these characters, one name per segment, and never ``.`` or ``..``.
MAX_TIMEZONE = 64
TIMEZONE_NAME = re.compile(r'[A-Za-z0-9_+-]+(?:/[A-Za-z0-9_+-]+)*\Z')

#: How much of user text a message quotes.
QUOTED = 80

#: The longest flash message, in characters, and how many bytes (as the
#: session stores them, JSON) the unread ones may take together: a
#: cookie session holds about 4 KB, and unread messages pile up when a
#: client does not follow the redirects.
MAX_FLASH = 200
FLASH_BUDGET = 1500

#: What a page shows of a stored value (input, output), formatted as
#: JSON, in characters; and of each error message and traceback. A page
#: shows the latest MAX_ERRORS_SHOWN errors. Whatever a job holds, its
#: page stays well under 2 MB; the whole values are downloads.
SHOWN_VALUE = 64 * 1024
SHOWN_ERROR = 2 * 1024
SHOWN_TRACEBACK = 8 * 1024
MAX_ERRORS_SHOWN = 10

# What a job document holds, and what its outcomes add.
#
# A job document is refused at ``addJob`` past MAX_JOB_DOCUMENT bytes (its
# input and settings), an output past MAX_OUTPUT bytes ends the job in
# ``error`` saying so, and everything an attempt appends is cut to the
# limits below: whatever its jobs raise, return or log, a job document
# stays within MongoDB's 16 MB, so its failure can always be stored.

#: Characters of an error message stored (``errors``, ``attempts``).
MAX_ERROR_TEXT = 4 * 1024
#: Characters of a traceback stored (``tracebacks``), and of each of its
#: lines; an attempt keeps ATTEMPT_TRACEBACK_TEXT of it.
MAX_TRACEBACK_TEXT = 16 * 1024
MAX_TRACEBACK_LINE = 2 * 1024
ATTEMPT_TRACEBACK_TEXT = 8000
#: The newest errors (with their tracebacks) and attempts a job keeps.
MAX_ERRORS = 25
MAX_ATTEMPTS = 25
#: Log lines a job keeps, the newest ones, and their length (characters);
#: the length of a progress message.
MAX_LOG_LINES = 200
MAX_LOG_LINE = 1000
MAX_PROGRESS_MESSAGE = 500
#: Search terms a job keeps, and their length (``m01.remote.queue.search``).
MAX_TERMS = 100
MAX_TERM_LENGTH = 40
#: Bytes (as BSON) of an output stored.
MAX_OUTPUT = 4 * 1024 * 1024

#: UTF-8 takes at most this many bytes per character.
_CHARACTER_BYTES = 4
#: Room for an entry's BSON framing and the fields an outcome sets beside
#: its texts (times, worker and thread names, status, counters).
_ENTRY_BYTES = 64
_ATTEMPT_BYTES = 1024
_TIMESTAMP = len('[2000-01-01T00:00:00+00:00] ')

#: The most bytes the outcomes of a job add to its document, every
#: character taken to be 4 bytes long: its errors, tracebacks, attempts,
#: log lines, progress, search terms and the fields its outcomes set.
OUTCOME_BYTES = (
    MAX_ERRORS * (
        (MAX_ERROR_TEXT + MAX_TRACEBACK_TEXT) * _CHARACTER_BYTES +
        2 * _ENTRY_BYTES) +
    MAX_ATTEMPTS * (
        (MAX_ERROR_TEXT + ATTEMPT_TRACEBACK_TEXT) * _CHARACTER_BYTES +
        _ATTEMPT_BYTES) +
    MAX_LOG_LINES * ((MAX_LOG_LINE + _TIMESTAMP) * _CHARACTER_BYTES +
                     _ENTRY_BYTES) +
    MAX_PROGRESS_MESSAGE * _CHARACTER_BYTES + _ATTEMPT_BYTES +
    MAX_TERMS * (MAX_TERM_LENGTH * _CHARACTER_BYTES + _ENTRY_BYTES) +
    _ATTEMPT_BYTES)
#: Bytes of a job document (its input, settings and search terms) at
#: ``addJob``, or when its input is changed: what MAX_OUTPUT and
#: OUTCOME_BYTES leave of 16 MB, 8 MB.
MAX_JOB_DOCUMENT = 8 * 1024 * 1024

#: How a text cut in the middle says so.
CUT_MARK = ' [... %d characters cut ...] '

_CONTAINERS = (dict, list, tuple)
# Reading JSON text's brackets in linear time, each step a regular
# expression of the simplest kind: escapes go first (so a string is then
# anything between two quotes), then strings, then all but brackets.
_JSON_ESCAPE = re.compile(r'\\.', re.S)
_JSON_STRING = re.compile(r'"[^"]*"')
_JSON_NOT_BRACKET = re.compile(r'[^\[\]{}]+')
_JSON_DEPTH = {'[': 1, '{': 1, ']': -1, '}': -1}


def shorten(text, limit=QUOTED):
    """``text`` cut to ``limit`` characters, an ellipsis marking a cut."""
    text = str(text)
    if len(text) <= limit:
        return text
    return text[:limit - 1] + '…'


def storableText(value):
    """``value`` as text BSON can store: a string as it is, anything else
    as ``str`` gives it (or a note naming its type when ``str`` raises),
    characters UTF-8 cannot encode (lone surrogates) written as escapes.
    """
    if isinstance(value, str):
        text = str.__str__(value)
    else:
        try:
            text = str(value)
        except Exception as error:
            text = '<%s: str() raised %s>' % (
                type(value).__name__, type(error).__name__)
    try:
        text.encode('utf-8')
    except UnicodeEncodeError:
        text = text.encode('utf-8', 'backslashreplace').decode('utf-8')
    return text


def cutText(text, limit, head=0.5):
    """``text`` (any value, made ``storableText``) at most ``limit``
    characters long: a longer one keeps its start (the fraction ``head``
    of what is kept) and its end, the middle replaced by CUT_MARK saying
    how many characters were cut."""
    return _cutOnly(storableText(text), limit, head)


def _cutOnly(text, limit, head):
    if len(text) <= limit:
        return text
    mark = CUT_MARK % (len(text) - limit)
    while True:
        kept = max(limit - len(mark), 0)
        cut = len(text) - kept
        if CUT_MARK % cut == mark:
            break
        mark = CUT_MARK % cut      # a longer count: cut a little more
    start = int(kept * head)
    return text[:start] + mark + text[len(text) - (kept - start):]


def cutTraceback(text, limit=MAX_TRACEBACK_TEXT, line=MAX_TRACEBACK_LINE):
    """A traceback cut to ``limit`` characters: each line longer than
    ``line`` cut in its middle first (an exception quoting its input),
    then, if still too long, the middle frames (its end, where the error
    is, kept longest)."""
    text = storableText(text)
    if len(text) > line:
        lines = text.splitlines(keepends=True)
        if any(len(each) > line for each in lines):
            text = ''.join(_cutOnly(each, line, 0.5) for each in lines)
    return cutText(text, limit, head=0.25)


def quote(text, limit=QUOTED):
    """User text as a message quotes it: ``repr``, shortened."""
    return shorten(repr(text), limit)


def nestedDeeper(value, limit=MAX_DEPTH):
    """Whether lists, tuples and dicts nest deeper than ``limit`` in
    ``value``. Walks with a stack of its own, never recursing, and stops
    at the first container past the limit (so a value containing itself
    is simply too deep)."""
    if not isinstance(value, _CONTAINERS):
        return False
    stack = [(value, 1)]
    while stack:
        value, level = stack.pop()
        if level > limit:
            return True
        children = value.values() if isinstance(value, dict) else value
        stack.extend((child, level + 1) for child in children
                     if isinstance(child, _CONTAINERS))
    return False


def checkDepth(value, what='The value', limit=MAX_DEPTH):
    """Raise ValueError when ``value`` nests deeper than ``limit``."""
    if nestedDeeper(value, limit):
        raise ValueError('%s: lists or objects are nested more than %d '
                         'levels deep.' % (what, limit))


def jsonNestedDeeper(text, limit=MAX_DEPTH):
    """Whether the JSON ``text`` nests deeper than ``limit``, read from
    its brackets (those inside strings do not count), before any parser
    recurses into it."""
    if text.count('[') + text.count('{') <= limit:
        return False
    # A backslash outside a string, or a string left open, is a syntax
    # error where it stands: the parser stops there, and what this reads
    # differently after it does not matter.
    if '\\' in text:
        text = _JSON_ESCAPE.sub('', text)
    if '"' in text:
        text = _JSON_STRING.sub('', text)
    brackets = _JSON_NOT_BRACKET.sub('', text)
    # The depth the parser would reach: the most brackets open at once.
    return max(itertools.accumulate(map(_JSON_DEPTH.__getitem__, brackets)),
               default=0) > limit


def _refuseConstant(name):
    # Python's parser takes NaN, Infinity and -Infinity, which are not
    # JSON: a value holding one could not be answered as JSON again.
    raise ValueError('%s is not a JSON number' % name)


def _objectOf(what):
    def refuseDuplicates(pairs):
        # Python's parser keeps the last of duplicate names silently; a
        # client sending two means one of them is a mistake.
        value = dict(pairs)
        if len(value) != len(pairs):
            seen = set()
            for name, _ in pairs:
                if name in seen:
                    raise ValueError('%s names %s twice in one object.'
                                     % (what, quote(name)))
                seen.add(name)
        return value
    return refuseDuplicates


def loadJSON(text, what='The JSON text'):
    """Parse JSON ``text`` within the limits, strictly: no ``NaN`` or
    ``Infinity``, no name twice in one object. ValueError (a
    ``json.JSONDecodeError`` for a syntax error) otherwise."""
    if len(text) > MAX_JSON_TEXT:
        raise ValueError('%s has %d characters; at most %d (16 MB) are '
                         'accepted.' % (what, len(text), MAX_JSON_TEXT))
    if jsonNestedDeeper(text):
        raise ValueError('%s: lists or objects are nested more than %d '
                         'levels deep.' % (what, MAX_DEPTH))
    return json.loads(text, parse_constant=_refuseConstant,
                      object_pairs_hook=_objectOf(what))


def checkText(name, value, limit):
    """Raise ValueError when the text ``value`` is longer than ``limit``.
    """
    if isinstance(value, str) and len(value) > limit:
        raise ValueError('%s has %d characters; at most %d are accepted.'
                         % (name, len(value), limit))
    return value


def checkTimezoneName(name):
    """Raise ValueError unless ``name`` can be an IANA time zone name,
    before any file is looked for under it."""
    if not isinstance(name, str) or not name:
        raise ValueError('timezone must be an IANA timezone name, got %s'
                         % quote(name))
    if len(name) > MAX_TIMEZONE or not TIMEZONE_NAME.match(name):
        raise ValueError('timezone %s is not a known IANA timezone name'
                         % quote(name))
    return name

#: The most jobs one job may depend on (the members of a group its
#: callback waits for), and the most jobs one chain or group adds: a
#: waiting job's document lists the ids it still waits for.
MAX_DEPENDENCIES = 10000


# What a job may be given

#: A job's priority lies within these bounds (higher runs first).
MAX_PRIORITY = 10 ** 6
#: The longest timeout, retry delay or delay before a job (seconds): a
#: century, beyond which the datetimes BSON stores end.
MAX_SECONDS = 100 * 365 * 24 * 3600


def checkPriority(value):
    if isinstance(value, bool) or not isinstance(value, int) or \
            not -MAX_PRIORITY <= value <= MAX_PRIORITY:
        raise ValueError('priority must be a whole number from %d to %d, '
                         'not %r' % (-MAX_PRIORITY, MAX_PRIORITY, value))


def dueTime(now, delay=None, at=None):
    """When a job added at ``now`` is due: ``delay`` seconds later, at the
    timezone-aware datetime ``at``, or now."""
    if delay is not None and at is not None:
        raise ValueError('Give a job a delay or a time (at), not both')
    if delay is not None:
        checkSeconds(delay, 'delay')
        return now + datetime.timedelta(seconds=delay)
    if at is not None:
        if not isinstance(at, datetime.datetime) or at.tzinfo is None or \
                at.utcoffset() is None:
            raise ValueError('at must be a timezone-aware datetime, not %r'
                             % (at,))
        if abs((at - now).total_seconds()) > MAX_SECONDS:
            raise ValueError('at must lie within a century of now, not %r'
                             % (at,))
        return toBSONTime(at)
    return now


RETAINED = (interfaces.COMPLETED, interfaces.ERROR, interfaces.CANCELLED)


def checkRetention(periods, what='retention'):
    """``periods`` as a dict of final statuses to seconds or None (for
    ever); ValueError for anything else."""
    unknown = sorted(set(periods) - set(RETAINED), key=str) \
        if isinstance(periods, dict) else [periods]
    if unknown:
        raise ValueError('%s is a dict of %s to seconds (None: for ever); '
                         'not %s' % (what, ', '.join(RETAINED),
                                     ', '.join(map(repr, unknown))))
    for status, period in periods.items():
        checkSeconds(period, '%s[%r]' % (what, status), optional=True)
    return dict(periods)


def checkSeconds(value, what, optional=False, positive=False):
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            not 0 <= value <= MAX_SECONDS or (positive and value == 0):
        raise ValueError('%s must be a number of seconds %s %d, not %r' % (
            what, 'from 0 (excluded) to' if positive else 'from 0 to',
            MAX_SECONDS, value))
