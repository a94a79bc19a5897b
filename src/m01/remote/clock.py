"""What time it is, as the queue stores it.

Every time the queue writes is timezone-aware UTC cut to the millisecond
precision BSON keeps, so a value read back compares equal to the one
written. A processor takes its "now" from an injectable clock (tests move
it); everything it stamps (error messages included) comes from there.
"""
import datetime

UTC = datetime.timezone.utc


def utcnow():
    """Now, in UTC, cut to the millisecond precision BSON stores."""
    return toBSONTime(datetime.datetime.now(UTC))


def toBSONTime(value):
    """``value`` in UTC at millisecond precision; a naive datetime is
    taken to be UTC."""
    value = value if value.tzinfo else value.replace(tzinfo=UTC)
    value = value.astimezone(UTC)
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def stamp(message, now):
    """``[<ISO 8601 time, seconds>] message``: how the queue writes the
    messages it keeps with a job, as the specification shows them."""
    return '[%s] %s' % (now.isoformat(timespec='seconds'), message)


class QueueClock:
    """"Now" as the queue stores it, read from ``clock`` (a function
    returning an aware datetime; default ``utcnow``): what a processor
    hands its collaborators, each calling it for the time."""

    def __init__(self, clock=None):
        self.clock = clock or utcnow

    def __call__(self):
        return toBSONTime(self.clock())

    def __repr__(self):
        return '<QueueClock %r>' % (self.clock,)
