"""Cron arithmetic: when does a cron scheduler item fire next.

Pure calendar arithmetic, no database.  ``CronSchedule`` holds validated
cron fields and computes the next call time directly, jumping month, day,
hour and minute with ``bisect`` (never second by second).

The rules
---------

They reproduce every example of the scheduler specification.  Field values
are read in the item's timezone ("local time", UTC by default); empty lists
mean "any value".

1. *Finest restricted field.*  The first non-empty field in the order
   minute, hour, dayOfMonth, dayOfWeek, month decides the period of the item.
   ``adjustCallTime`` resets a call time to the start of that period (the
   anchor): minute resets the seconds, hour the minutes and seconds,
   dayOfMonth the time of day; dayOfWeek keeps the time of day and month
   resets the day to 1.  The sub-second part is left untouched there; the
   calculation drops it, so call times are whole seconds.

2. *Clock items* (minute, hour or dayOfMonth restricted, or no field at all)
   fire on whole minutes.  Unrestricted fields finer than the finest
   restricted one are pinned to their first value: ``hour [2, 13]`` fires at
   02:00 and 13:00, ``dayOfMonth [2]`` at 00:00 on the 2nd.  Unrestricted
   coarser fields match anything (``minute [0, 10]`` fires every hour) and an
   item without any field fires every minute.  The next call time is the
   first matching minute strictly after the call time.

3. *Calendar items* (only dayOfWeek and/or month restricted) keep the time
   of day of the call time: dayOfWeek items fire on the next matching day
   after the call time's day, month items on the first day of the next
   listed month after the call time's month.  So ``month [1, 2, 5, 12]``
   called at 1970-01-01 00:03 gives 1970-02-01 00:03.

4. All restricted fields must match (``dayMatch='all'``, the
   specification's rule).  ``dayMatch='any'`` is standard cron's rule for an
   expression restricting both day fields: a day matches when its day of
   month OR its weekday does.  dayOfWeek counts from Monday = 0 like
   ``datetime.weekday()``.

5. *Catch-up.*  The next call time is always computed from the call time, so
   an item that was due many times during a downtime fires once, then
   continues on its schedule.

Daylight saving time
--------------------

The fields are matched against local wall-clock time and the result is
stored in UTC.  Where a transition makes a local time special:

* A local time that does not exist (the spring gap, e.g. 02:30 on
  29 Mar 2026 in Europe/Zurich) fires once at the first instant after the
  gap (03:00 local).  Several such times in one gap fire once, and a call
  planned for exactly the end of the gap merges with it.
* A local time that occurs twice (autumn, e.g. 02:30 on 25 Oct 2026 in
  Europe/Zurich) fires once, at its first occurrence.
* Items whose hours are all hours (hourly and minutely items) follow real
  time instead: they skip the wall times that do not exist and fire in both
  occurrences of a repeated hour, so they keep firing every real hour or
  minute across a change, without doubling or skipping one.
* Transitions are assumed to be at least a day apart (true of every IANA
  zone in use).
"""
import bisect
import calendar
import datetime
import zoneinfo

from m01.remote.limits import MAX_CRON_VALUES, checkTimezoneName, quote

UTC = datetime.timezone.utc

#: The cron fields with their inclusive value ranges.
FIELDS = (
    ('minute', 0, 59),
    ('hour', 0, 23),
    ('dayOfMonth', 1, 31),
    ('month', 1, 12),
    ('dayOfWeek', 0, 6),
)
FIELD_NAMES = tuple(name for name, _lo, _hi in FIELDS)
DAY_MATCHES = ('all', 'any')

# The precedence of rule 1, finest first.
_PERIODS = ('minute', 'hour', 'dayOfMonth', 'dayOfWeek', 'month')
_MAX_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_ONE_DAY = datetime.timedelta(days=1)
_ONE_MINUTE = datetime.timedelta(minutes=1)
_EPSILON = datetime.timedelta(microseconds=1)
# The Gregorian calendar repeats every 400 years: every date that can match
# does so within one cycle.
_CYCLE_YEARS = 400
# Resolving local times only loops near daylight saving transitions.
_MAX_RESOLVE_STEPS = 100


