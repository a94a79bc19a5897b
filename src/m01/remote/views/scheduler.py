"""The scheduler pages: every item with its next call time, adding and
editing Delay and Cron items, and the actions on an item."""
import functools
import re
import zoneinfo

from pyramid.view import view_defaults

from m01.remote import interfaces
from m01.remote.cron import FIELDS
from m01.remote.limits import (
    MAX_CRON_TEXT,
    MAX_NAME,
    checkText,
    quote,
    shorten,
)
from m01.remote.operations.filters import MAX_PAGE
from m01.remote.scheduler import Cron, Delay
from m01.remote.views.common import (
    BaseView,
    Shown,
    echoed,
    formatTime,
    intParam,
    jsonDownload,
    parseJSON,
    remote_view,
    template,
)

COMMON_FIELDS = ('jobName', 'title', 'description', 'input', 'active',
                 'retryDelay')
DELAY_FIELDS = ('delay',)
CRON_LISTS = ('minute', 'hour', 'dayOfMonth', 'month', 'dayOfWeek')
CRON_FIELDS = CRON_LISTS + ('timezone',)

CRON_FORM_FIELDS = (
    ('minute', 'Minutes', '0–59'),
    ('hour', 'Hours', '0–23'),
    ('dayOfMonth', 'Days of month', '1–31'),
    ('month', 'Months', '1–12'),
    ('dayOfWeek', 'Weekdays', '0–6, Monday is 0'),
)

#: Scheduler items a page lists.
ITEMS_PAGE = 100

CRON_BOUNDS = {name: (lo, hi) for name, lo, hi in FIELDS}

# The field an item's ValueError is about, found by name in its message;
# the longer names first ("retryDelay" before "delay").
ERROR_FIELDS = sorted(COMMON_FIELDS + DELAY_FIELDS + CRON_FIELDS,
                      key=len, reverse=True)


def kindOf(item):
    return 'cron' if interfaces.ICron.providedBy(item) else 'delay'


WEEKDAYS = ('Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat', 'Sun')
MONTHS = ('Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep',
          'Oct', 'Nov', 'Dec')
# How a field-based item reads: (field, label, value names or None).
CRON_WORDS = (('minute', 'minute', None), ('hour', 'hour', None),
              ('dayOfMonth', 'day', None),
              ('month', 'month', lambda value: MONTHS[value - 1]),
              ('dayOfWeek', 'weekday', lambda value: WEEKDAYS[value]))


def runs(values, name=None):
    """[1, 2, 3, 7] as '1–3,7' (names instead of numbers if given)."""
    name = name or str
    groups = []
    for value in sorted(values):
        if groups and value == groups[-1][1] + 1:
            groups[-1][1] = value
        else:
            groups.append([value, value])
    return ','.join(name(first) if first == last else
                    '%s%s%s' % (name(first), ',' if last == first + 1
                                else '–', name(last))
                    for first, last in groups)


def describe(item):
    """How often the item runs, in a few words."""
    if kindOf(item) == 'delay':
        return 'every %s s' % item.delay
    if item.expression:
        when = item.expression
    else:
        when = '; '.join('%s %s' % (label, runs(getattr(item, field), name))
                         for field, label, name in CRON_WORDS
                         if getattr(item, field)) or 'every minute'
    return '%s (%s)' % (when, item.timezone or 'UTC')


def localTime(item):
    """A Cron item's next call time in its own time zone, if not UTC."""
    timezone = getattr(item, 'timezone', None)
    if item.nextCallTime is None or timezone in (None, 'UTC'):
        return ''
    local = item.nextCallTime.astimezone(zoneinfo.ZoneInfo(timezone))
    return '%s %s' % (local.strftime('%Y-%m-%d %H:%M:%S'), timezone)


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
                self._parse(data, name,
                            functools.partial(parseCronList, name=name))
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


class SchedulerBase(BaseView):

    section = 'scheduler'

    def itemUrl(self, item, *elements):
        return self.url(self.processor.scheduler, item.__name__, *elements)

    def form(self, kind, values, errors, item=None):
        if item is None:
            title = 'Add a %s item' % ('Cron' if kind == 'cron'
                                       else 'Delay')
            action = self.url(self.processor.scheduler, 'add-' + kind)
        else:
            title = 'Edit %s' % (item.title or item.jobName or
                                 item.__name__)
            action = self.itemUrl(item, 'edit')
        return {'title': title, 'kind': kind, 'values': values,
                'errors': errors, 'action': action, 'item': item,
                'factoryNames': self.queries.factoryNames(),
                'cronFields': CRON_FORM_FIELDS}


