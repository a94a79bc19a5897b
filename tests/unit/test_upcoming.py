"""A scheduler item's next runs and what daylight saving does to them."""
import datetime
import zoneinfo

from m01.remote.scheduler import Cron, Delay, jobIdFor
from m01.remote.views import upcoming

UTC = datetime.timezone.utc
ZURICH = zoneinfo.ZoneInfo('Europe/Zurich')


def cron(expression, after, timezone='Europe/Zurich'):
    item = Cron.fromExpression(expression, jobName='x', timezone=timezone)
    item.getNextCallTime(after)
    return item


def test_five_runs_in_the_items_zone_and_in_utc():
    item = cron('*/15 9-17 * * MON-FRI',
                datetime.datetime(2026, 12, 4, 16, 40, tzinfo=UTC))
    runs = upcoming.nextRuns(item)
    assert [run['local'].strftime('%a %H:%M') for run in runs] == [
        'Fri 17:45', 'Mon 09:00', 'Mon 09:15', 'Mon 09:30', 'Mon 09:45']
    assert runs[0]['utc'] == datetime.datetime(2026, 12, 4, 16, 45,
                                               tzinfo=UTC)
    assert {run['offset'] for run in runs} == {'UTC+01:00'}
    assert all(run['note'] == '' for run in runs)


def test_utc_items_have_no_local_time_and_inactive_ones_no_runs():
    item = cron('0 3 * * *', datetime.datetime(2026, 1, 1, tzinfo=UTC),
                timezone='UTC')
    runs = upcoming.nextRuns(item, 2)
    assert [run['local'] for run in runs] == [None, None]
    assert runs[0]['offset'] == 'UTC'
    item.active = False
    assert upcoming.nextRuns(item) == []
    delay = Delay({'jobName': 'x', 'delay': 60})
    delay.getNextCallTime(datetime.datetime(2026, 1, 1, tzinfo=UTC))
    assert [run['utc'].minute for run in upcoming.nextRuns(delay, 3)] == [
        1, 2, 3]


def test_a_run_moved_out_of_the_spring_gap_says_so():
    # 29 March 2026: 02:00 to 02:59 do not exist in Zurich.
    item = cron('30 2 * * *', datetime.datetime(2026, 3, 27, 12,
                                                tzinfo=UTC))
    runs = upcoming.nextRuns(item, 3)
    assert [run['local'].strftime('%d %H:%M %Z') for run in runs] == [
        '28 02:30 CET', '29 03:00 CEST', '30 02:30 CEST']
    assert runs[0]['note'] == ''
    assert runs[1]['note'] == (
        'The clocks change this day (UTC+01:00 to UTC+02:00). Local times '
        'from 02:00 to 02:59 do not exist; this run is at the first minute '
        'after them.')
    assert runs[2]['note'] == ''
    # A run at 03:00 that the item lists is not "moved".
    item = cron('0 3 * * *', datetime.datetime(2026, 3, 28, 12, tzinfo=UTC))
    assert upcoming.nextRuns(item, 1)[0]['note'] == (
        'The clocks change this day (UTC+01:00 to UTC+02:00).')


def test_a_repeated_time_in_autumn_runs_once():
    # 25 October 2026: 02:00 to 02:59 come twice in Zurich.
    item = cron('30 2 * * *', datetime.datetime(2026, 10, 24, 12,
                                                tzinfo=UTC))
    run = upcoming.nextRuns(item, 1)[0]
    assert run['local'].strftime('%d %H:%M %Z') == '25 02:30 CEST'
    assert run['note'] == (
        'The clocks change this day (UTC+02:00 to UTC+01:00). 02:30 comes '
        'twice; it runs once, the first time.')
    # An hourly item follows real time: it runs in both.
    item = cron('30 * * * *', datetime.datetime(2026, 10, 25, 0, 10,
                                                tzinfo=UTC))
    runs = upcoming.nextRuns(item, 2)
    assert [run['local'].strftime('%H:%M %Z') for run in runs] == [
        '02:30 CEST', '02:30 CET']
    assert runs[0]['note'].endswith(
        'The hour from 02:00 comes twice; this is its first time.')
    assert runs[1]['note'].endswith('this is its second time.')


def test_the_call_before_the_next_one():
    item = cron('*/15 9-17 * * MON-FRI',
                datetime.datetime(2026, 12, 7, 7, 0, tzinfo=UTC))
    assert item.nextCallTime == datetime.datetime(2026, 12, 7, 8, 0,
                                                  tzinfo=UTC)
    # Friday's last run, over a weekend.
    assert upcoming.previousCall(item) == datetime.datetime(
        2026, 12, 4, 16, 45, tzinfo=UTC)
    yearly = cron('0 0 1 1 *', datetime.datetime(2026, 6, 1, tzinfo=UTC),
                  timezone='UTC')
    assert upcoming.previousCall(yearly) == datetime.datetime(
        2026, 1, 1, tzinfo=UTC)
    # Its job's id is the scheduler's.
    assert jobIdFor('x', upcoming.previousCall(yearly)) == jobIdFor(
        'x', datetime.datetime(2026, 1, 1, tzinfo=UTC))
    delay = Delay({'jobName': 'x', 'delay': 60})
    delay.getNextCallTime(datetime.datetime(2026, 1, 1, tzinfo=UTC))
    assert upcoming.previousCall(delay) is None
    item.active = False
    item.getNextCallTime(datetime.datetime(2026, 12, 7, tzinfo=UTC))
    assert upcoming.previousCall(item) is None


def test_offsets():
    assert upcoming.offsetText(datetime.timedelta(hours=-3, minutes=-30)) \
        == 'UTC-03:30'
    assert upcoming.clockChange(ZURICH, datetime.date(2026, 7, 1)) is None
