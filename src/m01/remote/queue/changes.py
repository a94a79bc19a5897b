"""The changes a processor's caller asks of a stored job, as the writes
that make them: run at once, or by the data manager at the commit.

A cancel and a retry are each one conditional write (``IJobWrites``);
what follows one that happened is part of it: a cancelled job gives its
key back, is counted as cancelled and releases the jobs waiting for it.
A key reserved for a job added in a transaction that aborts is given
back too.
"""
from m01.remote.interfaces import CANCELLED, PROCESSING


def cancelling(jobWrites, keys, counters, now, document,
               dependencies=None):
    """The write cancelling the stored job ``document`` (as read), if it
    is still waiting, queued or processing: whether it did. The jobs
    waiting for it are released (``dependencies``)."""
    oid = document['_id']

    def cancel():
        at = now()
        cancelled = jobWrites.cancel(oid, at)
        if cancelled:
            releaseKey(keys, document, ended=at)
            picked = document.get('picked')
            counters.count(
                document['name'], 'cancelled', at,
                (at - picked).total_seconds() if picked and
                document['status'] == PROCESSING else None)
            if dependencies is not None:
                dependencies.endedSafely(oid, CANCELLED)
        return cancelled
    return cancel


def requeueing(jobWrites, now, oid):
    """The write queueing the job ``oid`` again, if it is in error or
    cancelled: whether it did."""
    return lambda: jobWrites.requeue(oid, now())


def releaseKey(keys, document, ended=None):
    """Give back the key of the job ``document``, if it holds one: at
    once, or, for a job that ended at ``ended`` and holds its key for a
    period (``keyPeriod``), at the end of that period."""
    if document.get('key'):
        if ended is None:
            keys.release(document['key'], document['_id'])
        else:
            keys.release(document['key'], document['_id'], ended,
                         document.get('keyPeriod'))


def keyReleaser(keys, document):
    """A transaction hook giving back the key of the job ``document``."""
    return lambda *ignored: releaseKey(keys, document)
