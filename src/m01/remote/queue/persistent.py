"""Persistent jobs: a job loaded through the processor writes the fields
set on it when the transaction commits, as the specification's README
does::

    job4 = rp.jobs[jobid4]
    job4.retryTime = datetime.datetime(2000, 1, 1, tzinfo=UTC)
    transaction.commit()

Only ``job.EDITABLE`` fields are written, each value checked when it is
set. A new ``input`` is checked as ``addJob`` checks one (BSON can store
it, within the nesting limit, and the job document stays under 16 MB);
the job's search terms follow it (those its outcomes added are kept).
The write is conditional on the version the job was loaded at
(``IJobWrites.edit``): a job changed meanwhile (claimed, cancelled,
changed by another transaction) is not overwritten; the commit raises
``ConflictError``, a ``TransientError``, so pyramid_tm with
pyramid_retry runs the request again, reading the job anew.
"""
import datetime

from m01.remote.clock import toBSONTime
from m01.remote.job import (
    BACKOFFS,
    ConflictError,
    checkPriority,
    checkSeconds,
    checkStorable,
)
from m01.remote.queue.search import editedTerms


def checkedValue(name, value):
    """``value`` as the job field ``name`` stores it; ValueError if it
    cannot be that field's."""
    if name == 'retryTime':
        if not isinstance(value, datetime.datetime):
            raise ValueError('retryTime must be a datetime, not %r'
                             % (value,))
        return toBSONTime(value)
    if name == 'priority':
        checkPriority(value)
    elif name in ('retryDelay', 'retryDelayMax', 'timeout'):
        checkSeconds(value, name, optional=name != 'retryDelay',
                     positive=name == 'timeout')
    elif name == 'maxRetries':
        if isinstance(value, bool) or not isinstance(value, int) or \
                value < 1:
            raise ValueError('maxRetries must be a whole number >= 1, not '
                             '%r' % (value,))
    elif name == 'active':
        if not isinstance(value, bool):
            raise ValueError('active must be True or False, not %r'
                             % (value,))
    elif name == 'retryBackoff':
        if value not in BACKOFFS:
            raise ValueError('retryBackoff must be one of %s, not %r'
                             % (', '.join(BACKOFFS), value))
    elif name == 'retryJitter':
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not 0 <= value <= 1:
            raise ValueError('retryJitter must be a fraction from 0 to 1, '
                             'not %r' % (value,))
    elif name == 'title':
        if not isinstance(value, str):
            raise ValueError('title must be text, not %r' % (value,))
    elif name == 'input':
        checkStorable(value, 'input')
    return value


class JobChanges:
    """The fields set on one loaded job (its stored ``document``), written
    through ``jobWrites`` when the current transaction of ``pending`` (a
    ``QueueTransaction``) commits, conditional on the document's
    ``version``.

    The fields are kept by the transaction's data manager, so an abort or
    a savepoint rolled back (a failed or refused attempt of the job that
    set them) drops them too."""

    def __init__(self, pending, jobWrites, document):
        self.pending = pending
        self.jobWrites = jobWrites
        self.document = document
        self.oid = document['_id']
        self.version = document.get('version', 0)

    def set(self, job, name, value):
        value = checkedValue(name, value)
        fields = {name: value}
        if name == 'input':
            fields['terms'] = editedTerms(
                self.oid, self.document.get('terms'),
                self.document.get('input'), value)
            checkStorable(dict(self.document, **fields), 'document')
        self.pending.dataManager().addEdit(self, str(self.oid), fields)
        return value

    def write(self, fields):
        """Set ``fields`` on the job if it is still at our version."""
        if not self.jobWrites.edit(self.oid, self.version, fields):
            raise ConflictError(
                'Job %s changed since it was read (at version %d): %s not '
                'written' % (self.oid, self.version, ', '.join(sorted(
                    fields))))
        self.version += 1
        # What the next transaction's changes start from.
        self.document = dict(self.document, version=self.version, **fields)
