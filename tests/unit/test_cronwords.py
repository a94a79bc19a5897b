"""Scheduler items in plain words."""
import datetime

import pytest

from m01.remote.scheduler import Cron, Delay
from m01.remote.views import cronwords

UTC = datetime.timezone.utc


@pytest.mark.parametrize('expression, timezone, words', [
    ('*/15 9-17 * * MON-FRI', 'Europe/Zurich',
     'every 15 minutes from 09:00 to 17:59, Monday to Friday, in '
     'Europe/Zurich'),
    ('* * * * *', 'UTC', 'every minute, in UTC'),
    ('* 9 * * *', 'UTC', 'every minute from 09:00 to 09:59, in UTC'),
    ('30 2 * * *', 'Europe/Zurich', 'every day at 02:30, in Europe/Zurich'),
    ('0 2,14 * * *', 'UTC', 'every day at 02:00 and 14:00, in UTC'),
    ('30 * * * *', 'UTC', 'at minute 30 of every hour, in UTC'),
    ('0,20,45 * * * *', 'UTC', 'at minutes 0, 20 and 45 of every hour, in '
     'UTC'),
    ('5/15 * * * *', 'UTC',
     'every 15 minutes (at :05, :20, :35 and :50), in UTC'),
    ('*/7 * * * *', 'UTC', 'at minutes 0, 7, 14, 21, 28, 35, 42, 49 and 56 '
     'of every hour, in UTC'),
    ('*/10 9-11,14-17 * * *', 'UTC', 'every 10 minutes from 09:00 to 11:59 '
     'and from 14:00 to 17:59, in UTC'),
    ('0 0 1,15 * *', 'UTC', 'at 00:00, on the 1st and 15th of the month, '
     'in UTC'),
    ('0 0 1-7 * *', 'UTC', 'at 00:00, on the 1st to the 7th of the month, '
     'in UTC'),
    ('0 0 1,15 * MON', 'UTC', 'at 00:00, on the 1st and 15th of the month '
     'or on Mondays, in UTC'),
    ('@weekly', 'UTC', 'at 00:00, on Sundays, in UTC'),
    ('0 9 * * SAT,SUN', 'UTC', 'at 09:00, on Saturday and Sunday, in UTC'),
    ('0 9 * * 1,3,5', 'UTC', 'at 09:00, on Monday, Wednesday and Friday, '
     'in UTC'),
    ('0 0 1 1 *', 'UTC', 'at 00:00, on the 1st of the month, in January, '
     'in UTC'),
    ('0 12 * 3-10 *', 'UTC', 'every day at 12:00, from March to October, '
     'in UTC'),
    ('0 12 * 1,7 *', 'UTC', 'every day at 12:00, in January and July, in '
     'UTC'),
])
def test_expressions_in_words(expression, timezone, words):
    item = Cron.fromExpression(expression, jobName='x', timezone=timezone)
    assert cronwords.describe(item) == words


@pytest.mark.parametrize('fields, words', [
    # Rule 2: unrestricted finer fields are pinned to their first value.
    ({'hour': [9]}, 'every day at 09:00, in UTC'),
    ({'hour': [2, 13]}, 'every day at 02:00 and 13:00, in UTC'),
    ({'dayOfMonth': [2]}, 'at 00:00, on the 2nd of the month, in UTC'),
    ({'minute': [0, 30], 'hour': [8, 9, 10], 'dayOfWeek': [0, 1, 2, 3, 4]},
     'every 30 minutes from 08:00 to 10:59, Monday to Friday, in UTC'),
    ({'dayOfMonth': [13], 'dayOfWeek': [4], 'minute': [0], 'hour': [0]},
     'at 00:00, on the 13th of the month when that is a Friday, in UTC'),
    ({}, 'every minute, in UTC'),
])
def test_fields_in_words(fields, words):
    item = Cron(dict(fields, jobName='x'))
    assert cronwords.describe(item) == words


def test_calendar_items_keep_the_time_of_their_call():
    item = Cron({'jobName': 'x', 'dayOfWeek': [0], 'timezone':
                 'Europe/Zurich'})
    assert cronwords.describe(item) == (
        'on Mondays at the time of day of its first call, in Europe/Zurich')
    item.nextCallTime = datetime.datetime(2026, 12, 7, 13, 26, tzinfo=UTC)
    assert cronwords.describe(item) == \
        'on Mondays at 14:26, in Europe/Zurich'
    item = Cron({'jobName': 'x', 'month': [1, 7]})
    item.nextCallTime = datetime.datetime(2027, 1, 1, 8, 0, tzinfo=UTC)
    assert cronwords.describe(item) == \
        'on the 1st of January and July at 08:00, in UTC'


@pytest.mark.parametrize('delay, words', [
    (1, 'every second'), (45, 'every 45 seconds'), (60, 'every minute'),
    (90, 'every 90 seconds'), (900, 'every 15 minutes'),
    (3600, 'every hour'), (7200, 'every 2 hours'), (86400, 'every day'),
    (3 * 86400, 'every 3 days'),
])
def test_delays_in_words(delay, words):
    item = Delay({'jobName': 'x', 'delay': delay})
    assert cronwords.describe(item) == words + ', counted from its last run'


def test_helpers():
    assert cronwords.groups([7, 1, 2, 3]) == [[1, 3], [7, 7]]
    assert cronwords.sayList([]) == '' and cronwords.sayList(['a']) == 'a'
    assert [cronwords.ordinal(n) for n in (1, 2, 3, 4, 11, 12, 13, 21, 22,
                                           23, 31)] == [
        '1st', '2nd', '3rd', '4th', '11th', '12th', '13th', '21st', '22nd',
        '23rd', '31st']
