"""Bar charts drawn on the server."""
import datetime

from m01.remote.views import charts

UTC = datetime.timezone.utc
END = datetime.datetime(2026, 12, 1, 15, 0, tzinfo=UTC)


def test_nice_maxima():
    assert [charts.niceMax(v) for v in (0, 1, 3, 7, 10, 11, 49, 120,
                                        999)] == [
        1, 1, 5, 10, 10, 20, 50, 200, 1000]


def test_stacked_bars():
    chart = charts.stackedBars(
        [('completed', [0, 4, 10], 'bar'),
         ('failed', [0, 1, 0], 'bar failures')],
        60, END, 'Jobs, last 3 minutes')
    assert chart['title'] == 'Jobs, last 3 minutes'
    assert chart['desc'] == (
        'Jobs from 14:57 to 15:00 UTC, in periods of a minute: 14 completed, '
        '1 failed; at most 10 in one period.')
    assert not chart['empty']
    # Empty periods draw nothing; a period's series are stacked.
    assert [(bar['cls'], bar['tip']) for bar in chart['bars']] == [
        ('bar', '14:58–14:59 UTC: 4 completed, 1 failed'),
        ('bar failures', '14:58–14:59 UTC: 4 completed, 1 failed'),
        ('bar', '14:59–15:00 UTC: 10 completed, 0 failed')]
    completed, failed, full = chart['bars']
    assert failed['y'] + failed['h'] == completed['y']
    assert full['y'] == charts.TOP and full['h'] == (
        charts.HEIGHT - charts.BOTTOM - charts.TOP)
    assert [line['label'] for line in chart['grid']] == ['10', '5', '0']
    assert chart['grid'][-1]['y'] == charts.HEIGHT
    assert chart['labels'] == ['14:57', '14:58', '15:00']


def test_an_empty_chart_says_so():
    chart = charts.stackedBars([('completed', [0] * 60, 'bar')], 60, END,
                               'Jobs')
    assert chart['empty'] and chart['bars'] == []
    assert 'at most 0' in chart['desc']
    assert charts.stackedBars([], 60, END, 'Jobs')['desc'] == 'No data.'


def test_labels_of_long_periods():
    chart = charts.stackedBars([('completed', [1] * 168, 'bar')], 3600, END,
                               'Jobs, last week')
    # A week starts and ends on the same weekday: the labels and the
    # description say the day.
    assert chart['labels'] == ['Tue 24 Nov 15:00', 'Sat 28 Nov 03:00',
                               'Tue 1 Dec 15:00']
    assert chart['desc'].startswith(
        'Jobs from Tue 24 Nov 15:00 to Tue 1 Dec 15:00 UTC, in periods of '
        'an hour')
