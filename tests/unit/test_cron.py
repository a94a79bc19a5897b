"""Cron arithmetic, validation, expressions and daylight saving time."""
import datetime
import random
import zoneinfo

import pytest

from m01.remote.scheduler import Cron, Delay, adjustCallTime
from m01.remote.scheduler.cron import CronSchedule, to_utc
from m01.remote.scheduler.expression import parseExpression

UTC = datetime.timezone.utc
ZURICH = 'Europe/Zurich'
NEW_YORK = 'America/New_York'


def utc(*args):
    return datetime.datetime(*args, tzinfo=UTC)


def local(zone, *args, fold=0):
    return datetime.datetime(*args, tzinfo=zoneinfo.ZoneInfo(zone),
                             fold=fold).astimezone(UTC)


def calls(schedule, start, count):
    """The next count call times after start."""
    result = []
    for _i in range(count):
        start = schedule.next_after(start)
        result.append(start)
    return result


# the specification's examples, as one table

SPEC_START = utc(1970, 1, 1, 0, 3)
DAY = 24 * 60 * 60


@pytest.mark.parametrize('fields, steps', [
    ({'minute': [0, 10]}, [
        (0, '00:03', '00:10'), (1, '00:10', '00:10'),
        (120, '00:10', '00:10'), (51 * 60, '00:10', '01:00'),
        (55 * 60, '01:00', '01:00')]),
    ({'hour': [2, 13]}, [
        (0, '00:03', '02:00'), (7200, '02:00', '13:00'),
        (4 * 3600, '13:00', '13:00'), (13 * 3600, '13:00', '02 02:00')]),
    ({'month': [1, 2, 5, 12]}, [
        (0, '00:03', '02-01 00:03'), (90 * DAY, '02-01 00:03', '05-01 00:03'),
        (120 * DAY, '05-01 00:03', '12-01 00:03'),
        (360 * DAY, '12-01 00:03', '1971-01-01 00:03')]),
    ({'dayOfWeek': [0, 2, 4, 5]}, [
        (0, '00:03', '02 00:03'), (DAY, '02 00:03', '03 00:03'),
        (2 * DAY, '03 00:03', '05 00:03'), (3 * DAY, '05 00:03', '05 00:03'),
        (4 * DAY, '05 00:03', '07 00:03')]),
    ({'dayOfMonth': [2, 12, 21, 30]}, [
        (0, '00:03', '02 00:00'), (12 * DAY, '02 00:00', '21 00:00'),
        (31 * DAY, '21 00:00', '02-02 00:00')]),
    ({'minute': [10], 'hour': [4], 'dayOfMonth': [1, 12, 21, 30]}, [
        (0, '00:03', '04:10'), (600, '04:10', '04:10'),
        (5 * 3600, '04:10', '12 04:10')]),
])
def test_specification_examples(fields, steps):
    item = Cron(dict(fields, jobName='bar', nextCallTime=SPEC_START))

    def parse(text):
        """'HH:MM', 'DD HH:MM', 'MM-DD HH:MM' or 'YYYY-MM-DD HH:MM'."""
        prefix = '1970-01-01 '
        full = prefix[:len(prefix) + len('HH:MM') - len(text)] + text
        return datetime.datetime.fromisoformat(full + '+00:00')

    for seconds, returned, stored in steps:
        callTime = SPEC_START + datetime.timedelta(seconds=seconds)
        assert item.getNextCallTime(callTime) == parse(returned)
        assert item.nextCallTime == parse(stored)


@pytest.mark.parametrize('fields, expected', [
    ({'minute': [5]}, (16, 6, 0)),
    ({}, (16, 6, 0)),
    ({'hour': [5]}, (16, 0, 0)),
    ({'dayOfMonth': [5]}, (0, 0, 0)),
    ({'dayOfWeek': [5]}, (16, 6, 5)),
])
def test_adjust_call_time(fields, expected):
    dt = utc(2010, 10, 25, 16, 6, 5, 123)
    adjusted = adjustCallTime(Cron(dict(fields, jobName='a')), dt)
    assert (adjusted.hour, adjusted.minute, adjusted.second) == expected
    assert adjusted.microsecond == 123 and adjusted.tzinfo is UTC
    month = adjustCallTime(Cron({'jobName': 'a', 'month': [1]}), dt)
    assert month == utc(2010, 10, 1, 16, 6, 5, 123)


