"""The pages' formatting of times, durations and previews."""
import datetime

import pytest

from m01.remote.clock import stamp
from m01.remote.views import formatting

UTC = datetime.timezone.utc
NOW = datetime.datetime(2026, 12, 1, 14, 26, 7, tzinfo=UTC)


@pytest.mark.parametrize('seconds, text', [
    (0, 'now'), (0.4, 'now'), (-1, '1 s ago'), (-59, '59 s ago'),
    (-60, '1 min ago'), (-3599, '1 h ago'), (-3600, '1 h ago'),
    (-86399, '1 day ago'), (-86400, '1 day ago'), (-3 * 86400, '3 days ago'),
    # Rounded to the nearest unit, so that "started 2 min ago" agrees
    # with "took 1 min 44 s" beside it.
    (-59.6, '1 min ago'), (-89, '1 min ago'), (-104, '2 min ago'),
    (-5 * 3600 + 1000, '5 h ago'),
    (-40 * 86400, '1 month ago'), (-400 * 86400, '1 year ago'),
    (-800 * 86400, '2 years ago'), (5, 'in 5 s'), (300, 'in 5 min'),
    (7200, 'in 2 h'),
])
def test_relative_times(seconds, text):
    value = NOW + datetime.timedelta(seconds=seconds)
    assert formatting.relative(value, NOW) == text


def test_naive_times_are_utc():
    naive = NOW.replace(tzinfo=None) - datetime.timedelta(minutes=3)
    assert formatting.relative(naive, NOW) == '3 min ago'
    assert formatting.exact(naive) == '2026-12-01 14:23:07 UTC'
    zurich = datetime.timezone(datetime.timedelta(hours=1))
    assert formatting.exact(NOW.astimezone(zurich)) == \
        '2026-12-01 14:26:07 UTC'


def test_a_time_tag_holds_the_exact_time_in_its_tooltip():
    tag = formatting.timeTag(NOW - datetime.timedelta(seconds=90), NOW)
    assert tag == ('<time datetime="2026-12-01T14:24:37.000+00:00" '
                   'title="2026-12-01 14:24:37 UTC" data-rel="">'
                   '2 min ago</time>')
    assert tag.__html__() == tag
    assert 'muted' in formatting.timeTag(None, NOW)
    assert formatting.timeTag('<b>', NOW) == '&lt;b&gt;'


@pytest.mark.parametrize('seconds, text', [
    (None, ''), (0, '0 ms'), (0.25, '250 ms'), (1.25, '1.2 s'),
    (12.4, '12 s'), (60, '1 min'), (303, '5 min 3 s'), (3600, '1 h'),
    (7500, '2 h 5 min'), (86400, '1 day'), (3 * 86400 + 4 * 3600,
                                             '3 days 4 h'), (-3, '0 ms'),
])
def test_durations(seconds, text):
    assert formatting.duration(seconds) == text


def test_between():
    assert formatting.between(NOW, NOW + datetime.timedelta(seconds=3)) == 3
    assert formatting.between(None, NOW) is None


def test_stored_stamps_are_taken_off_messages():
    when, text = formatting.splitStamp(stamp('It broke.', NOW))
    assert (when, text) == (NOW, 'It broke.')
    when, text = formatting.splitStamp('[2026-12-01T14:26:07.123Z] x')
    assert when == NOW.replace(microsecond=123000) and text == 'x'
    assert formatting.splitStamp('No stamp [here]') == (
        None, 'No stamp [here]')
    assert formatting.splitStamp('[2026-13-01T14:26:07] x') == (
        None, '[2026-13-01T14:26:07] x')
    assert formatting.splitStamp(None) == (None, '')


def test_first_line_and_percent():
    assert formatting.firstLine('\n  Traceback\nmore', 80) == 'Traceback'
    assert formatting.firstLine('x' * 100, 10) == 'x' * 9 + '…'
    assert formatting.firstLine(None, 10) == ''
    assert [formatting.percent(v) for v in (0.424, 2, -1, None, 'x',
                                            float('nan'))] == [
        42, 100, 0, 0, 0, 0]


def test_a_stamped_message_shows_its_time_as_every_time_is():
    message = stamp('<b>broke</b> ' + 'x' * 50, NOW)
    shown = formatting.stampedMessage(message, NOW, 20)
    assert shown.startswith('<time datetime="2026-12-01T14:26:07.000')
    assert shown.endswith('>now</time> &lt;b&gt;broke&lt;/b&gt; xxxxxx…')
    assert formatting.stampedMessage('<i>', NOW, 20) == '&lt;i&gt;'
