"""The scheduler container in MongoDB: its items (``scheduler.items``),
each locked while it is due, and ``put_scheduler_item`` for the
``add_remote_scheduler_item`` directive.

An item is locked by ``pullNextSchedulerItem``: its ``retryTime`` set to
``callTime + retryDelay`` with one conditional write whose filter
restates the precondition (active, the nextCallTime seen, unlocked or
the lock expired). The lock is re-entrant for its owner at the very same
callTime, as the specification shows. ``advanceItem`` stores the next
call time with one write conditional on ``nextCallTime == due`` and
clears the lock. How a due item becomes its one job is
``scheduler.occurrences``.
"""
import datetime
import logging
import threading
import uuid

import bson.errors
import pymongo
import pymongo.errors
import zope.interface
from bson import ObjectId

from m01.remote import interfaces
from m01.remote.clock import utcnow
from m01.remote.scheduler.cron import FIELD_NAMES, to_utc
from m01.remote.scheduler.items import (
    _READ_ONLY,
    _SCHEDULE_FIELDS,
    DEFAULT_RETRY_DELAY,
    Cron,
    Delay,
    SchedulerItem,
)

log = logging.getLogger('m01.remote')

# update() retries when a scheduler moved the item between read and write.
_REWRITE_ATTEMPTS = 5


def _lockable(data, callTime):
    """Whether data (a dump) says the item may be locked at callTime."""
    nextCallTime, retryTime = data.get('nextCallTime'), data.get('retryTime')
    return (data.get('active') is True and nextCallTime is not None
            and to_utc(nextCallTime) <= callTime
            and (retryTime is None or to_utc(retryTime) <= callTime))


def _due_order(item):
    return (item.nextCallTime is None, item.nextCallTime or 0, item.__name__)