def test_adjust_call_time_reads_local_time():
    item = Cron({'jobName': 'a', 'dayOfMonth': [1], 'timezone': ZURICH})
    adjusted = adjustCallTime(item, utc(2026, 1, 5, 12, 30))
    assert adjusted == utc(2026, 1, 4, 23, 0)


def test_no_field_fires_every_minute():
    assert calls(CronSchedule(), utc(2026, 1, 1, 0, 0, 30), 2) == [
        utc(2026, 1, 1, 0, 1), utc(2026, 1, 1, 0, 2)]


@pytest.mark.parametrize('fields, start, expected', [
    ({'month': [2], 'dayOfMonth': [29]}, utc(2097, 3, 1),
     [utc(2104, 2, 29), utc(2108, 2, 29)]),
    ({'month': [12], 'dayOfMonth': [31], 'minute': [59], 'hour': [23]},
     utc(2026, 12, 31, 23, 59), [utc(2027, 12, 31, 23, 59)]),
    ({'dayOfMonth': [31], 'month': [2, 4, 6, 9, 11, 12]}, utc(2026, 1, 1),
     [utc(2026, 12, 31)]),
    ({'dayOfMonth': [29], 'month': [2], 'dayOfWeek': [0]}, utc(2026, 1, 1),
     [utc(2044, 2, 29)]),
    ({'minute': [0], 'hour': [9], 'dayOfWeek': [0, 1, 2, 3, 4]},
     utc(2026, 1, 9, 9, 0), [utc(2026, 1, 12, 9), utc(2026, 1, 13, 9)]),
])
def test_rare_items(fields, start, expected):
    assert calls(CronSchedule(**fields), start, len(expected)) == expected


def test_catch_up_fires_once_after_downtime():
    item = Cron({'jobName': 'a', 'minute': [0], 'nextCallTime':
                 utc(2026, 1, 1)})
    back = utc(2026, 1, 3, 7, 30)
    assert item.getNextCallTime(back) == utc(2026, 1, 1)
    assert item.nextCallTime == utc(2026, 1, 3, 8)
    delay = Delay({'jobName': 'a', 'delay': 60,
                   'nextCallTime': utc(2026, 1, 1)})
    assert delay.getNextCallTime(back) == utc(2026, 1, 1)
    assert delay.nextCallTime == utc(2026, 1, 3, 7, 31)


def test_inactive_items_have_no_call_time():
    item = Cron({'jobName': 'a', 'active': False, 'nextCallTime':
                 utc(2026, 1, 1)})
    assert item.getNextCallTime(utc(2026, 1, 2)) is None
    assert item.nextCallTime is None


def _reference(fields, start):
    """The rules for clock items, matched minute by minute per day."""
    minutes = fields.get('minute') or (
        [0] if fields.get('hour') or fields.get('dayOfMonth') else range(60))
    hours = fields.get('hour') or (
        [0] if fields.get('dayOfMonth') and not fields.get('minute')
        else range(24))
    day = start.replace(hour=0, minute=0, second=0, microsecond=0)
    while True:
        dom_ok = day.day in (fields.get('dayOfMonth') or [day.day])
        dow_ok = day.weekday() in (fields.get('dayOfWeek') or [day.weekday()])
        if fields.get('dayMatch') == 'any' and fields.get(
                'dayOfMonth') and fields.get('dayOfWeek'):
            day_ok = (day.day in fields['dayOfMonth']
                      or day.weekday() in fields['dayOfWeek'])
        else:
            day_ok = dom_ok and dow_ok
        if day_ok and day.month in (fields.get('month') or [day.month]):
            for hour in sorted(hours):
                for minute in sorted(minutes):
                    candidate = day.replace(hour=hour, minute=minute)
                    if candidate > start:
                        return candidate
        day += datetime.timedelta(days=1)


def test_against_a_day_by_day_reference():
    rnd = random.Random(20261025)

    def sample(lo, hi, most):
        if rnd.random() < 0.4:
            return []
        return sorted(rnd.sample(range(lo, hi + 1), rnd.randint(1, most)))

    checked = 0
    while checked < 400:
        fields = {'minute': sample(0, 59, 4), 'hour': sample(0, 23, 3),
                  'dayOfMonth': sample(1, 31, 3), 'month': sample(1, 12, 4),
                  'dayOfWeek': sample(0, 6, 3),
                  'dayMatch': rnd.choice(['all', 'any'])}
        if not (fields['minute'] or fields['hour'] or fields['dayOfMonth']):
            continue  # calendar items keep the time: not in the reference
        try:
            schedule = CronSchedule(**fields)
        except ValueError:
            continue  # never fires
        start = utc(2026, 1, 1) + datetime.timedelta(
            minutes=rnd.randint(0, 3 * 365 * 24 * 60))
        assert schedule.next_after(start) == _reference(fields, start), fields
        checked += 1


