"""Exactly once across processes: an item due at ``due`` becomes one job.

1. ``Scheduler.pullNextSchedulerItem`` locks a due item
   (``scheduler.container``).
2. ``scheduleNextJob`` adds the job under an id derived from the item id
   and ``due``: a job created by a scheduler that died before step 3 is
   found again, never duplicated.
3. ``Scheduler.advanceItem`` stores the next call time and clears the
   lock.

The job id is the guarantee; the lock saves the work of doing it twice
(inserting a given ``_id`` is atomic on every store).
"""
import hashlib
import logging

import pymongo.errors
from bson import ObjectId

from m01.remote.job import DuplicateJobError
from m01.remote.scheduler.cron import to_utc

log = logging.getLogger('m01.remote')


def jobIdFor(itemid, due):
    """Return the job id (an ObjectId string) of an item's call at due."""
    key = '%s@%s' % (itemid, to_utc(due, 'due').isoformat())
    return str(ObjectId(hashlib.sha1(key.encode('utf-8')).digest()[:12]))


#: What adding a job whose id exists already raises: the processor's
#: error, or the store's where the job was added by other means.
DUPLICATE_ERRORS = (DuplicateJobError, pymongo.errors.DuplicateKeyError)


def scheduleNextJob(processor, callTime=None):
    """Turn the next due item of processor.scheduler into a job, exactly
    once across schedulers; return the job id or None.

    An error adding the job (other than the job existing) propagates and
    leaves the item locked: it is tried again after its retryDelay.
    """
    scheduler = processor.scheduler
    callTime = scheduler.now(callTime)
    item = scheduler.pullNextSchedulerItem(callTime)
    if item is None:
        return None
    due = item.nextCallTime
    jobid = jobIdFor(item.__name__, due)
    try:
        processor.addJob(item.jobName, item.input, immediate=True,
                         jobid=jobid)
    except DUPLICATE_ERRORS:
        # a scheduler that died before advancing created it already
        log.info('job %s of scheduler item %s due %s exists already',
                 jobid, item.__name__, due)
    if not scheduler.advanceItem(item, due, callTime):
        log.info('scheduler item %s was changed while due %s',
                 item.__name__, due)
    return jobid
