"""Bar charts drawn on the server, as SVG the page holds: readable
without a script, each with a title and a description in words for
screen readers, each bar with a tooltip.

``stackedBars`` takes lists of numbers (one list per series, one number
per period, the oldest first) and returns the chart's geometry; the
``chart`` macro of ``macros.pt`` draws it. Nothing here reads the store.
"""
import datetime

#: The drawing's size in SVG units. It is stretched to the page's width
#: and the chart's height (bars and lines only; the labels are the
#: page's text beside it, so that they are never stretched).
WIDTH = 600
HEIGHT = 120
LEFT = 0
BOTTOM = 0
TOP = 4
#: Horizontal gridlines besides the baseline.
GRIDLINES = 2


def niceMax(value):
    """The smallest 1, 2 or 5 times a power of ten that is >= value."""
    if value <= 0:
        return 1
    scale = 1
    while True:
        for step in (1, 2, 5):
            if step * scale >= value:
                return step * scale
        scale *= 10


def _number(value):
    return '{:,}'.format(int(value)) if float(value).is_integer() else \
        '{:,.1f}'.format(value)


def _clock(value, seconds):
    """A time, with its day when the chart spans ``seconds`` of a day or
    more (a week starts and ends on the same weekday)."""
    if seconds >= 86400:
        return '%s %d %s' % (value.strftime('%a'), value.day,
                             value.strftime('%b %H:%M'))
    return value.strftime('%H:%M')


def _series(entry):
    """``(name, values, cssClass, description)`` of a series entry."""
    name, values, cls = entry[:3]
    return name, values, cls, entry[3] if len(entry) > 3 else ''


def stackedBars(series, bucketSeconds, end, title, unit='jobs'):
    """The geometry of a bar chart of the periods ending at ``end``,
    each ``bucketSeconds`` long, the series stacked.

    ``series`` is ``[(name, values, cssClass[, description])]``, every
    ``values`` list as long as the others (the oldest period first).
    Returns ``{'width', 'height', 'title', 'desc', 'empty', 'bars',
    'grid', 'labels', 'legend'}``: bars ``{'x', 'y', 'w', 'h', 'cls',
    'tip'}`` and gridlines ``{'y', 'label'}`` in SVG units, the top one
    first, the times of the start, the middle and the end, and the
    legend: what each colour counts, ``{'name', 'cls', 'description',
    'total'}``.
    """
    series = [_series(entry) for entry in series]
    counts = len(series[0][1]) if series else 0
    totals = [sum(values[index] for _name, values, _cls, _d in series)
              for index in range(counts)]
    peak = max(totals, default=0)
    top = niceMax(peak)
    plotWidth, plotHeight = WIDTH - LEFT, HEIGHT - BOTTOM - TOP
    step = plotWidth / counts if counts else plotWidth
    gap = min(2.0, step * 0.2)
    period = datetime.timedelta(seconds=bucketSeconds)
    start = end - period * counts
    spanSeconds = bucketSeconds * counts
    bars = []
    for index in range(counts):
        begins = start + period * index
        tip = '%s–%s UTC: %s' % (
            _clock(begins, spanSeconds),
            _clock(begins + period, min(spanSeconds, bucketSeconds)),
            ', '.join('%s %s' % (_number(values[index]), name)
                      for name, values, _cls, _d in series))
        base = HEIGHT - BOTTOM
        for _name, values, cls, _d in series:
            value = values[index]
            if value <= 0:
                continue
            height = plotHeight * value / top
            base -= height
            bars.append({'x': round(LEFT + index * step + gap / 2, 2),
                         'y': round(base, 2),
                         'w': round(max(step - gap, 0.5), 2),
                         'h': round(height, 2), 'cls': cls, 'tip': tip})
    grid = [{'y': round(HEIGHT - BOTTOM - plotHeight * line / GRIDLINES, 2),
             'label': _number(top * line / GRIDLINES)}
            for line in range(GRIDLINES, -1, -1)]
    labels = [_clock(start + period * index, spanSeconds)
              for index in ((0, counts // 2, counts) if counts else ())]
    sums = ', '.join('%s %s' % (_number(sum(values)), name)
                     for name, values, _cls, _d in series)
    desc = ('%s from %s to %s UTC, in periods of %s: %s; at most %s in '
            'one period.' % (unit.capitalize(), _clock(start, spanSeconds),
                             _clock(end, spanSeconds), _period(bucketSeconds),
                             sums,
                             _number(peak))) if counts else 'No data.'
    legend = [{'name': name, 'cls': cls, 'description': description,
               'total': _number(sum(values))}
              for name, values, cls, description in series]
    return {'width': WIDTH, 'height': HEIGHT, 'title': title, 'desc': desc,
            'empty': not counts or peak == 0, 'bars': bars, 'grid': grid,
            'labels': labels, 'legend': legend}


def _period(seconds):
    for unit, name, one in ((86400, 'day', 'a day'),
                            (3600, 'hour', 'an hour'),
                            (60, 'minute', 'a minute')):
        if seconds % unit == 0:
            count = seconds // unit
            return one if count == 1 else '%d %ss' % (count, name)
    return '%d seconds' % seconds
