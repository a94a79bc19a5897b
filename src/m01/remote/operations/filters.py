"""Which jobs an operator means: a filter, the order of a listing, a page.

A filter is read strictly, once, here: ``JobFilter.fromParams(params)``
reads a query string or a form (text; an empty field is a field not
filled in), ``JobFilter.fromJSON(value)`` the JSON API's typed object,
and the constructor checks what both and the command line give. An
unknown parameter, a value of the wrong type, a status not known, a name
or search that cannot mean anything is a ``ValueError`` naming it,
raised before any query is sent: a mistyped filter is never read as
"any job".
"""
import dataclasses

import zope.interface

from m01.remote.interfaces import STATI
from m01.remote.job import DEFAULT_QUEUE, checkQueueName
from m01.remote.limits import MAX_NAME, quote
from m01.remote.operations.interfaces import IJobFilter
from m01.remote.queue.search import queryTerms

#: The parameters of a filter (in query strings, forms and JSON).
FILTER_KEYS = ('status', 'name', 'q', 'queue')
#: The fields a listing sorts by.
SORT_FIELDS = ('created', 'queued', 'completed')
ORDERS = ('desc', 'asc')
#: The most jobs one page lists.
MAX_PAGE_SIZE = 200
#: Beyond this a page number is surely hand-made; it keeps the skip given
#: to the database small (the page is clamped to the last one anyway).
MAX_PAGE = 10 ** 6


def allValues(params, name):
    """Every value of the parameter ``name`` of a multi-dict, or of a
    mapping whose value may be a list."""
    if hasattr(params, 'getall'):
        return params.getall(name)
    value = params.get(name)
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _names(names, shown=5):
    """Names a message quotes: the first few, shortened."""
    names = sorted(names)
    text = ', '.join(quote(name) for name in names[:shown])
    if len(names) > shown:
        text += ' and %d more' % (len(names) - shown)
    return text


def checkParams(params, known):
    """ValueError naming the parameters of ``params`` (a mapping or a
    multi-dict) that are not ``known``."""
    unknown = set(params.keys()) - set(known)
    if unknown:
        raise ValueError('Unknown parameter%s %s; known here: %s' % (
            's' if len(unknown) > 1 else '', _names(unknown),
            ', '.join(known)))


def textParam(params, name):
    """The one text value of the parameter ``name`` of a query string or
    a form; '' when it is missing or empty, ValueError when it is given
    more than once or is not text."""
    values = allValues(params, name)
    if len(values) > 1:
        raise ValueError('%s is given %d times; give it once'
                         % (name, len(values)))
    value = values[0] if values else ''
    if not isinstance(value, str):
        raise ValueError('%s must be text, not %s' % (name, quote(value)))
    return value


#: How a query string or a form says yes or no.
FLAGS = {'1': True, 'true': True, '0': False, 'false': False}


def flagParam(params, name):
    """A yes-or-no parameter of a query string or a form ('1' or
    'true', '0' or 'false'); False when missing, ValueError otherwise."""
    value = textParam(params, name)
    if value == '':
        if allValues(params, name):
            raise ValueError('%s is true or false, not empty' % name)
        return False
    if value not in FLAGS:
        raise ValueError('%s is true or false (1 or 0), not %s'
                         % (name, quote(value)))
    return FLAGS[value]


def checkText(value, name):
    """``value`` if it is text that can be stored (UTF-8); ValueError
    naming ``name`` otherwise."""
    if not isinstance(value, str):
        raise ValueError('%s must be text, not %s' % (name, quote(value)))
    try:
        value.encode('utf-8')
    except UnicodeEncodeError:
        raise ValueError('%s is not UTF-8 text: %s' % (name, quote(value)))
    return value