def to_utc(value, name='callTime'):
    """Return value as a UTC datetime with BSON's millisecond precision."""
    if not isinstance(value, datetime.datetime):
        raise ValueError('%s must be a datetime, got %r' % (name, value))
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError('%s must be timezone-aware, got %r' % (name, value))
    value = value.astimezone(UTC)
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def check_field(name, values):
    """Return the sorted unique values of a cron field or raise ValueError."""
    lo, hi = dict((n, (a, b)) for n, a, b in FIELDS)[name]
    if values is None:
        return []
    if not isinstance(values, (list, tuple, set, frozenset)):
        raise ValueError('%s must be a list of integers, got %s'
                         % (name, quote(values)))
    if len(values) > MAX_CRON_VALUES:
        raise ValueError('%s has %d values; a cron field takes at most %d'
                         % (name, len(values), MAX_CRON_VALUES))
    for value in values:
        # bool is an int subclass, but True is never a meant minute.
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError('%s must contain integers only, got %s'
                             % (name, quote(value)))
        if not lo <= value <= hi:
            raise ValueError('%s value %r is out of range %d..%d'
                             % (name, value, lo, hi))
    return sorted(set(int(v) for v in values))


def get_timezone(name):
    """Return the ZoneInfo for an IANA name, None for UTC."""
    checkTimezoneName(name)
    if name == 'UTC':
        return None
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        # OSError: a directory of the zone database (America) or a name
        # the file system refuses.
        raise ValueError('timezone %r is not a known IANA timezone name'
                         % name) from None