# validation


@pytest.mark.parametrize('fields, message', [
    ({'minute': [60]}, 'minute value 60 is out of range 0..59'),
    ({'minute': [-1]}, 'minute value -1 is out of range'),
    ({'hour': [24]}, 'hour value 24 is out of range 0..23'),
    ({'dayOfMonth': [0]}, 'dayOfMonth value 0 is out of range 1..31'),
    ({'dayOfMonth': [32]}, 'dayOfMonth value 32'),
    ({'month': [13]}, 'month value 13 is out of range 1..12'),
    ({'month': [0]}, 'month value 0'),
    ({'dayOfWeek': [7]}, 'dayOfWeek value 7 is out of range 0..6'),
    ({'minute': [True]}, 'minute must contain integers only, got True'),
    ({'hour': [1.5]}, 'hour must contain integers only, got 1.5'),
    ({'month': ['1']}, "month must contain integers only, got '1'"),
    ({'minute': 5}, 'minute must be a list of integers, got 5'),
    ({'dayOfWeek': 'MON'}, "dayOfWeek must be a list of integers"),
    ({'dayOfMonth': [30, 31], 'month': [2]},
     r'dayOfMonth \[30, 31\] never falls in month \[2\]'),
    ({'dayOfMonth': [31], 'month': [4, 6, 9, 11]}, 'never fire'),
    ({'dayMatch': 'either'}, "dayMatch must be one of"),
    ({'timezone': 'Mars/Olympus'}, "'Mars/Olympus' is not a known IANA"),
    ({'timezone': '../etc'}, 'is not a known IANA'),
    ({'timezone': ''}, 'timezone must be an IANA timezone name'),
    ({'timezone': 1}, 'timezone must be an IANA timezone name'),
])
def test_invalid_fields(fields, message):
    with pytest.raises(ValueError, match=message):
        CronSchedule(**fields)
    if 'timezone' not in fields or fields['timezone']:
        with pytest.raises(ValueError, match=message):
            Cron(dict(fields, jobName='a'))


def test_feasible_rare_items_are_accepted():
    CronSchedule(dayOfMonth=[29], month=[2])
    CronSchedule(dayOfMonth=[31], month=[4, 12])
    CronSchedule(dayOfMonth=[31], month=[2], dayOfWeek=[0], dayMatch='any')


@pytest.mark.parametrize('data, message', [
    ({'jobName': 'a', 'color': 'red'}, "unknown field.*'color'"),
    ({}, 'jobName must be a non-empty string, got None'),
    ({'jobName': ''}, 'jobName must be a non-empty string'),
    ({'jobName': 'a', 'title': 1}, 'title must be a string, got 1'),
    ({'jobName': 'a', 'active': 'yes'}, "active must be True or False"),
    ({'jobName': 'a', 'retryDelay': 0}, 'retryDelay must be a positive'),
    ({'jobName': 'a', 'retryDelay': True}, 'retryDelay must be a positive'),
    ({'jobName': 'a', 'retryDelay': 1.5}, 'retryDelay must be a positive'),
    ({'jobName': 'a', 'nextCallTime': datetime.datetime(2026, 1, 1)},
     'nextCallTime must be timezone-aware'),
    ({'jobName': 'a', 'retryTime': '2026-01-01'},
     'retryTime must be a datetime'),
    ({'jobName': 'a', '_type': 'Delay'}, "_type 'Delay' is not 'Cron'"),
    ({'jobName': 'a', 'expression': '0 * * *'}, 'must have five fields'),
    ({'jobName': 'a', 'expression': '0 * * * *', 'minute': [5]},
     r"minute \[5\] conflicts with expression '0 \* \* \* \*'"),
    ({'jobName': 'a', 'expression': '0 0 1 * MON', 'dayMatch': 'all'},
     "dayMatch 'all' conflicts with expression"),
])
def test_invalid_cron_items(data, message):
    with pytest.raises(ValueError, match=message):
        Cron(data)


