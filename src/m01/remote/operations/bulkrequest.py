"""Which jobs a bulk action changes, read strictly before anything is.

A bulk action changes the jobs of a selection of ids, or those matching
a filter, or both (the selected jobs that match the filter). With
neither it changes nothing unless its caller says ``all``: an empty,
missing or mistyped filter never means "every job".
``BulkRequest.fromJSON(body)`` reads the JSON API's body,
``BulkRequest.fromParams(params)`` a query string or a form; each bad
key or value is a ``ValueError`` naming it.
"""
import dataclasses

from bson import ObjectId

from m01.remote.interfaces import CANCELLED, ERROR
from m01.remote.limits import quote
from m01.remote.operations.filters import (
    JobFilter,
    allValues,
    flagParam,
    textParam,
)
from m01.remote.queue.updates import CANCELLABLE, DELETABLE

#: The statuses each bulk action changes.
ACTION_STATI = {'cancel': CANCELLABLE, 'retry': (ERROR, CANCELLED),
                'delete': DELETABLE}
ACTIONS = tuple(ACTION_STATI)
#: The most job ids a selection names.
MAX_SELECTED = 500
#: The keys of the JSON API's body, and the parameters of a form beside
#: the filter's.
BODY_KEYS = ('action', 'jobids', 'filter', 'all')
PARAMS = ('action', 'job', 'all')


def checkAction(action):
    if not isinstance(action, str) or action not in ACTION_STATI:
        raise ValueError('action must be one of %s, not %s'
                         % (', '.join(ACTIONS), quote(action)))
    return action


def selectedIds(jobids):
    """The ObjectIds of a selection of job ids (text, or ObjectIds);
    ValueError for one that is malformed or of another type, or too
    many."""
    if isinstance(jobids, (str, bytes, dict)):
        raise ValueError('jobids must be a list of job ids, not %s'
                         % quote(jobids))
    jobids = list(jobids)
    if len(jobids) > MAX_SELECTED:
        raise ValueError('At most %d jobs can be selected, not %d'
                         % (MAX_SELECTED, len(jobids)))
    oids = []
    for jobid in jobids:
        if isinstance(jobid, ObjectId):
            oids.append(jobid)
            continue
        # Only text: ObjectId(None) would be a new id, bytes another one.
        if not isinstance(jobid, str) or not ObjectId.is_valid(jobid):
            raise ValueError('%s is not a job id' % quote(jobid))
        oids.append(ObjectId(jobid))
    return oids


@dataclasses.dataclass(frozen=True)
class BulkRequest:
    """``action`` ('cancel', 'retry', 'delete') on the jobs of ``jobids``
    (at most ``MAX_SELECTED``) that match ``jobFilter`` (a ``JobFilter``;
    None or an empty one matches every job), or, with no ids, on those
    matching ``jobFilter``. With neither ids nor a filter that narrows,
    ``all`` must be true: every job is then meant. ``all`` with ids is
    refused. ValueError for anything else."""

    action: str
    jobFilter: JobFilter = None
    jobids: tuple = None
    all: bool = False

    def __post_init__(self):
        checkAction(self.action)
        if not isinstance(self.all, bool):
            raise ValueError('all is true or false, not %s'
                             % quote(self.all))
        if self.jobFilter is not None and \
                not isinstance(self.jobFilter, JobFilter):
            raise ValueError('jobFilter must be a JobFilter, not %s'
                             % quote(self.jobFilter))
        if self.jobids is not None:
            if self.all:
                raise ValueError('Give the job ids or all, not both')
            object.__setattr__(self, 'jobids',
                               tuple(selectedIds(self.jobids)))
        elif not self.all and (self.jobFilter is None
                               or self.jobFilter.isEmpty()):
            raise ValueError(
                'A bulk %s needs the job ids, a filter, or all to mean '
                'every job; nothing was changed' % self.action)

    @classmethod
    def fromJSON(cls, body):
        """The request of the JSON API's body: ``{"action", "jobids",
        "filter", "all"}`` (``jobids`` a list of job ids, ``filter`` an
        object of ``JobFilter.fromJSON``, ``all`` true or false)."""
        if not isinstance(body, dict):
            raise ValueError('The body must be a JSON object')
        unknown = sorted(set(body) - set(BODY_KEYS))
        if unknown:
            raise ValueError(
                'Unknown field%s %s; a bulk action takes action, and '
                'jobids, filter or all' % ('s' if len(unknown) > 1 else '',
                                           ', '.join(map(quote, unknown))))
        jobids = body.get('jobids')
        if 'jobids' in body and not isinstance(jobids, list):
            raise ValueError('jobids must be a list of job ids, not %s'
                             % quote(jobids))
        jobFilter = JobFilter.fromJSON(body['filter']) \
            if 'filter' in body else None
        return cls(body.get('action'), jobFilter, jobids,
                   body.get('all', False))

    @classmethod
    def fromParams(cls, params, others=(), chosen=False):
        """The request of a query string or a form: ``action``, ``job``
        (repeated), ``all`` ('1' or 'true') and the filter's parameters;
        ``others`` are the other parameters the caller reads. With
        ``chosen`` (a list's form, whose filter is the list's), the jobs
        are only those chosen, by ``job`` or ``all``: neither is none."""
        jobFilter = JobFilter.fromParams(params, PARAMS + tuple(others))
        every = flagParam(params, 'all')
        jobids = allValues(params, 'job') if 'job' in params else None
        if chosen and jobids is None and not every:
            jobids = ()
        return cls(textParam(params, 'action'), jobFilter, jobids, every)

    def params(self):
        """The request as a form's fields: ``(name, value)`` pairs."""
        fields = [('action', self.action)]
        for name, value in sorted((self.jobFilter or JobFilter()).params()
                                  .items()):
            for one in value if isinstance(value, list) else [value]:
                fields.append((name, one))
        if self.all:
            fields.append(('all', '1'))
        fields.extend(('job', str(oid)) for oid in self.jobids or ())
        return fields