@view_defaults(context=interfaces.IScheduler)
class SchedulerView(SchedulerBase):

    @remote_view(request_method='GET', renderer=template('scheduler'))
    def list(self):
        page = intParam(self.request, 'page', 1, 1, MAX_PAGE)
        total, shown = self.queries.schedulerItems(page, ITEMS_PAGE)
        items = [{'item': item, 'kind': kindOf(item),
                  'schedule': describe(item),
                  'next': formatTime(item.nextCallTime),
                  'local': localTime(item),
                  'url': self.itemUrl(item)} for item in shown]
        pages = max(1, -(-total // ITEMS_PAGE))
        page = min(page, pages)
        return {'title': 'Scheduler', 'items': items, 'total': total,
                'page': page, 'pages': pages,
                'previous': self.url(self.context, page=page - 1)
                if page > 1 else None,
                'next': self.url(self.context, page=page + 1)
                if page < pages else None}

    def _addForm(self, kind):
        values = {'active': True}
        jobName = self.request.GET.get('jobName', '')
        if jobName and len(jobName) <= MAX_NAME:
            values['jobName'] = jobName
        return self.form(kind, values, {})

    def _add(self, kind):
        form = ItemForm(self, kind)
        item = form.submit(self.request.POST)
        if item is None:
            self.invalid()
            return self.form(kind, form.values, form.errors)
        itemid = self.actions.addSchedulerItem(item)
        self.flash('Scheduler item %s added.'
                   % shorten(item.title or itemid))
        return self.redirect(self.context)

    @remote_view(name='add-delay', request_method='GET',
                 renderer=template('scheduler_item'))
    def addDelayForm(self):
        return self._addForm('delay')

    @remote_view(name='add-delay', request_method='POST',
                 require_csrf=True, renderer=template('scheduler_item'))
    def addDelay(self):
        return self._add('delay')

    @remote_view(name='add-cron', request_method='GET',
                 renderer=template('scheduler_item'))
    def addCronForm(self):
        return self._addForm('cron')

    @remote_view(name='add-cron', request_method='POST',
                 require_csrf=True, renderer=template('scheduler_item'))
    def addCron(self):
        return self._add('cron')


@view_defaults(context=interfaces.ISchedulerItem)
class SchedulerItemView(SchedulerBase):

    @property
    def scheduler(self):
        return self.processor.scheduler

    @remote_view(request_method='GET', renderer=template('scheduler_item'))
    @remote_view(name='edit', request_method='GET',
                 renderer=template('scheduler_item'))
    def editForm(self):
        item = self.context
        return self.form(kindOf(item), itemValues(item), {}, item)

    @remote_view(name='edit', request_method='POST', require_csrf=True,
                 renderer=template('scheduler_item'))
    def edit(self):
        item = self.context
        kind = kindOf(item)
        form = ItemForm(self, kind, item)
        changed = form.submit(self.request.POST)
        if changed is None:
            self.invalid()
            return self.form(kind, form.values, form.errors, item)
        self.actions.updateSchedulerItem(item.__name__,
                                         **form.fields(changed))
        self.flash('Scheduler item %s saved.'
                   % shorten(changed.title or item.__name__))
        return self.redirect(self.scheduler)

    @remote_view(name='input.json', request_method='GET')
    def downloadInput(self):
        return jsonDownload(self.context.input, 'scheduler-%s-input.json'
                            % self.context.__name__)

    @remote_view(name='toggle', request_method='POST', require_csrf=True)
    def toggle(self):
        # The form says which state it wants: a repeated click (or a page
        # shown before someone else's change) cannot flip it back.
        active = self.request.POST.get('active') == '1'
        self.actions.setSchedulerItemActive(self.context.__name__, active)
        self.flash('%s is now %s.' % (
            shorten(self.context.title or self.context.__name__),
            'active' if active else 'inactive'))
        return self.redirect(self.scheduler)

    @remote_view(name='delete', request_method='POST', require_csrf=True)
    def delete(self):
        self.actions.deleteSchedulerItem(self.context.__name__)
        self.flash('Scheduler item %s deleted.' % shorten(
            self.context.title or self.context.__name__))
        return self.redirect(self.scheduler)

    @remote_view(name='run', request_method='POST', require_csrf=True)
    def run(self):
        try:
            jobid = self.actions.runSchedulerItem(self.context.__name__)
        except ValueError as e:
            # Its job factory was removed since the item was added.
            self.flash(str(e), 'error')
            return self.redirect(self.scheduler)
        self.flash('Job %s added from %s.' % (
            jobid, shorten(self.context.title or self.context.__name__)))
        return self.redirect(self.processor.jobs, jobid)