@zope.interface.implementer(IJobFilter)
@dataclasses.dataclass(frozen=True)
class JobFilter:
    """Jobs of any of ``statuses`` (all when empty) of the factory
    ``name`` (any when None) in the queue ``queue`` (any when None) whose
    search terms hold every word of ``q`` (``m01.remote.queue.search``).
    """

    statuses: tuple = ()
    name: str = None
    q: str = ''
    queue: str = None

    def __post_init__(self):
        statuses = self.statuses
        if isinstance(statuses, str):
            statuses = (statuses,)
        if not isinstance(statuses, (tuple, list, set, frozenset)):
            raise ValueError('status must be a status or a list of them, '
                             'not %s' % quote(statuses))
        unknown = [s for s in statuses
                   if not isinstance(s, str) or s not in STATI]
        if unknown:
            raise ValueError('status must be one of %s, not %s'
                             % (', '.join(STATI), quote(unknown[0])))
        # In the life cycle's order, each once: equal filters are equal.
        object.__setattr__(self, 'statuses',
                           tuple(s for s in STATI if s in statuses))
        if self.name is not None:
            checkText(self.name, 'name')
            if not self.name:
                # No factory has this name: it is no "any factory".
                raise ValueError("name must be a job factory name, not ''; "
                                 "leave it out for every factory")
            if len(self.name) > MAX_NAME:
                raise ValueError('name has %d characters; a job factory name '
                                 'has at most %d' % (len(self.name), MAX_NAME))
        if self.queue is not None:
            checkQueueName(self.queue)
        q = '' if self.q is None else checkText(self.q, 'q')
        object.__setattr__(self, 'q', q.strip())
        # ValueError for a search too long, or one without a word: a
        # search for nothing is no search for everything.
        if self.q and not self.terms():
            raise ValueError('q has no word to search for: %s'
                             % quote(self.q))

    @classmethod
    def fromParams(cls, params, others=()):
        """The filter of a query string or a form (a multi-dict, or a
        mapping of text: ``status`` may be repeated, ``name`` and ``q``
        may not); an empty value is one not given. ``others`` are the
        other parameters the caller reads; any further one, and every bad
        value, is a ValueError naming it."""
        checkParams(params, FILTER_KEYS + tuple(others))
        statuses = []
        for status in allValues(params, 'status'):
            if not isinstance(status, str):
                raise ValueError('status must be text, not %s'
                                 % quote(status))
            if status:
                statuses.append(status)
        return cls(tuple(statuses), textParam(params, 'name') or None,
                   textParam(params, 'q'), textParam(params, 'queue') or None)

    @classmethod
    def fromJSON(cls, value, what='filter'):
        """The filter of a JSON object (``{"status", "name", "q",
        "queue"}``, each optional: ``status`` a status or a list of them,
        ``name``, ``q`` and ``queue`` text). Unknown keys and values of
        another type, empty or null are a ValueError naming them: leave a
        key out to mean any."""
        if not isinstance(value, dict):
            raise ValueError('%s must be an object with status, name, q or '
                             'queue, not %s' % (what, quote(value)))
        unknown = set(value) - set(FILTER_KEYS)
        if unknown:
            raise ValueError('Unknown %s key%s %s; a filter takes status, '
                             'name, q and queue' % (
                                 what, 's' if len(unknown) > 1 else '',
                                 _names(unknown)))
        statuses = value.get('status', ())
        if isinstance(statuses, list):
            if not statuses and 'status' in value:
                raise ValueError('%s.status is an empty list; leave it out '
                                 'for every status' % what)
            statuses = tuple(statuses)
        elif 'status' in value and not isinstance(statuses, str):
            raise ValueError('%s.status must be a status or a list of them, '
                             'not %s' % (what, quote(statuses)))
        for key in ('name', 'q', 'queue'):
            if key in value and (not isinstance(value[key], str)
                                 or not value[key].strip()):
                raise ValueError('%s.%s must be non-empty text, not %s; leave '
                                 'it out for any' % (what, key,
                                                     quote(value[key])))
        return cls(statuses, value.get('name'), value.get('q', ''),
                   value.get('queue'))

    def isEmpty(self):
        """Whether the filter matches every job."""
        return not self.query()

    def terms(self):
        """The normalised words the search asks for."""
        return queryTerms(self.q)

    def query(self):
        query = {}
        if len(self.statuses) == 1:
            query['status'] = self.statuses[0]
        elif self.statuses:
            query['status'] = {'$in': list(self.statuses)}
        if self.name is not None:
            query['name'] = self.name
        if self.queue == DEFAULT_QUEUE:
            query['queue'] = {'$in': [DEFAULT_QUEUE, None]}
        elif self.queue is not None:
            query['queue'] = self.queue
        terms = self.terms()
        if terms:
            query['terms'] = {'$all': terms}
        return query

    def params(self):
        params = {}
        if self.statuses:
            params['status'] = list(self.statuses)
        if self.name is not None:
            params['name'] = self.name
        if self.queue is not None:
            params['queue'] = self.queue
        if self.q:
            params['q'] = self.q
        return params

    def without(self, statuses):
        """The filter less the jobs in ``statuses`` (a bulk delete leaves
        processing jobs alone, say)."""
        left = [s for s in (self.statuses or STATI) if s not in statuses]
        return dataclasses.replace(self, statuses=tuple(left)), bool(left)


def checkSort(sort, order='desc'):
    """``(sort, descending)``; ValueError for a field or order not known.
    """
    if sort not in SORT_FIELDS:
        raise ValueError('sort must be one of %s, not %r'
                         % (', '.join(SORT_FIELDS), sort))
    if order not in ORDERS:
        raise ValueError('order must be one of %s, not %r'
                         % (', '.join(ORDERS), order))
    return sort, order == 'desc'


def checkPage(page, pageSize):
    """``(page, pageSize)`` as whole numbers within bounds; ValueError
    otherwise."""
    for name, value, high in (('page', page, MAX_PAGE),
                              ('pageSize', pageSize, MAX_PAGE_SIZE)):
        if isinstance(value, bool) or not isinstance(value, int) or \
                not 1 <= value <= high:
            raise ValueError('%s must be a whole number from 1 to %d, not '
                             '%r' % (name, high, value))
    return page, pageSize


@dataclasses.dataclass
class JobPage:
    """One page of a listing: the jobs, the page number (1 first), how
    many pages and matching jobs there are, the page size."""

    jobs: list
    page: int
    pages: int
    total: int
    pageSize: int

    @property
    def first(self):
        """The position of the page's first job (1 first; 0 when none)."""
        return (self.page - 1) * self.pageSize + 1 if self.jobs else 0

    @property
    def last(self):
        return (self.page - 1) * self.pageSize + len(self.jobs)
