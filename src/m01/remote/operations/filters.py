"""Which jobs an operator means: a filter, the order of a listing, a page.

``JobFilter.fromParams(params)`` reads what the pages, the JSON API and
the command line are given (``status`` repeated, ``name``) and refuses
anything else with a ``ValueError`` naming the parameter, before any
query is sent.
"""
import dataclasses

import zope.interface

from m01.remote.interfaces import STATI
from m01.remote.limits import MAX_NAME
from m01.remote.operations.interfaces import IJobFilter
from m01.remote.queue.search import queryTerms

#: The fields a listing sorts by.
SORT_FIELDS = ('created', 'queued', 'completed')
ORDERS = ('desc', 'asc')
#: The most jobs one page lists.
MAX_PAGE_SIZE = 200
#: Beyond this a page number is surely hand-made; it keeps the skip given
#: to the database small (the page is clamped to the last one anyway).
MAX_PAGE = 10 ** 6


def _getall(params, name):
    if hasattr(params, 'getall'):
        return params.getall(name)
    value = params.get(name)
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


@zope.interface.implementer(IJobFilter)
@dataclasses.dataclass(frozen=True)
class JobFilter:
    """Jobs of any of ``statuses`` (all when empty) of the factory
    ``name`` (any when None) whose search terms hold every word of ``q``
    (``m01.remote.queue.search``)."""

    statuses: tuple = ()
    name: str = None
    q: str = ''

    def __post_init__(self):
        statuses = self.statuses
        if isinstance(statuses, str):
            statuses = (statuses,)
        unknown = [s for s in statuses if s not in STATI]
        if unknown:
            raise ValueError('status must be one of %s, not %r'
                             % (', '.join(STATI), unknown[0]))
        # In the life cycle's order, each once: equal filters are equal.
        object.__setattr__(self, 'statuses',
                           tuple(s for s in STATI if s in statuses))
        if self.name is not None:
            if not isinstance(self.name, str):
                raise ValueError('name must be text, not %r' % (self.name,))
            if len(self.name) > MAX_NAME:
                raise ValueError('name has %d characters; a job factory name '
                                 'has at most %d' % (len(self.name), MAX_NAME))
            if not self.name:
                object.__setattr__(self, 'name', None)
        if not isinstance(self.q or '', str):
            raise ValueError('q must be text, not %r' % (self.q,))
        object.__setattr__(self, 'q', (self.q or '').strip())
        self.terms()      # ValueError for a search too long

    @classmethod
    def fromParams(cls, params):
        """The filter of request parameters (a mapping, or a multi-dict:
        ``status`` may be repeated); ValueError for a bad one."""
        statuses = [s for s in _getall(params, 'status') if s]
        name = params.get('name') or None
        return cls(tuple(statuses), name, params.get('q') or '')

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
