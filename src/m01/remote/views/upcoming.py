"""A scheduler item's next runs, in its own time zone and in UTC, with a
note on the days daylight saving time changes the clock; and the call
before the next one, whose job the page links to.

The runs are computed by the item itself (``nextAfter``), as the
scheduler computes them; this module only says what they mean on the
wall clock.
"""
import datetime
import zoneinfo

from m01.remote import interfaces
from m01.remote.views.cronwords import clockFields

UTC = datetime.timezone.utc
#: How many runs a page shows.
RUNS = 5
#: How far back the call before the next one is looked for, and how many
#: calls of a dense schedule are stepped through to find it.
LOOK_BACK = datetime.timedelta(days=400)
MAX_STEPS = 5000


def _zone(item):
    name = getattr(item, 'timezone', None)
    if not name or name == 'UTC':
        return None
    return zoneinfo.ZoneInfo(name)


def offsetText(offset):
    """A UTC offset as "UTC+01:00"."""
    minutes = int(offset.total_seconds() // 60)
    sign = '+' if minutes >= 0 else '-'
    return 'UTC%s%02d:%02d' % (sign, abs(minutes) // 60, abs(minutes) % 60)


def _transition(zone, lo, hi):
    """The first instant in (lo, hi] whose offset is hi's (bisection, to
    the second); lo and hi are UTC instants of different offsets."""
    target = hi.astimezone(zone).utcoffset()
    low, high = 0, int((hi - lo).total_seconds())
    while high - low > 1:
        middle = (low + high) // 2
        probe = lo + datetime.timedelta(seconds=middle)
        if probe.astimezone(zone).utcoffset() == target:
            high = middle
        else:
            low = middle
    return lo + datetime.timedelta(seconds=high)


def clockChange(zone, day):
    """How the clock changes on the local ``day``, or None: ``(before,
    after, wall time before the change, wall time after it)``."""
    start = datetime.datetime.combine(day, datetime.time(), tzinfo=zone)
    end = start + datetime.timedelta(days=1)
    lo, hi = start.astimezone(UTC), end.astimezone(UTC)
    before, after = lo.astimezone(zone).utcoffset(), \
        hi.astimezone(zone).utcoffset()
    if before == after:
        return None
    instant = _transition(zone, lo, hi)
    wallBefore = (instant.astimezone(zone) - (after - before)).replace(
        tzinfo=None)
    wallAfter = instant.astimezone(zone).replace(tzinfo=None)
    return before, after, wallBefore, wallAfter


def _hhmm(value):
    return value.strftime('%H:%M')


def _moved(schedule, local, wallAfter):
    """Whether a run at ``local`` is one moved out of the spring gap: at
    its end, at a time the item does not list."""
    if local.replace(tzinfo=None) != wallAfter:
        return False
    if schedule.keeps_time:
        return True
    minutes, hours = clockFields(schedule)
    return local.hour not in hours or local.minute not in minutes


def dstNote(item, when, zone):
    """What the clock change on the day of the run ``when`` means for it,
    or ''."""
    local = when.astimezone(zone)
    change = clockChange(zone, local.date())
    if change is None:
        return ''
    before, after, wallBefore, wallAfter = change
    note = 'The clocks change this day (%s to %s).' % (
        offsetText(before), offsetText(after))
    other = local.replace(fold=1 - local.fold)
    repeated = other.utcoffset() != local.utcoffset()
    schedule = item.schedule
    if after > before and not schedule.real_time and \
            _moved(schedule, local, wallAfter):
        note += (' Local times from %s to %s do not exist; this run is at '
                 'the first minute after them.'
                 % (_hhmm(wallBefore), _hhmm(wallAfter - datetime.timedelta(
                     minutes=1))))
    elif repeated and schedule.real_time:
        note += (' The hour from %s comes twice; this is its %s time.'
                 % (_hhmm(wallAfter), 'second' if local.fold else 'first'))
    elif repeated:
        note += (' %s comes twice; it runs once, the first time.'
                 % _hhmm(local))
    return note


def nextRuns(item, count=RUNS):
    """The item's next ``count`` runs (none while it is inactive): each
    ``{'utc', 'local', 'localText', 'utcText', 'offset', 'note'}``,
    ``local`` None for UTC (``localText`` is then the UTC time)."""
    when = item.nextCallTime
    if when is None or not item.active:
        return []
    zone = _zone(item)
    runs = []
    for _index in range(count):
        local = when.astimezone(zone) if zone is not None else None
        shown = local or when
        runs.append({
            'utc': when,
            'local': local,
            'localText': dayAndTime(shown),
            # The UTC date only where it is not the local one.
            'utcText': _hhmm(when) if shown.date() == when.date()
            else dayAndTime(when),
            'offset': offsetText(local.utcoffset()) if local else 'UTC',
            'note': dstNote(item, when, zone) if zone is not None else '',
        })
        when = item.nextAfter(when)
    return runs


def dayAndTime(value):
    """"Tue 1 Dec, 16:00": short enough for a phone's table (the year is
    in the exact time's tooltip beside it)."""
    return '%s %d %s, %s' % (value.strftime('%a'), value.day,
                             value.strftime('%b'), _hhmm(value))


def previousCall(item):
    """The call time of a Cron item before its next one (whose job was
    due then), or None: for an inactive item, a Delay (its calls count
    from when each ran, which its schedule cannot tell), or none found.
    """
    following = item.nextCallTime
    if following is None or not interfaces.ICron.providedBy(item):
        return None
    span = datetime.timedelta(minutes=1)
    while True:
        span = min(span, LOOK_BACK)
        found = item.nextAfter(following - span)
        if found < following:
            for _step in range(MAX_STEPS):
                later = item.nextAfter(found)
                if later >= following:
                    return found
                found = later
            return None
        if span == LOOK_BACK:
            return None
        span *= 4