class CronSchedule:
    """Validated cron fields and their next call time."""

    def __init__(self, minute=(), hour=(), dayOfMonth=(), month=(),
                 dayOfWeek=(), timezone='UTC', dayMatch='all'):
        fields = dict(minute=minute, hour=hour, dayOfMonth=dayOfMonth,
                      month=month, dayOfWeek=dayOfWeek)
        for name in FIELD_NAMES:
            setattr(self, name, check_field(name, fields[name]))
        if dayMatch not in DAY_MATCHES:
            raise ValueError('dayMatch must be one of %r, got %r'
                             % (DAY_MATCHES, dayMatch))
        self.dayMatch = dayMatch
        self.timezone = timezone
        self._tz = get_timezone(timezone)
        self._check_feasible()
        self._months = tuple(self.month or range(1, 13))
        self._dom_set = frozenset(self.dayOfMonth)
        self._dow_set = frozenset(self.dayOfWeek)
        self._any_day = (dayMatch == 'any' and self.dayOfMonth
                         and self.dayOfWeek)
        self.period = next((p for p in _PERIODS if getattr(self, p)), None)
        self.keeps_time = self.period in ('dayOfWeek', 'month')
        fine = self.minute or self.hour or self.dayOfMonth
        # rule 2: unrestricted fields finer than the finest one are pinned
        self._minutes = tuple(self.minute or ([0] if fine else range(60)))
        pin_hour = not self.minute and self.dayOfMonth
        self._hours = tuple(self.hour or ([0] if pin_hour else range(24)))
        self.real_time = not self.keeps_time and len(self._hours) == 24

    def _check_feasible(self):
        if self.dayOfWeek and self.dayMatch == 'any':
            return  # every month has every weekday
        months = self.month or range(1, 13)
        days = self.dayOfMonth or [1]
        if not any(d <= _MAX_DAYS[m - 1] for m in months for d in days):
            raise ValueError(
                'dayOfMonth %r never falls in month %r: the item would '
                'never fire' % (self.dayOfMonth, self.month))

    # calendar search

    def _day_in_month(self, year, month, first):
        """Return the first matching day >= first of a month, or None."""
        weekday1, last = calendar.monthrange(year, month)
        if self.dayOfMonth and not self._any_day:
            candidates = self.dayOfMonth[
                bisect.bisect_left(self.dayOfMonth, first):]
        else:
            candidates = range(first, last + 1)
        for day in candidates:
            if day > last:
                return None
            dom = day in self._dom_set
            dow = (weekday1 + day - 1) % 7 in self._dow_set
            if self._any_day:
                if dom or dow:
                    return day
            elif not self.dayOfWeek or dow:
                return day
        return None

    def _next_date(self, start):
        """Return the first matching date >= start."""
        last_year = min(start.year + _CYCLE_YEARS, datetime.MAXYEAR)
        for year in range(start.year, last_year + 1):
            first_month = start.month if year == start.year else 1
            index = bisect.bisect_left(self._months, first_month)
            for month in self._months[index:]:
                same = year == start.year and month == start.month
                day = self._day_in_month(year, month, start.day if same else 1)
                if day is not None:
                    return datetime.date(year, month, day)
        raise ValueError('no call time found after %s' % start)

    def _next_wall(self, after):
        """Return the first matching naive local time strictly after."""
        if self.keeps_time:
            clock = after.time().replace(microsecond=0)
            if self.dayOfWeek:
                day = self._next_date(after.date() + _ONE_DAY)
            else:
                index = bisect.bisect_right(self._months, after.month)
                if index < len(self._months):
                    day = datetime.date(after.year, self._months[index], 1)
                else:
                    day = datetime.date(after.year + 1, self._months[0], 1)
            return datetime.datetime.combine(day, clock)
        start = after.replace(second=0, microsecond=0) + _ONE_MINUTE
        day, hour, minute = start.date(), start.hour, start.minute
        hours, minutes = self._hours, self._minutes
        while True:
            found = self._next_date(day)
            if found != day:
                hour = minute = 0
            index = bisect.bisect_left(hours, hour)
            if index < len(hours):
                if hours[index] != hour:
                    minute = 0
                mindex = bisect.bisect_left(minutes, minute)
                if mindex < len(minutes):
                    return datetime.datetime.combine(
                        found, datetime.time(hours[index], minutes[mindex]))
                if index + 1 < len(hours):
                    return datetime.datetime.combine(
                        found, datetime.time(hours[index + 1], minutes[0]))
            day, hour, minute = found + _ONE_DAY, 0, 0

    # public API

    def adjust(self, dt):
        """Reset dt to the start of the item's period (rule 1)."""
        local = dt.astimezone(self._tz) if self._tz is not None else dt
        if self.period in ('minute', None):
            local = local.replace(second=0)
        elif self.period == 'hour':
            local = local.replace(minute=0, second=0)
        elif self.period == 'dayOfMonth':
            local = local.replace(hour=0, minute=0, second=0)
        elif self.period == 'month':
            local = local.replace(day=1)
        return local.astimezone(dt.tzinfo) if self._tz is not None else local

    def next_after(self, callTime):
        """Return the first call time strictly after callTime (UTC)."""
        t = to_utc(callTime).replace(microsecond=0)
        if self._tz is None:
            wall = self._next_wall(t.replace(tzinfo=None))
            return wall.replace(tzinfo=UTC)
        wall_t = t.astimezone(self._tz).replace(tzinfo=None)
        after = wall_t
        for _step in range(_MAX_RESOLVE_STEPS):
            instant, after = self._resolve(self._next_wall(after), t)
            if instant is not None:
                break
        else:  # pragma: no cover - the rules above always resolve
            raise ValueError('no call time found after %s' % callTime)
        if self.real_time:
            instant = self._second_occurrence(t, wall_t, instant)
        return instant

    # daylight saving time

    def _offset(self, instant):
        return instant.astimezone(self._tz).utcoffset()

    def _transition(self, lo, hi):
        """Return the first instant in (lo, hi] with the offset of hi."""
        target = self._offset(hi)
        low, high = 0, int((hi - lo).total_seconds())
        while high - low > 1:
            middle = (low + high) // 2
            if self._offset(lo + datetime.timedelta(seconds=middle)) == target:
                high = middle
            else:
                low = middle
        return lo + datetime.timedelta(seconds=high)

    def _resolve(self, wall, t):
        """Map a local time to (instant or None, where to search on)."""
        first = wall.replace(tzinfo=self._tz, fold=0).astimezone(UTC)
        second = wall.replace(tzinfo=self._tz, fold=1).astimezone(UTC)
        if first == second:
            return (first if first > t else None), wall
        if first < second:  # occurs twice
            if first > t:
                return first, wall
            if self.real_time and second > t:
                return second, wall
            return None, wall
        # does not exist: fold=1 reads it with the offset after the gap
        end = self._transition(second, first)
        if self.real_time:
            return None, end.astimezone(self._tz).replace(tzinfo=None) - (
                _EPSILON)
        return (end if end > t else None), wall

    def _second_occurrence(self, t, wall_t, instant):
        """Return an earlier call in the repeat of the hour t is in."""
        before = self._offset(t)
        probe = t + _ONE_DAY
        after = self._offset(probe)
        if after >= before:
            return instant
        change = self._transition(t, probe)
        repeat_start = change.astimezone(self._tz).replace(tzinfo=None)
        if wall_t < repeat_start:
            return instant  # the plain search meets the repeat in order
        wall = self._next_wall(repeat_start - _EPSILON)
        if wall >= repeat_start + (before - after):
            return instant
        return min(instant, change + (wall - repeat_start))
