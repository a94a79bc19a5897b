"""Scheduler items in plain words: "every 15 minutes from 09:00 to 17:59,
Monday to Friday, in Europe/Zurich".

The words follow what the item does, by the rules of
``m01.remote.scheduler.cron`` rather than a naive reading of its fields: an
unrestricted field finer than the finest restricted one is pinned to its
first value (``hour [9]`` alone runs once, at 09:00), and an item
restricting only weekdays or months keeps the time of day of its call
(rule 3), which is said as the time of its next call.
"""
import itertools
import re
import zoneinfo

from m01.remote import interfaces

WEEKDAYS = ('Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday',
            'Saturday', 'Sunday')
MONTHS = ('January', 'February', 'March', 'April', 'May', 'June', 'July',
          'August', 'September', 'October', 'November', 'December')
#: At most this many times of day are listed one by one.
MAX_LISTED_TIMES = 6
_AT_CLOCK = re.compile(r'at \d\d:\d\d')


def groups(values):
    """Sorted values as runs of consecutive ones: [[1, 3], [7, 7]]."""
    found = []
    for value in sorted(values):
        if found and value == found[-1][1] + 1:
            found[-1][1] = value
        else:
            found.append([value, value])
    return found


def sayList(words):
    """['a', 'b', 'c'] as 'a, b and c'."""
    words = list(words)
    if len(words) < 2:
        return ''.join(words)
    return '%s and %s' % (', '.join(words[:-1]), words[-1])


def ordinal(number):
    if 10 <= number % 100 <= 20:
        suffix = 'th'
    else:
        suffix = {1: 'st', 2: 'nd', 3: 'rd'}.get(number % 10, 'th')
    return '%d%s' % (number, suffix)


def _named(values, name, through=' to '):
    """Runs of three or more as 'a to c', the others one by one."""
    words = []
    for first, last in groups(values):
        if last - first >= 2:
            words.append('%s%s%s' % (name(first), through, name(last)))
        else:
            words.extend(name(value) for value in range(first, last + 1))
    return sayList(words)


def clock(hour, minute):
    return '%02d:%02d' % (hour, minute)


def _step(minutes):
    """The step of minutes spread evenly over the hour, or None."""
    if len(minutes) < 2:
        return None
    step = minutes[1] - minutes[0]
    if 60 % step or len(minutes) * step != 60:
        return None
    if any(b - a != step for a, b in itertools.pairwise(minutes)):
        return None
    return step


def _hourSpans(hours):
    return sayList('from %s to %s' % (clock(first, 0), clock(last, 59))
                   for first, last in groups(hours))


def timesOfDay(minutes, hours):
    """The clock part: "every 15 minutes from 09:00 to 17:59", "at 02:30
    and 14:30", "at minute 30 of every hour"."""
    allMinutes, allHours = len(minutes) == 60, len(hours) == 24
    spans = '' if allHours else ' ' + _hourSpans(hours)
    if allMinutes:
        return 'every minute' + spans
    step = _step(minutes)
    if step is not None:
        words = 'every %d minutes' % step
        if minutes[0]:
            words += ' (at %s)' % sayList(':%02d' % m for m in minutes)
        return words + spans
    if not allHours and len(minutes) * len(hours) <= MAX_LISTED_TIMES:
        return 'at ' + sayList(clock(h, m) for h in hours for m in minutes)
    if len(minutes) == 1:
        at = 'at minute %d' % minutes[0]
    else:
        at = 'at minutes %s' % sayList(str(m) for m in minutes)
    return at + ' of every hour' + spans


def _days(schedule):
    dom, dow = schedule.dayOfMonth, schedule.dayOfWeek
    monthDays = ''
    if dom:
        monthDays = 'on the %s of the month' % _named(
            dom, ordinal, through=' to the ')
    weekDays = ''
    if dow:
        if len(dow) == 1:
            weekDays = 'on %ss' % WEEKDAYS[dow[0]]
        elif len(groups(dow)) == 1 and len(dow) >= 3:
            weekDays = _named(dow, WEEKDAYS.__getitem__)
        else:
            weekDays = 'on %s' % _named(dow, WEEKDAYS.__getitem__)
    if dom and dow:
        if schedule.dayMatch == 'any':
            return '%s or %s' % (monthDays, weekDays)
        return '%s when that is %s' % (monthDays, _named(
            dow, lambda d: 'a ' + WEEKDAYS[d], through=' to '))
    return monthDays or weekDays


def _months(months):
    if not months:
        return ''
    found = groups(months)
    if len(found) == 1 and found[0][1] - found[0][0] >= 2:
        return 'from %s to %s' % (MONTHS[found[0][0] - 1],
                                  MONTHS[found[0][1] - 1])
    return 'in %s' % _named(months, lambda m: MONTHS[m - 1])


def _localClock(item, schedule):
    if item is None or item.nextCallTime is None:
        return None
    local = item.nextCallTime
    if schedule.timezone != 'UTC':
        local = local.astimezone(zoneinfo.ZoneInfo(schedule.timezone))
    return clock(local.hour, local.minute)


def clockFields(schedule):
    """The minutes and hours a clock item fires at (rule 2: unrestricted
    fields finer than the finest restricted one are pinned to their
    first value)."""
    fine = schedule.minute or schedule.hour or schedule.dayOfMonth
    minutes = schedule.minute or ([0] if fine else list(range(60)))
    pinned = not schedule.minute and schedule.dayOfMonth
    hours = schedule.hour or ([0] if pinned else list(range(24)))
    return minutes, hours


def describeCron(item):
    """A Cron item's schedule in words, its time zone last."""
    schedule = item.schedule
    days, months = _days(schedule), _months(schedule.month)
    if schedule.keeps_time:
        # Rule 3: the time of day of the call it was scheduled from.
        at = _localClock(item, schedule)
        at = 'at %s' % at if at else 'at the time of day of its first call'
        if schedule.dayOfWeek:
            parts = [days, months, at]
        else:
            parts = ['on the 1st of %s' % _named(
                schedule.month, lambda m: MONTHS[m - 1]), at]
        words = ' '.join(part for part in parts if part)
    else:
        minutes, hours = clockFields(schedule)
        times = timesOfDay(minutes, hours)
        if _AT_CLOCK.match(times) and not days:
            times = 'every day ' + times
        words = ', '.join(part for part in (times, days, months) if part)
    return '%s, in %s' % (words, schedule.timezone)


def describeSeconds(seconds):
    """Every so many seconds, in the largest whole unit."""
    for unit, name in ((86400, 'day'), (3600, 'hour'), (60, 'minute'),
                       (1, 'second')):
        if seconds % unit == 0:
            count = seconds // unit
            return 'every %s' % name if count == 1 else \
                'every %d %ss' % (count, name)
    return 'every %s seconds' % seconds  # pragma: no cover


def describe(item):
    """Any scheduler item's schedule in words."""
    if interfaces.ICron.providedBy(item):
        return describeCron(item)
    return '%s, counted from its last run' % describeSeconds(item.delay)
