"""The add-job form: a job's factory and input and, as the JSON API
takes them, when it is due (a delay, or a time in UTC), its priority,
timeout and key; each field read strictly, its error shown beside it.

``JobForm(values).options()`` reads the form's texts; ``errors`` holds
what is wrong, by field. ``factoryHints`` says what each factory's jobs
take: the first paragraph of its class's docstring.
"""
import datetime

from m01.remote.job import MAX_PRIORITY, MAX_SECONDS
from m01.remote.limits import MAX_CRON_TEXT, checkText
from m01.remote.queue.keys import MAX_KEY_LENGTH
from m01.remote.views.common import parseJSON

#: The form's fields besides the factory's name.
FIELDS = ('input', 'delay', 'at', 'priority', 'timeout', 'key')
#: The times the "at" field takes (a browser's datetime-local sends the
#: first two), read as UTC.
AT_FORMATS = ('%Y-%m-%dT%H:%M', '%Y-%m-%dT%H:%M:%S', '%Y-%m-%d %H:%M',
              '%Y-%m-%d %H:%M:%S')


def parseNumber(text, what, kind=float, low=0, high=MAX_SECONDS,
                lowIncluded=True):
    """A number typed in a field, or None for an empty one."""
    text = checkText(what, text, MAX_CRON_TEXT).strip()
    if not text:
        return None
    try:
        value = kind(text)
    except ValueError:
        raise ValueError('Enter %s.' % ('a whole number' if kind is int
                                        else 'a number'))
    if value != value or value < low or value > high or \
            (value == low and not lowIncluded):
        raise ValueError('Enter a number from %s%s to %s.' % (
            '{:,}'.format(low), ' (excluded)' if not lowIncluded else '',
            '{:,}'.format(high)))
    return value


def parseAt(text):
    """A time typed as YYYY-MM-DD HH:MM (UTC), or None when empty."""
    text = checkText('at', text, MAX_CRON_TEXT).strip()
    if not text:
        return None
    for layout in AT_FORMATS:
        try:
            value = datetime.datetime.strptime(text, layout)
        except ValueError:
            continue
        return value.replace(tzinfo=datetime.timezone.utc)
    raise ValueError('Enter a time in UTC as YYYY-MM-DD HH:MM, such as '
                     '2026-12-01 14:30.')


class JobForm:
    """The fields of the add-job form, as typed (``values``)."""

    def __init__(self, values):
        self.values = {name: values.get(name, '') for name in FIELDS}
        self.errors = {}

    def _parse(self, name, parse):
        try:
            return parse(self.values[name])
        except ValueError as e:
            self.errors[name] = str(e)
            return None

    def options(self):
        """``(input, options)`` for ``IQueueActions.addJob``; check
        ``errors`` first."""
        input = self._parse('input', parseJSON)
        options = {
            'delay': self._parse('delay', lambda text: parseNumber(
                text, 'delay')),
            'at': self._parse('at', parseAt),
            'priority': self._parse('priority', lambda text: parseNumber(
                text, 'priority', int, -MAX_PRIORITY, MAX_PRIORITY)),
            'timeout': self._parse('timeout', lambda text: parseNumber(
                text, 'timeout', lowIncluded=False)),
            'key': self._parse('key', lambda text: checkText(
                'The key', text, MAX_KEY_LENGTH).strip() or None),
        }
        if options['delay'] is not None and options['at'] is not None:
            self.errors['at'] = 'Give a delay or a time, not both.'
        return input, {name: value for name, value in options.items()
                       if value is not None}


def factoryHints(infos):
    """``[{'name', 'doc'}]``: what the jobs of each factory (a
    ``FactoryInfo``) take, as its class's docstring says in its first
    paragraph."""
    return [{'name': info.name, 'doc': info.doc} for info in infos]
