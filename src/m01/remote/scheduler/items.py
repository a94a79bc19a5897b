"""Scheduler items: ``Delay`` and ``Cron``, and ``adjustCallTime``.

Items are plain objects built from a dict, validated at construction;
the scheduler container (``m01.remote.scheduler``) stores them.
"""
import datetime

import zope.interface
from bson import ObjectId

from m01.remote import interfaces
from m01.remote.job import checkStorable
from m01.remote.limits import (
    MAX_DESCRIPTION,
    MAX_NAME,
    MAX_TITLE,
    checkText,
    quote,
)
from m01.remote.scheduler.cron import FIELD_NAMES, CronSchedule, to_utc
from m01.remote.scheduler.expression import scheduleFields

DEFAULT_RETRY_DELAY = 300
_BASE_FIELDS = ('jobName', 'title', 'description', 'input', 'active',
                'nextCallTime', 'retryTime', 'retryDelay')
_CRON_FIELDS = FIELD_NAMES + ('timezone', 'dayMatch', 'expression')
# Changing one of these computes a new nextCallTime.
_SCHEDULE_FIELDS = frozenset(
    ('active', 'nextCallTime', 'delay') + _CRON_FIELDS)
_READ_ONLY = frozenset(('_id', '_type', 'retryTime'))


#: The longest delay an item accepts: a century, in seconds. Anything
#: longer cannot be added to a datetime.
MAX_SECONDS = 100 * 366 * 24 * 3600


def _positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError('%s must be a positive integer (seconds), got %r'
                         % (name, value))
    if value > MAX_SECONDS:
        raise ValueError('%s must be at most %d seconds (a century), got %r'
                         % (name, MAX_SECONDS, value))
    return value


def _text(name, value, limit, required=False):
    if value is None and not required:
        return ''
    if not isinstance(value, str) or (required and not value):
        raise ValueError('%s must be a %sstring, got %s'
                         % (name, 'non-empty ' if required else '',
                            quote(value)))
    return checkText(name, value, limit)


class _UTCField:
    """A datetime attribute kept in UTC with BSON's millisecond precision,
    so the cached item compares equal to what is stored."""

    def __set_name__(self, owner, name):
        self.name, self.key = name, '_' + name

    def __get__(self, obj, owner=None):
        return self if obj is None else obj.__dict__.get(self.key)

    def __set__(self, obj, value):
        obj.__dict__[self.key] = (None if value is None
                                  else to_utc(value, self.name))


class SchedulerItem:
    """Common fields and nextCallTime caching of scheduler items."""

    _type = None
    _fields = _BASE_FIELDS
    nextCallTime = _UTCField()
    retryTime = _UTCField()

    def __init__(self, data):
        if not isinstance(data, dict):
            raise ValueError('%s data must be a dict, got %r'
                             % (self._type, data))
        unknown = set(data) - set(self._fields) - {'_id', '_type'}
        if unknown:
            raise ValueError('unknown field(s) for %s: %s' % (
                self._type, ', '.join(repr(k) for k in sorted(unknown))))
        if data.get('_type', self._type) != self._type:
            raise ValueError('_type %r is not %r'
                             % (data['_type'], self._type))
        itemid = data.get('_id')
        self.__name__ = None if itemid is None else str(itemid)
        self.jobName = _text('jobName', data.get('jobName'), MAX_NAME,
                             required=True)
        self.title = _text('title', data.get('title'), MAX_TITLE)
        self.description = _text('description', data.get('description'),
                                 MAX_DESCRIPTION)
        # What the item's jobs get, so what a job's input may be.
        checkStorable(data.get('input'))
        self.input = data.get('input')
        self.active = data.get('active', True)
        if not isinstance(self.active, bool):
            raise ValueError('active must be True or False, got %r'
                             % (self.active,))
        self.nextCallTime = data.get('nextCallTime')
        self.retryTime = data.get('retryTime')
        self.retryDelay = _positive_int(
            'retryDelay', data.get('retryDelay', DEFAULT_RETRY_DELAY))

    def nextAfter(self, callTime):
        """Return the call time following callTime."""
        raise NotImplementedError

    def getNextCallTime(self, callTime):
        """Return the stored nextCallTime; when it is due at callTime (or
        unset), store the one following callTime.  Inactive items have
        none."""
        callTime = to_utc(callTime)
        previous = self.nextCallTime
        if not self.active:
            self.nextCallTime = None
            return None
        if previous is None or previous <= callTime:
            self.nextCallTime = self.nextAfter(callTime)
        return previous

    def dump(self):
        data = {'_type': self._type}
        if self.__name__ is not None:
            data['_id'] = ObjectId(self.__name__)
        for name in self._fields:
            data[name] = getattr(self, name)
        return data

    def __repr__(self):
        return '<%s %s for: %r>' % (type(self).__name__, self.__name__,
                                    self.jobName)


@zope.interface.implementer(interfaces.IDelay)
class Delay(SchedulerItem):
    """Runs every ``delay`` seconds, counted from the call that ran it."""

    _type = 'Delay'
    _fields = _BASE_FIELDS + ('delay',)

    def __init__(self, data):
        super().__init__(data)
        self._delay = _positive_int('delay', data.get('delay'))

    @property
    def delay(self):
        return self._delay

    def nextAfter(self, callTime):
        return to_utc(callTime + datetime.timedelta(seconds=self.delay))


@zope.interface.implementer(interfaces.ICron)
class Cron(SchedulerItem):
    """Runs at the times given by cron fields (see
    ``m01.remote.scheduler.cron``)."""

    _type = 'Cron'
    _fields = _BASE_FIELDS + _CRON_FIELDS

    def __init__(self, data):
        super().__init__(data)
        self._expression = data.get('expression')
        self._schedule = CronSchedule(**scheduleFields(data))

    @classmethod
    def fromExpression(cls, expression, **data):
        """Return a Cron item for a five-field cron expression."""
        return cls(dict(data, expression=expression))

    schedule = property(lambda self: self._schedule,
                        doc="The CronSchedule doing the arithmetic.")
    minute = property(lambda self: list(self._schedule.minute))
    hour = property(lambda self: list(self._schedule.hour))
    dayOfMonth = property(lambda self: list(self._schedule.dayOfMonth))
    month = property(lambda self: list(self._schedule.month))
    dayOfWeek = property(lambda self: list(self._schedule.dayOfWeek))
    timezone = property(lambda self: self._schedule.timezone)
    dayMatch = property(lambda self: self._schedule.dayMatch)
    expression = property(lambda self: self._expression)

    def nextAfter(self, callTime):
        return self._schedule.next_after(callTime)


def adjustCallTime(item, dt):
    """Reset dt to the start of the cron item's period (see the rules in
    m01.remote.scheduler.cron): minute items start at second 0."""
    return item.schedule.adjust(dt)


