"""The forms of scheduler items: reading and checking a Delay or Cron
item's fields as typed, and the texts an item's form shows."""
import functools
import re
import zoneinfo

from m01.remote import interfaces
from m01.remote.limits import MAX_CRON_TEXT, checkText, quote
from m01.remote.scheduler import Cron, Delay
from m01.remote.scheduler.cron import FIELDS
from m01.remote.views.common import Shown, echoed, parseJSON

COMMON_FIELDS = ('jobName', 'title', 'description', 'input', 'active',
                 'retryDelay')
DELAY_FIELDS = ('delay',)
CRON_LISTS = ('minute', 'hour', 'dayOfMonth', 'month', 'dayOfWeek')
CRON_FIELDS = CRON_LISTS + ('timezone',)

#: The fields typed as numbers; the weekdays are ticked by name.
CRON_FORM_FIELDS = (
    ('minute', 'Minutes', '0–59'),
    ('hour', 'Hours', '0–23'),
    ('dayOfMonth', 'Days of month', '1–31'),
    ('month', 'Months', '1–12'),
)
#: The weekdays' names, in the order the item numbers them
#: (``datetime.weekday()``: Monday is 0). The form never shows those
#: numbers: the expression's count (crontab's, from Sunday) is the only
#: one an operator reads.
WEEKDAYS = ('Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat', 'Sun')

#: Names a time zone field offers (the IANA zones of the installed
#: database, without its aliases for POSIX rules).
_NOT_ZONES = frozenset(('Factory', 'localtime', 'posixrules'))


@functools.lru_cache(maxsize=1)
def timezoneNames():
    return sorted(name for name in zoneinfo.available_timezones()
                  if name not in _NOT_ZONES
                  and not name.startswith(('posix/', 'right/')))

CRON_BOUNDS = {name: (lo, hi) for name, lo, hi in FIELDS}

# The field an item's ValueError is about, found by name in its message;
# the longer names first ("retryDelay" before "delay").
ERROR_FIELDS = sorted(COMMON_FIELDS + DELAY_FIELDS + CRON_FIELDS,
                      key=len, reverse=True)


def kindOf(item):
    return 'cron' if interfaces.ICron.providedBy(item) else 'delay'


def parseSeconds(text):
    text = text.strip()
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        raise ValueError('Enter a whole number of seconds.')


def parseCronList(text, name):
    """'0,15,30-35' as [0, 15, 30, 31, ...]; '' or '*' for any.

    Every number is checked against the field's range before a range is
    expanded, so a range is never longer than the field.
    """
    text = checkText(name, text, MAX_CRON_TEXT).strip()
    if text in ('', '*'):
        return []
    lo, hi = CRON_BOUNDS[name]
    values = set()
    for part in text.split(','):
        bounds = part.strip().split('-')
        try:
            numbers = [int(bound) for bound in bounds]
        except ValueError:
            raise ValueError('Use whole numbers separated by commas, and '
                             'ranges such as 1-5; %s is neither.'
                             % quote(part.strip()))
        for number in numbers:
            if not lo <= number <= hi:
                raise ValueError('%s value %d is out of range %d..%d'
                                 % (name, number, lo, hi))
        if len(numbers) == 1:
            values.add(numbers[0])
        elif len(numbers) == 2 and numbers[0] <= numbers[1]:
            values.update(range(numbers[0], numbers[1] + 1))
        else:
            raise ValueError('%s is not a range such as 1-5.'
                             % quote(part.strip()))
    return sorted(values)


def parseWeekdays(names):
    """The weekdays ticked (their names) as the item numbers them; [] for
    none (any day)."""
    if len(names) > len(WEEKDAYS) or \
            not all(name in WEEKDAYS for name in names):
        raise ValueError('Tick weekdays among %s.' % ', '.join(WEEKDAYS))
    return sorted({WEEKDAYS.index(name) for name in names})


def fieldOfError(message, fields):
    for name in ERROR_FIELDS:
        if name in fields and re.search(r'\b%s\b' % name, message):
            return name
    return None