def test_invalid_delay_items():
    with pytest.raises(ValueError, match='delay must be a positive'):
        Delay({'jobName': 'a'})
    with pytest.raises(ValueError, match='delay must be a positive'):
        Delay({'jobName': 'a', 'delay': -5})
    with pytest.raises(ValueError, match="unknown field.*'minute'"):
        Delay({'jobName': 'a', 'delay': 5, 'minute': [1]})
    with pytest.raises(ValueError, match='data must be a dict'):
        Delay([('jobName', 'a')])
    with pytest.raises(ValueError, match='callTime must be timezone-aware'):
        Delay({'jobName': 'a', 'delay': 5}).getNextCallTime(
            datetime.datetime(2026, 1, 1))


def test_item_fields_and_dump():
    item = Cron.fromExpression('*/30 9 * * MON', jobName='a', title='T',
                               timezone=ZURICH, input=[1])
    assert (item.minute, item.hour, item.dayOfWeek) == ([0, 30], [9], [0])
    assert item.dayMatch == 'all' and item.retryDelay == 300
    assert item.active is True and item.retryTime is None
    with pytest.raises(AttributeError):
        item.minute = [1]
    data = item.dump()
    assert '_id' not in data and data['_type'] == 'Cron'
    assert data['expression'] == '*/30 9 * * MON'
    assert Cron(data).dump() == data


def test_to_utc_truncates_to_milliseconds():
    value = datetime.datetime(2026, 1, 1, 1, 0, 0, 999999,
                              tzinfo=zoneinfo.ZoneInfo(ZURICH))
    assert to_utc(value) == utc(2026, 1, 1, 0, 0, 0, 999000)
    assert to_utc(value).tzinfo is UTC


# expressions


@pytest.mark.parametrize('expression, fields', [
    ('*/15 9-17 * * 1-5', {'minute': [0, 15, 30, 45],
                           'hour': list(range(9, 18)),
                           'dayOfWeek': [0, 1, 2, 3, 4]}),
    ('0 0 * * SUN', {'minute': [0], 'hour': [0], 'dayOfWeek': [6]}),
    ('0 0 * * 7', {'minute': [0], 'hour': [0], 'dayOfWeek': [6]}),
    ('0 0 * * sat-sun', {'minute': [0], 'hour': [0], 'dayOfWeek': [5, 6]}),
    ('0 12 1 JAN-MAR/2 *', {'minute': [0], 'hour': [12], 'dayOfMonth': [1],
                            'month': [1, 3]}),
    ('5,10 3/10 * * *', {'minute': [5, 10], 'hour': [3, 13, 23]}),
    ('@hourly', {'minute': [0]}),
    ('@yearly', {'minute': [0], 'hour': [0], 'dayOfMonth': [1],
                 'month': [1]}),
])
def test_expressions(expression, fields):
    parsed = parseExpression(expression)
    for name in ('minute', 'hour', 'dayOfMonth', 'month', 'dayOfWeek'):
        assert parsed[name] == fields.get(name, []), name
    assert parsed['dayMatch'] == 'all'


def test_star_minute_stays_explicit():
    # '* 9 * * *' is every minute of 09:00..09:59, as in standard cron
    schedule = CronSchedule(**parseExpression('* 9 * * *'))
    start = utc(2026, 1, 1, 9, 58)
    assert calls(schedule, start, 2) == [utc(2026, 1, 1, 9, 59),
                                         utc(2026, 1, 2, 9, 0)]


def test_both_day_fields_match_either():
    parsed = parseExpression('0 0 1,15 * MON')
    assert parsed['dayMatch'] == 'any'
    schedule = CronSchedule(**parsed)
    # Thu 1 Jan 2026, Mon 5, 12, Thu 15, Mon 19
    assert calls(schedule, utc(2025, 12, 31), 5) == [
        utc(2026, 1, 1), utc(2026, 1, 5), utc(2026, 1, 12),
        utc(2026, 1, 15), utc(2026, 1, 19)]
    # a starred day field is unrestricted for that choice (Vixie cron)
    assert parseExpression('0 0 */2 * MON')['dayMatch'] == 'all'


