"""Queue names and rate limits, as a job factory, ``addJob``, the settings
and the pages give them."""
import re

from m01.remote.limits import quote

#: The queue of a job whose factory names none.
DEFAULT_QUEUE = 'default'
#: A queue's name: letters, digits and ``_ . -``, at most this long.
MAX_QUEUE_NAME = 100
QUEUE_NAME = re.compile(r'[A-Za-z0-9_.-]+\Z')
#: The longest period of a rate limit (seconds): a day.
MAX_RATE_PERIOD = 24 * 3600
#: The most starts a rate limit allows per period (each is a slot
#: document, see ``m01.remote.queue.rates``).
MAX_RATE_STARTS = 10000


def checkQueueName(name):
    """Raise ValueError unless ``name`` can name a queue."""
    if not isinstance(name, str) or not QUEUE_NAME.match(name) or \
            len(name) > MAX_QUEUE_NAME:
        raise ValueError(
            'A queue name is 1 to %d letters, digits or "_.-", not %s'
            % (MAX_QUEUE_NAME, quote(name)))
    return name


def checkRateLimit(value):
    """``value`` (``[starts, seconds]``, or the text ``starts/seconds``)
    as a ``[starts, seconds]`` list; ValueError for anything else."""
    if isinstance(value, str):
        parts = value.split('/')
        try:
            value = [int(parts[0]), float(parts[1])] if len(parts) == 2 \
                else None
        except ValueError:
            value = None
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise ValueError('A rate limit is [starts, seconds] (or the text '
                         '"starts/seconds"), not %s' % quote(value))
    starts, seconds = value
    if isinstance(starts, bool) or not isinstance(starts, int) or \
            not 1 <= starts <= MAX_RATE_STARTS:
        raise ValueError('A rate limit allows 1 to %d starts per period, '
                         'not %r' % (MAX_RATE_STARTS, starts))
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) \
            or not 0 < seconds <= MAX_RATE_PERIOD:
        raise ValueError('A rate limit\'s period is more than 0 and at most '
                         '%d seconds, not %r' % (MAX_RATE_PERIOD, seconds))
    if seconds == int(seconds):
        seconds = int(seconds)
    return [starts, seconds]
