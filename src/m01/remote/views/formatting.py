"""How the pages write times, durations and short previews.

One format for every time a page shows: a ``<time>`` element whose text
is relative to the page's "now" ("3 min ago", "in 2 h") and whose
``title`` (the tooltip) and ``datetime`` attribute hold the exact UTC
time. The pages' script updates the relative text as time passes
(``m01remote.js``, the same thresholds as ``relative`` here); without it
the text stays as it was when the page was made.

The messages the queue stores start with the stamp ``clock.stamp``
writes (``[2026-12-01T14:26:07+00:00] ...``); ``splitStamp`` takes it
off so that a page shows the message's time in the same format as every
other time.
"""
import datetime
import html
import re

from m01.remote.limits import shorten

UTC = datetime.timezone.utc

#: The exact form of a time, in tooltips and where a page spells it out.
EXACT_FORMAT = '%Y-%m-%d %H:%M:%S UTC'

# (limit in seconds, unit in seconds, singular, plural), the first whose
# limit the distance is below applies. Kept in step with m01remote.js.
_UNITS = (
    (60, 1, '%d s', '%d s'),
    (3600, 60, '%d min', '%d min'),
    (86400, 3600, '%d h', '%d h'),
    (30 * 86400, 86400, '%d day', '%d days'),
    (365 * 86400, 30 * 86400, '%d month', '%d months'),
    (None, 365 * 86400, '%d year', '%d years'),
)

_STAMP = re.compile(
    r'\[(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,6})?'
    r'(?:[+-]\d\d:\d\d|Z)?)\] ?')


class HTML(str):
    """Markup this module made, every piece of text in it escaped:
    Chameleon inserts it as it is (it has ``__html__``)."""

    def __html__(self):
        return self


def _escape(text):
    return html.escape(str(text), quote=True)


def utc(value):
    """A datetime as an aware UTC datetime (naive ones are UTC, as the
    store keeps them); None stays None."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def exact(value):
    """``2026-12-01 14:26:07 UTC``; '' for None."""
    if value is None:
        return ''
    if not isinstance(value, datetime.datetime):
        return str(value)
    return utc(value).strftime(EXACT_FORMAT)


def relative(value, now):
    """How far ``value`` is from ``now`` in a few characters: "now",
    "12 s ago", "in 5 min", "3 days ago". Rounded to the nearest unit
    (1 min 44 s ago is "2 min ago"), so that it agrees with a duration
    beside it."""
    seconds = (utc(value) - utc(now)).total_seconds()
    distance = abs(seconds)
    if distance < 1:
        return 'now'
    for limit, unit, singular, plural in _UNITS:
        count = int(distance / unit + 0.5)
        if limit is None or count * unit < limit:
            text = (singular if count == 1 else plural) % count
            break
    return 'in %s' % text if seconds > 0 else '%s ago' % text


def timeTag(value, now):
    """A ``<time>`` element: the relative time, the exact one in its
    tooltip; a dash for None."""
    if value is None:
        return HTML('<span class="muted">–</span>')
    if not isinstance(value, datetime.datetime):
        return HTML(_escape(value))
    value = utc(value)
    return HTML('<time datetime="%s" title="%s" data-rel="">%s</time>' % (
        _escape(value.isoformat(timespec='milliseconds')),
        _escape(exact(value)), _escape(relative(value, now))))


def duration(seconds):
    """A number of seconds as "250 ms", "12.3 s", "5 min 3 s",
    "2 h 5 min", "3 days 4 h"; '' for None."""
    if seconds is None:
        return ''
    seconds = max(0.0, float(seconds))
    if seconds < 1:
        return '%d ms' % round(seconds * 1000)
    if seconds < 10:
        return '%.1f s' % seconds
    whole = int(round(seconds))
    if whole < 60:
        return '%d s' % whole
    minutes, second = divmod(whole, 60)
    if minutes < 60:
        return '%d min %d s' % (minutes, second) if second else \
            '%d min' % minutes
    hours, minute = divmod(minutes, 60)
    if hours < 24:
        return '%d h %d min' % (hours, minute) if minute else '%d h' % hours
    days, hour = divmod(hours, 24)
    unit = 'day' if days == 1 else 'days'
    return '%d %s %d h' % (days, unit, hour) if hour else \
        '%d %s' % (days, unit)


def between(start, end):
    """The seconds from ``start`` to ``end``, None unless both are set."""
    if start is None or end is None:
        return None
    return (utc(end) - utc(start)).total_seconds()


def splitStamp(message):
    """``(time, text)`` of a stored message: the time its stamp gives
    (None if it has none) and the message without the stamp."""
    message = '' if message is None else str(message)
    match = _STAMP.match(message)
    if match is None:
        return None, message
    text = match.group(1).replace('Z', '+00:00')
    try:
        when = datetime.datetime.fromisoformat(text)
    except ValueError:
        return None, message
    return utc(when), message[match.end():]


def stampedMessage(message, now, limit):
    """A stored message cut at ``limit`` characters, its stamp (if any)
    shown as every time is (``timeTag``) before the text."""
    when, text = splitStamp(message)
    text = _escape(shorten(text, limit))
    if when is None:
        return HTML(text)
    return HTML('%s %s' % (timeTag(when, now), text))


def firstLine(text, limit):
    """The first non-empty line of ``text``, cut at ``limit``
    characters."""
    for line in str(text or '').splitlines():
        if line.strip():
            return shorten(line.strip(), limit)
    return ''


def percent(fraction):
    """A progress fraction (0..1) as a whole percentage, clamped."""
    try:
        value = float(fraction)
    except (TypeError, ValueError):
        return 0
    if value != value:  # NaN
        return 0
    return int(round(min(1.0, max(0.0, value)) * 100))