def itemValues(item):
    """An item's fields as the texts its form shows."""
    shown = Shown(item.input)
    values = {
        'jobName': item.jobName or '', 'title': item.title or '',
        'description': item.description or '',
        # An input too long for the page is kept unless replaced.
        'input': '' if item.input is None or shown.truncated
        else shown.text,
        'keep-input': shown.truncated,
        'active': bool(item.active),
        'retryDelay': '' if item.retryDelay is None
        else str(item.retryDelay),
    }
    if kindOf(item) == 'delay':
        values['delay'] = str(item.delay)
    else:
        values['expression'] = item.expression or ''
        for name in CRON_LISTS:
            values[name] = '' if item.expression else ','.join(
                str(v) for v in getattr(item, name))
        values['dayOfWeek'] = [] if item.expression else [
            WEEKDAYS[day] for day in item.dayOfWeek]
        values['timezone'] = '' if item.timezone == 'UTC' else item.timezone
    return values


class ItemForm:
    """Reads and checks the form of a Delay or Cron item.

    ``submit(params)`` returns the item the form describes, or None with
    ``errors`` set: the form's own checks first, then the item's, whose
    ValueError names the bad field and is shown beside it.
    """

    def __init__(self, view, kind, item=None):
        self.view = view
        self.kind = kind
        self.item = item
        self.values = {}
        self.errors = {}

    def submit(self, params):
        data = self._read(params)
        item = None if self.errors else self._make(data)
        if item is None:
            echoed(self.values, self.errors)
        return item

    def _read(self, params):
        names = COMMON_FIELDS + (
            DELAY_FIELDS if self.kind == 'delay'
            else CRON_FIELDS + ('expression',))
        values = {name: params.get(name, '') for name in names}
        if self.kind == 'cron':
            values['dayOfWeek'] = params.getall('dayOfWeek')
        values['active'] = bool(params.get('active'))
        values['keep-input'] = (self.item is not None
                                and params.get('keep-input') == '1'
                                and not values['input'].strip())
        self.values = values
        data = {'jobName': values['jobName'].strip(),
                'title': values['title'].strip(),
                'description': values['description'].strip(),
                'active': values['active']}
        if not data['jobName']:
            self.errors['jobName'] = 'Choose a job factory.'
        elif data['jobName'] not in self.view.queries.factoryNames():
            self.errors['jobName'] = 'There is no job factory %s.' \
                % quote(data['jobName'])
        if values['keep-input']:
            data['input'] = self.item.input
        else:
            self._parse(data, 'input', parseJSON)
        self._parse(data, 'retryDelay', parseSeconds)
        if self.kind == 'delay':
            self._parse(data, 'delay', parseSeconds)
            if data.get('delay') is None and 'delay' not in self.errors:
                self.errors['delay'] = 'Enter the seconds between two runs.'
        else:
            timezone = values['timezone'].strip()
            if timezone:
                data['timezone'] = timezone
            for name in CRON_LISTS:
                parse = parseWeekdays if name == 'dayOfWeek' else \
                    functools.partial(parseCronList, name=name)
                self._parse(data, name, parse)
        return data

    def _parse(self, data, name, parse):
        try:
            value = parse(self.values[name])
        except ValueError as e:
            self.errors[name] = str(e)
        else:
            if value is not None:
                data[name] = value

    def _make(self, data):
        expression = self.values.get('expression', '').strip()
        try:
            if self.kind == 'delay':
                return Delay(data)
            if expression:
                # Fields left empty are the expression's; filled ones
                # must agree with it.
                for name in CRON_LISTS:
                    if not data.get(name):
                        data.pop(name, None)
                return Cron.fromExpression(expression, **data)
            return Cron(data)
        except ValueError as e:
            message = str(e)
            field = fieldOfError(message, self.values)
            if expression and field in (None,) + CRON_LISTS:
                field = 'expression'
            self.errors[field or 'form'] = message
            return None

    @staticmethod
    def fields(item):
        """The stored fields of an item, as ``scheduler.update`` takes
        them."""
        if kindOf(item) == 'delay':
            names = COMMON_FIELDS + DELAY_FIELDS
        else:
            names = COMMON_FIELDS + CRON_FIELDS + ('expression',)
        fields = {name: getattr(item, name) for name in names}
        if fields.get('expression'):
            # The expression gives the lists.
            fields.update(dict.fromkeys(CRON_LISTS))
        return fields