@pytest.mark.parametrize('expression, message', [
    ('* * * *', 'must have five fields'),
    ('* * * * * *', 'must have five fields'),
    ('60 * * * *', 'minute value 60 is out of range 0..59'),
    ('* 24 * * *', 'hour value 24'),
    ('* * 0 * *', 'dayOfMonth value 0'),
    ('* * * 13 *', 'month value 13'),
    ('* * * * 8', 'dayOfWeek value 8 is out of range 0..7'),
    ('*/0 * * * *', "minute step '0' must be a positive number"),
    ('5-2 * * * *', "minute range '5-2' is reversed"),
    ('x * * * *', "minute value 'x' is not a number"),
    ('* * * FOO *', "month value 'FOO' is not a number"),
    ('@reboot', 'must have five fields'),
    (None, 'expression must be a string'),
])
def test_invalid_expressions(expression, message):
    with pytest.raises(ValueError, match=message):
        parseExpression(expression)


# daylight saving time


def test_gap_fires_once_after_the_gap():
    schedule = CronSchedule(minute=[0, 30], hour=[2], timezone=ZURICH)
    assert calls(schedule, local(ZURICH, 2026, 3, 28, 12), 3) == [
        local(ZURICH, 2026, 3, 29, 3, 0), local(ZURICH, 2026, 3, 30, 2, 0),
        local(ZURICH, 2026, 3, 30, 2, 30)]
    schedule = CronSchedule(minute=[30], hour=[2], timezone=NEW_YORK)
    assert calls(schedule, local(NEW_YORK, 2026, 3, 7, 12), 2) == [
        local(NEW_YORK, 2026, 3, 8, 3, 0), local(NEW_YORK, 2026, 3, 9, 2, 30)]


def test_repeated_time_fires_at_the_first_occurrence():
    schedule = CronSchedule(minute=[30], hour=[2], timezone=ZURICH)
    first = local(ZURICH, 2026, 10, 25, 2, 30, fold=0)
    assert calls(schedule, local(ZURICH, 2026, 10, 24, 12), 2) == [
        first, local(ZURICH, 2026, 10, 26, 2, 30)]
    assert first == utc(2026, 10, 25, 0, 30)
    # called during the repeat, the second occurrence is not a new call
    second = local(ZURICH, 2026, 10, 25, 2, 0, fold=1)
    assert schedule.next_after(second) == local(ZURICH, 2026, 10, 26, 2, 30)
    schedule = CronSchedule(minute=[30], hour=[1], timezone=NEW_YORK)
    assert calls(schedule, local(NEW_YORK, 2026, 10, 31, 12), 2) == [
        utc(2026, 11, 1, 5, 30), local(NEW_YORK, 2026, 11, 2, 1, 30)]


@pytest.mark.parametrize('zone, start', [
    (ZURICH, utc(2026, 3, 28, 20)), (ZURICH, utc(2026, 10, 24, 20)),
    (NEW_YORK, utc(2026, 3, 8, 0)), (NEW_YORK, utc(2026, 11, 1, 0)),
])
def test_hourly_and_minutely_follow_real_time(zone, start):
    hourly = calls(CronSchedule(minute=[0], timezone=zone), start, 12)
    assert hourly[0] == start + datetime.timedelta(hours=1)
    assert {b - a for a, b in zip(hourly, hourly[1:], strict=False)} == {
        datetime.timedelta(hours=1)}
    minutely = calls(CronSchedule(timezone=zone), start, 12 * 60)
    assert {b - a for a, b in zip(minutely, minutely[1:], strict=False)} == {
        datetime.timedelta(minutes=1)}
    quarter = calls(CronSchedule(minute=[15, 45], timezone=zone), start, 24)
    assert {b - a for a, b in zip(quarter, quarter[1:], strict=False)} == {
        datetime.timedelta(minutes=30)}


def test_calendar_item_in_the_gap():
    # a weekly item keeps the time of day of its call: 02:30 on Sunday
    schedule = CronSchedule(dayOfWeek=[6], timezone=ZURICH)
    callTime = local(ZURICH, 2026, 3, 22, 2, 30)
    assert schedule.next_after(callTime) == local(ZURICH, 2026, 3, 29, 3)


def test_local_fields_stored_in_utc():
    schedule = CronSchedule(minute=[0], hour=[9], timezone=ZURICH)
    assert schedule.next_after(utc(2026, 1, 5)) == utc(2026, 1, 5, 8)
    assert schedule.next_after(utc(2026, 7, 5)) == utc(2026, 7, 5, 7)