@zope.interface.implementer(interfaces.IScheduler)
class Scheduler:
    """The scheduler items of one collection.

    Items added or loaded here are kept in an identity map, so the object
    given to ``add`` is the one ``pullNextSchedulerItem`` returns and
    updates.  Items added by this scheduler are tried first when pulling.
    """

    itemFactories = {'Cron': Cron, 'Delay': Delay}
    #: How many due items one pull tries before giving up to other pullers.
    pullBatchSize = 10

    def __init__(self, collection, clock=None):
        self.collection = collection
        self.clock = clock or utcnow
        # identifies this scheduler's locks (re-entrant for the owner)
        self.token = uuid.uuid4().hex
        self._lock = threading.RLock()
        self._items = {}
        self._added = {}
        # due items read by the last query and not tried yet
        self._batch = []

    def now(self, callTime=None):
        """Return callTime (default: the clock) in UTC, milliseconds."""
        return to_utc(self.clock() if callTime is None else callTime)

    def ensureIndexes(self):
        """Create the index of the pull query (idempotent)."""
        self.collection.create_index([('active', 1), ('nextCallTime', 1)],
                                     name='m01_remote_scheduler_due')

    # loading and the identity map

    def _oid(self, item):
        name = item if isinstance(item, (str, ObjectId)) else item.__name__
        try:
            return ObjectId(name)
        except (bson.errors.InvalidId, TypeError):
            raise KeyError(name) from None

    def _make(self, doc):
        """Return a new item from a stored document."""
        doc = dict(doc)
        doc.pop('lockedBy', None)
        factory = self.itemFactories.get(doc.get('_type'))
        if factory is None:
            raise ValueError('unknown scheduler item type %r'
                             % (doc.get('_type'),))
        return factory(doc)

    def _load(self, doc):
        fresh = self._make(doc)
        factory = type(fresh)
        name = fresh.__name__
        with self._lock:
            item = self._items.get(name)
            if type(item) is not factory:
                item = self._items[name] = fresh
                if name in self._added:
                    self._added[name] = fresh
            else:
                item.__dict__.update(fresh.__dict__)
            return item

    def _forget(self, name):
        with self._lock:
            self._items.pop(name, None)
            self._added.pop(name, None)

    def _refresh(self, item):
        doc = self.collection.find_one({'_id': self._oid(item)})
        if doc is None:
            self._forget(item.__name__)
        else:
            self._load(doc)

    # container API

    def add(self, item):
        """Store the item and return its id.  An active item without a
        nextCallTime is scheduled from the clock."""
        if not isinstance(item, SchedulerItem):
            raise ValueError('not a scheduler item: %r' % (item,))
        if item.__name__ is not None:
            raise ValueError('%r is already added' % (item,))
        with self._lock:
            if item.active and item.nextCallTime is None:
                item.getNextCallTime(self.now())
            item.__name__ = str(ObjectId())
            doc = item.dump()
            doc['lockedBy'] = None
            try:
                self.collection.insert_one(doc)
            except BaseException:
                item.__name__ = None
                raise
            self._items[item.__name__] = self._added[item.__name__] = item
        return item.__name__

    def remove(self, item):
        """Remove the item (or the item with that id)."""
        oid = self._oid(item)
        result = self.collection.delete_one({'_id': oid})
        self._forget(str(oid))
        if not result.deleted_count:
            raise KeyError(str(oid))

    def values(self):
        return [self._load(doc)
                for doc in self.collection.find({}, sort=[('_id', 1)])]

    def query(self, sort=(('_id', 1),), skip=0, limit=100, match=None):
        """Items (those matching the filter ``match``, all by default) in
        the order ``sort`` (``(field, direction)`` pairs), ``limit`` of
        them after the first ``skip``."""
        cursor = self.collection.find(match or {}, sort=list(sort))
        return [self._load(doc) for doc in cursor.skip(skip).limit(limit)]

    def count(self, match=None):
        """How many items match the filter ``match`` (all by default)."""
        return self.collection.count_documents(match or {})

    def __getitem__(self, itemid):
        doc = self.collection.find_one({'_id': self._oid(itemid)})
        if doc is None:
            raise KeyError(itemid)
        return self._load(doc)

    def get(self, itemid, default=None):
        try:
            return self[itemid]
        except KeyError:
            return default

    def __len__(self):
        return self.collection.count_documents({})

    # changing items

    def _rewrite(self, item, change):
        """Store change(fresh copy) with a write conditional on the
        nextCallTime and retryTime read, so a scheduler moving the item
        meanwhile is never overwritten."""
        oid = self._oid(item)
        for _attempt in range(_REWRITE_ATTEMPTS):
            doc = self.collection.find_one({'_id': oid})
            if doc is None:
                self._forget(str(oid))
                raise KeyError(str(oid))
            new = change(self._make(doc))
            data = new.dump()
            del data['_id']
            if data['retryTime'] is None:
                data['lockedBy'] = None
            result = self.collection.update_one(
                {'_id': oid, 'nextCallTime': doc.get('nextCallTime'),
                 'retryTime': doc.get('retryTime')}, {'$set': data})
            if result.matched_count:
                return self._load(new.dump())
        raise RuntimeError('scheduler item %s kept changing, not updated'
                           % oid)

    def update(self, item, **fields):
        """Change fields of an item (or id) and return it.  Changing the
        schedule (cron fields, delay, timezone, active) computes the next
        call time from the clock unless nextCallTime is given."""
        readonly = _READ_ONLY.intersection(fields)
        if readonly:
            raise ValueError('cannot update %s' % ', '.join(sorted(readonly)))
        callTime = self.now()

        def change(current):
            data = current.dump()
            if fields.get('expression') is not None:
                # the fields follow the new expression
                for name in FIELD_NAMES + ('dayMatch',):
                    data.pop(name, None)
            elif set(fields) & set(FIELD_NAMES + ('dayMatch',)):
                data.pop('expression', None)
            data.update(fields)
            if not _SCHEDULE_FIELDS.intersection(fields):
                return type(current)(data)
            data['retryTime'] = None
            new = type(current)(data)
            if 'nextCallTime' not in fields or not new.active:
                new.nextCallTime = None
                new.getNextCallTime(callTime)
            return new

        return self._rewrite(item, change)

    def reScheduleItem(self, item, callTime=None):
        """Compute and store the next call time from callTime; the item
        (or id) is returned."""
        callTime = self.now(callTime)

        def change(current):
            current.nextCallTime = current.retryTime = None
            current.getNextCallTime(callTime)
            return current

        return self._rewrite(item, change)

    def reScheduleItems(self, callTime=None):
        callTime = self.now(callTime)
        for item in self.values():
            try:
                self.reScheduleItem(item, callTime)
            except KeyError:
                pass  # removed meanwhile

    # pulling

    def updateRetryTime(self, data, callTime=None):
        """Lock the item described by data (a dump) at callTime; return the
        new retryTime, or False when it is not due, locked or changed."""
        locked = self._lockItem(data, self.now(callTime))
        return locked['retryTime'] if locked is not None else False

    def _lockItem(self, data, callTime):
        """Lock the item described by data (a dump) at callTime with one
        conditional write; return the item's document as locked, or None
        when it is not due, locked or changed."""
        if data.get('_id') is None or not _lockable(data, callTime):
            return None
        retryTime = to_utc(callTime + datetime.timedelta(
            seconds=data.get('retryDelay', DEFAULT_RETRY_DELAY)))
        locked = self.collection.find_one_and_update(
            {'_id': ObjectId(data['_id']), 'active': True,
             'nextCallTime': to_utc(data['nextCallTime']),
             '$or': [{'retryTime': None},
                     {'retryTime': {'$lte': callTime}},
                     {'retryTime': retryTime, 'lockedBy': self.token}]},
            {'$set': {'retryTime': retryTime, 'lockedBy': self.token}},
            return_document=pymongo.ReturnDocument.AFTER)
        if locked is not None:
            locked['retryTime'] = to_utc(locked['retryTime'])
        return locked

    def getNextCachedItem(self, callTime=None):
        """Lock and return the next due item added by this scheduler."""
        callTime = self.now(callTime)
        with self._lock:
            items = sorted(self._added.values(), key=_due_order)
        for item in items:
            data = item.dump()
            if not _lockable(data, callTime):
                continue
            retryTime = self.updateRetryTime(data, callTime)
            if retryTime:
                with self._lock:
                    item.retryTime = retryTime
                return item
            self._refresh(item)  # the copy was stale: read it again
        return None

    def pullNextSchedulerItem(self, callTime=None):
        """Lock and return the next due item, or None.  The nextCallTime
        stays as it is until ``advanceItem``.

        One query reads up to ``pullBatchSize`` due items; the ones not
        taken are tried by the next pulls before querying again.  They may
        have changed meanwhile: the lock's condition refuses an item that
        is no longer due or has been locked, and the item is loaded from
        the document the lock returns, never from the one read before."""
        callTime = self.now(callTime)
        item = self.getNextCachedItem(callTime)
        if item is not None:
            return item
        with self._lock:
            batch, self._batch = self._batch, []
        item = self._lockFirst(batch, callTime)
        if item is None:
            query = {'active': True, 'nextCallTime': {'$lte': callTime},
                     '$or': [{'retryTime': None},
                             {'retryTime': {'$lte': callTime}}]}
            item = self._lockFirst(list(self.collection.find(
                query, sort=[('nextCallTime', 1)], limit=self.pullBatchSize)),
                callTime)
        return item

    def _lockFirst(self, batch, callTime):
        """Lock and return the first item of batch (documents) that can
        be locked; keep the ones after it for the next pull."""
        for position, doc in enumerate(batch):
            locked = self._lockItem(doc, callTime)
            if locked is None:
                continue  # another scheduler was faster, or it changed
            with self._lock:
                self._batch = batch[position + 1:]
            try:
                return self._load(locked)
            except ValueError:
                # locked, so it is logged once per retryDelay, not per pull
                log.exception('scheduler item %s cannot be loaded',
                              doc['_id'])
        return None

    def advanceItem(self, item, due, callTime=None):
        """Store the call time following callTime and release the lock,
        if the item is still due at ``due``; return whether it was."""
        callTime, due = self.now(callTime), to_utc(due, 'due')
        with self._lock:
            probe = type(item)(item.dump())
        probe.nextCallTime = due
        probe.getNextCallTime(callTime)
        result = self.collection.update_one(
            {'_id': self._oid(item), 'nextCallTime': due},
            {'$set': {'nextCallTime': probe.nextCallTime, 'retryTime': None,
                      'lockedBy': None}})
        if result.matched_count:
            with self._lock:
                item.nextCallTime, item.retryTime = probe.nextCallTime, None
            return True
        self._refresh(item)
        return False


# Not compared: the scheduler moves these itself.
_MOVING_FIELDS = ('_id', '_type', 'nextCallTime', 'retryTime')


def _configured(item):
    data = item.dump()
    for key in _MOVING_FIELDS:
        data.pop(key, None)
    return data


def put_scheduler_item(scheduler, name, item):
    """Store (a copy of) ``item`` as the scheduler's item titled ``name``
    and return its id: added when there is none, updated when it changed,
    left alone (its next call time too) when it did not.

    Two processes starting at the same moment may both add it; the next
    start removes the younger duplicate.
    """
    data = dict(item.dump(), title=name)
    data.pop('_id', None)
    wanted = type(item)(data)
    stored = [i for i in scheduler.values() if i.title == name]
    keep = None
    for candidate in stored:
        if keep is None and type(candidate) is type(wanted):
            keep = candidate
        else:
            scheduler.remove(candidate)
    if keep is None:
        return scheduler.add(wanted)
    old, new = _configured(keep), _configured(wanted)
    changed = {key: value for key, value in new.items()
               if old.get(key) != value}
    if changed:
        log.info('Scheduler item %r changed: %s', name,
                    ', '.join(sorted(changed)))
        scheduler.update(keep, **changed)
    return keep.__name__
