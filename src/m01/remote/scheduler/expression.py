"""Standard five-field cron expressions turned into Cron item fields.

``parseExpression('*/15 9-17 * * MON-FRI')`` returns the field lists of a
``Cron`` item.  The grammar is the usual one: ``minute hour day-of-month
month day-of-week``, each field a comma separated list of ``*``, values,
ranges ``a-b`` and steps ``*/n``, ``a-b/n`` or ``a/n`` (``a`` to the end),
names ``JAN``..``DEC`` and ``SUN``..``SAT`` in any case, and the shortcuts
``@yearly`` (``@annually``), ``@monthly``, ``@weekly``, ``@daily``
(``@midnight``) and ``@hourly``.

How the expression maps onto the item's rules (see
``m01.remote.scheduler.cron``):

* The minute field is always stored as an explicit list (``*`` becomes
  0..59), so the item follows standard cron: ``* 9 * * *`` fires every
  minute from 09:00 to 09:59, not once at 09:00 as ``{'hour': [9]}`` would.
* Cron counts the day of week from Sunday = 0 (7 is Sunday too); the items
  count from Monday = 0, so the values are shifted.
* When both day fields are restricted (neither starts with ``*``), a day
  matches if EITHER matches, as in standard cron: the item gets
  ``dayMatch='any'``.  ``0 0 1,15 * MON`` fires on the 1st, the 15th and
  every Monday.  A day field written with ``*`` (also ``*/2``) counts as
  unrestricted for that choice, as in Vixie cron, and both fields must then
  match.
"""
from m01.remote.limits import MAX_CRON_TEXT, checkText, quote
from m01.remote.scheduler.cron import FIELD_NAMES, check_field

MONTH_NAMES = ('JAN', 'FEB', 'MAR', 'APR', 'MAY', 'JUN', 'JUL', 'AUG', 'SEP',
               'OCT', 'NOV', 'DEC')
DAY_NAMES = ('SUN', 'MON', 'TUE', 'WED', 'THU', 'FRI', 'SAT')

SHORTCUTS = {
    '@yearly': '0 0 1 1 *',
    '@annually': '0 0 1 1 *',
    '@monthly': '0 0 1 * *',
    '@weekly': '0 0 * * 0',
    '@daily': '0 0 * * *',
    '@midnight': '0 0 * * *',
    '@hourly': '0 * * * *',
}

# name, first value, last value, names (first name is the first value)
_FIELDS = (
    ('minute', 0, 59, ()),
    ('hour', 0, 23, ()),
    ('dayOfMonth', 1, 31, ()),
    ('month', 1, 12, MONTH_NAMES),
    ('dayOfWeek', 0, 7, DAY_NAMES),
)


def _value(text, name, lo, hi, names):
    word = text.upper()
    if word in names:
        return lo + names.index(word)
    if not text.isdigit():
        raise ValueError('%s value %r is not a number' % (name, text))
    value = int(text)
    if not lo <= value <= hi:
        raise ValueError('%s value %d is out of range %d..%d'
                         % (name, value, lo, hi))
    return value


def _field(text, name, lo, hi, names):
    """Return the set of values of one field."""
    values = set()
    for part in text.split(','):
        rng, slash, step_text = part.partition('/')
        step = 1
        if slash:
            if not step_text.isdigit() or int(step_text) < 1:
                raise ValueError('%s step %r must be a positive number'
                                 % (name, step_text))
            step = int(step_text)
        if rng == '*':
            first, last = lo, hi
        elif '-' in rng:
            start, _dash, end = rng.partition('-')
            first = _value(start, name, lo, hi, names)
            last = _value(end, name, lo, hi, names)
            if name == 'dayOfWeek' and last == 0 and first > 0:
                last = 7  # SAT-SUN: Sunday closes the week
            if first > last:
                raise ValueError('%s range %r is reversed' % (name, rng))
        else:
            first = _value(rng, name, lo, hi, names)
            last = hi if slash else first
        values.update(range(first, last + 1, step))
    return values


def parseExpression(expression):
    """Return the Cron item fields (and dayMatch) of a cron expression."""
    if not isinstance(expression, str):
        raise ValueError('expression must be a string, got %s'
                         % quote(expression))
    checkText('expression', expression, MAX_CRON_TEXT)
    text = SHORTCUTS.get(expression.strip().lower(), expression)
    parts = text.split()
    if len(parts) != 5:
        raise ValueError(
            'expression %r must have five fields: minute hour day-of-month '
            'month day-of-week' % expression)
    data, starred = {}, set()
    try:
        for part, (name, lo, hi, names) in zip(parts, _FIELDS, strict=True):
            values = _field(part, name, lo, hi, names)
            if name == 'dayOfWeek':
                # cron's Sunday is 0 and 7, the items' Monday is 0
                values = {(v - 1) % 7 for v in values}
                hi = 6
            if part.startswith('*'):
                starred.add(name)
                # an empty list means "any"; the minute stays explicit
                if name != 'minute' and len(values) == hi - lo + 1:
                    values = set()
            data[name] = sorted(values)
    except ValueError as e:
        raise ValueError('expression %r: %s' % (expression, e)) from None
    restricted = not starred & {'dayOfMonth', 'dayOfWeek'}
    data['dayMatch'] = 'any' if restricted else 'all'
    return data


def scheduleFields(data):
    """Return the CronSchedule arguments of Cron item data: its fields, or
    those of its expression, which explicit fields must agree with."""
    fields = {name: data.get(name) for name in FIELD_NAMES}
    fields['dayMatch'] = data.get('dayMatch') or 'all'
    fields['timezone'] = data.get('timezone') or 'UTC'
    expression = data.get('expression')
    if expression is None:
        return fields
    parsed = parseExpression(expression)
    for name, value in parsed.items():
        given = data.get(name)
        if given is not None and name in FIELD_NAMES:
            given = check_field(name, given)
        if given is not None and given != value:
            raise ValueError('%s %r conflicts with expression %r'
                             % (name, data[name], expression))
    fields.update(parsed)
    return fields
