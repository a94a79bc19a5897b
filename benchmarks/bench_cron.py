"""How long computing one next call time takes, per cron item.

The calculation jumps month, day, hour and minute; it never steps second
by second, so even items firing once a year (or once in four to eight years,
like a leap day) take microseconds.

How to run::

    python benchmarks/bench_cron.py [--calls 2000] [--repeat 5]

For each item the next call time is computed after ``--calls`` call times
spread over eight years (a prime step, so they hit every time of day and
day of the week).  Each call is timed ``--repeat`` times and its best time
kept; the mean and the slowest of those are printed in microseconds.
"""

import argparse
import datetime
import time

from m01.remote.scheduler.cron import CronSchedule
from m01.remote.scheduler.expression import parseExpression

UTC = datetime.timezone.utc
START = datetime.datetime(2024, 1, 1, tzinfo=UTC)
SPAN = datetime.timedelta(days=8 * 365)

ITEMS = [
    ("spec: minute [0, 10]", {"minute": [0, 10]}),
    ("spec: hour [2, 13]", {"hour": [2, 13]}),
    ("spec: month [1, 2, 5, 12]", {"month": [1, 2, 5, 12]}),
    ("spec: dayOfWeek [0, 2, 4, 5]", {"dayOfWeek": [0, 2, 4, 5]}),
    ("spec: dayOfMonth [2, 12, 21, 30]", {"dayOfMonth": [2, 12, 21, 30]}),
    (
        "spec: minute [10] dayOfMonth [1, 10, 20, 30]",
        {"minute": [10], "dayOfMonth": [1, 10, 20, 30]},
    ),
    (
        "spec: minute [10] hour [4] dayOfMonth [1, 12, 21, 30]",
        {"minute": [10], "hour": [4], "dayOfMonth": [1, 12, 21, 30]},
    ),
    ("every minute (no field)", {}),
    (
        "yearly: month [12] dayOfMonth [31]",
        {"month": [12], "dayOfMonth": [31]},
    ),
    (
        "leap day: month [2] dayOfMonth [29]",
        {"month": [2], "dayOfMonth": [29]},
    ),
    (
        "leap day on a Monday",
        {"month": [2], "dayOfMonth": [29], "dayOfWeek": [0]},
    ),
    (
        "dayOfMonth [31] month [2, 4, 6, 9, 11, 12]",
        {"dayOfMonth": [31], "month": [2, 4, 6, 9, 11, 12]},
    ),
    ("'*/15 9-17 * * MON-FRI'", parseExpression("*/15 9-17 * * MON-FRI")),
    ("'0 0 1,15 * MON' (either day)", parseExpression("0 0 1,15 * MON")),
    (
        "'30 2 * * *' Europe/Zurich",
        dict(parseExpression("30 2 * * *"), timezone="Europe/Zurich"),
    ),
    (
        "'*/5 * * * *' America/New_York",
        dict(parseExpression("*/5 * * * *"), timezone="America/New_York"),
    ),
    (
        "leap day Europe/Zurich",
        {"month": [2], "dayOfMonth": [29], "timezone": "Europe/Zurich"},
    ),
]


def call_times(count):
    step = SPAN / count + datetime.timedelta(seconds=7919)
    return [START + (step * i) % SPAN for i in range(count)]


def measure(fields, times, repeat):
    """Mean and worst of each call's best time (of repeat runs): the best
    run leaves out the time the process was not running."""
    schedule = CronSchedule(**fields)
    best = []
    for callTime in times:
        runs = []
        for _i in range(repeat):
            begin = time.perf_counter()
            schedule.next_after(callTime)
            runs.append(time.perf_counter() - begin)
        best.append(min(runs))
    return sum(best) / len(best) * 1e6, max(best) * 1e6


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    times = call_times(args.calls)
    width = max(len(name) for name, _fields in ITEMS)
    print("%-*s %9s %9s" % (width, "item", "mean us", "max us"))
    for name, fields in ITEMS:
        mean, slowest = measure(fields, times, args.repeat)
        print("%-*s %9.1f %9.1f" % (width, name, mean, slowest))


if __name__ == "__main__":
    main()
