"""Indexes for the embedded store's hot paths.

mongomock keeps a collection as a dictionary of documents keyed by
``_id`` and has no indexes: every query tests every document, and a
sorted query copies and sorts all that match. Two paths of the queue
cannot afford that with thousands of jobs stored:

- a write by ``_id`` (each change of a job) looks the document up in the
  dictionary, as does a bulk write of ids (``{'_id': {'$in': [...]}}``)
  for each of its ids (``instrument``);
- a claim (the oldest due job) reads an ordered index of the queued jobs
  (``claimFirst``) that is kept up to date from the ids of the documents
  changed since the last claim;
- a query naming one ``status`` (a lease renewal, lease recovery, the
  timeouts, a page of one status) tests only the documents of that
  status, found through an index of the ``status`` values kept up to
  date the same way: the lease keeper's queries would otherwise test
  every completed job, a few times a minute, holding the store's lock;
- the pages' aggregates (the jobs counted by factory and status, the due
  jobs of each factory and the oldest of them) read counts kept up to
  date the same way (``countBy``, ``backlog``): mongomock's aggregation
  reads and copies every job, seconds for 20,000 of them, at each view
  of the overview or the statistics.

The index learns of every change: the documents dictionary of the
collection is replaced by one that notes the ids set and deleted
(inserts, replacements, deletes, expiries), and mongomock's update path,
which every update, replace and find-and-modify goes through
(``Collection._update``), notes the ids of the documents it is about to
change in place. A drop gives the collection a new dictionary; the next
claim sees it and builds its indexes again.

Every function here runs under the embedded store's lock (see
``store.embedded.client``), and only where ``compat.indexed()`` says
the index fits the mongomock in use.
"""
import collections
import copy
import heapq
import itertools

import bson
import pymongo
from mongomock import filtering, helpers

from m01.remote.queue.updates import orderKey
from m01.remote.store.embedded.counts import BacklogIndex, CountIndex
from m01.remote.store.embedded.updates import updateInPlace

#: The index keeps at most this many outdated heap entries per current one
#: before it rebuilds its heap.
OUTDATED_ENTRIES_PER_ENTRY = 2


def instrument(collection):
    """Give a mongomock collection object the look-up by ``_id`` and the
    change notes the claim index needs (once per object)."""
    if '_iter_documents' in vars(collection):
        return
    scan = collection._iter_documents
    update = collection._update

    def lookUp(filter):
        oid = filter.get('_id') if type(filter) is dict else None
        if isinstance(oid, (bson.ObjectId, str)):
            document = collection._store._documents.get(oid)
            if document is None or \
                    not filtering.filter_applies(filter, document):
                return iter(())
            return iter((document,))
        oids = _idsIn(oid)
        if oids is not None:
            # A batch by ``_id`` (a bulk delete, the retention's): each
            # looked up, not every document tested against the list.
            documents = collection._store._documents
            rest = {key: value for key, value in filter.items()
                    if key != '_id'}
            return iter([documents[each] for each in oids
                         if each in documents and filtering.filter_applies(
                             rest, documents[each])])
        status = filter.get('status') if type(filter) is dict else None
        state = _liveClaimState(collection._store)
        if not isinstance(status, str) or state is None:
            return scan(filter)
        # Read before the caller changes any of them.
        documents = state.documents
        return iter([documents[oid] for oid in state.statusIds(status)
                     if filtering.filter_applies(filter, documents[oid])])

    def iterDocuments(filter):
        state = _liveClaimState(collection._store)
        if state is not None and state.updating:
            return state.noteEach(lookUp(filter))
        return lookUp(filter)

    def noteChanges(*args, **kw):
        state = _liveClaimState(collection._store)
        if state is None:
            return update(*args, **kw)   # nobody claims from it: no notes
        state.updating += 1
        try:
            return update(*args, **kw)
        finally:
            state.updating -= 1

    collection._iter_documents = iterDocuments
    collection._update = noteChanges


def _idsIn(condition):
    """The ids of an ``{'$in': [ids]}`` condition on ``_id``, each once,
    in order; None for any other condition."""
    if type(condition) is not dict or list(condition) != ['$in'] or \
            not isinstance(condition['$in'], (list, tuple)) or not all(
                isinstance(each, (bson.ObjectId, str))
                for each in condition['$in']):
        return None
    return list(dict.fromkeys(condition['$in']))


def claimFirst(collection, query, order, update, equal):
    """Update and return (as updated) the first document, in ``order``
    (``(field, direction)`` pairs), of those with the ``equal`` (field,
    value) pairs that match ``query``; None when there is none."""
    state = _claimState(collection._store)
    index = state.index(tuple(equal), tuple(order))
    documents = state.documents
    heap = index.heap
    skipped = []
    try:
        while heap:
            key, _, oid = heap[0]
            if index.keys.get(oid) != key:
                heapq.heappop(heap)           # outdated entry
                continue
            if filtering.filter_applies(query, documents[oid]):
                return updateOne(collection, {'_id': oid}, update,
                                 returnDocument=True)
            skipped.append(heapq.heappop(heap))   # not due, or not asked
        return None
    finally:
        for entry in skipped:
            heapq.heappush(heap, entry)


def updateOne(collection, query, update, returnDocument=False,
              matched=False):
    """``update_one(query, update)`` on the mongomock ``collection``: its
    modified count (with ``matched``, its matched count), or with
    ``returnDocument`` the document as updated (None when none matched),
    as ``find_one_and_update`` returns it. The queue's updates of one job
    are applied in place (``m01.remote.store.embedded.updates``), others
    by mongomock."""
    modified = updateInPlace(collection, query, update,
                             lambda oid: _noteChanged(collection._store, oid),
                             matched=matched and not returnDocument)
    if modified is None:
        if returnDocument:
            return collection.find_one_and_update(
                query, update, return_document=pymongo.ReturnDocument.AFTER)
        result = collection.update_one(query, update)
        return result.matched_count if matched else result.modified_count
    if not returnDocument:
        return modified
    if not modified:
        return None
    document = collection._store._documents[query['_id']]
    if collection.codec_options.tz_aware:
        # A copy, its times aware, as mongomock's reads return them.
        return helpers.make_datetime_timezone_aware_in_document(
            document)
    return copy.deepcopy(document)


def countBy(collection, fields):
    """``{(value, ...): n}``: the documents of the mongomock
    ``collection`` counted by their values of ``fields`` (None for a
    missing one), as a ``$group`` would count them; kept up to date from
    the changes since the last call, not counted again."""
    return _claimState(collection._store).counts(tuple(fields))


def latest(collection, order, limit, where):
    """Up to ``limit`` documents of the mongomock ``collection`` for
    which ``where(document)`` holds, first in ``order`` (``(field,
    direction)`` pairs), read from an ordered index of those documents
    kept up to date from the changes; copies, their times aware as
    mongomock's reads return them."""
    state = _claimState(collection._store)
    index = state.index((), tuple(order), where)
    documents = state.documents
    heap = index.heap
    taken = []
    found = []
    try:
        while heap and len(found) < limit:
            entry = heapq.heappop(heap)
            key, _, oid = entry
            if index.keys.get(oid) != key:
                continue                      # outdated entry
            taken.append(entry)
            found.append(documents[oid])
    finally:
        for entry in taken:
            heapq.heappush(heap, entry)
    if collection.codec_options.tz_aware:
        return [helpers.make_datetime_timezone_aware_in_document(document)
                for document in found]
    return [copy.deepcopy(document) for document in found]


def backlog(collection, now):
    """``{name: (n, queued)}``: the jobs of the mongomock ``collection``
    due at ``now`` by their ``name``, and when the oldest of them was
    queued (``counts.BacklogIndex.due``)."""
    return _claimState(collection._store).backlog().due(now)


def _noteChanged(store, oid):
    state = _liveClaimState(store)
    if state is not None:
        state.documents.changed.add(oid)


class _NotingDocuments(collections.OrderedDict):
    """A collection's documents, noting the ids set or deleted. Only a
    collection claimed from gets one (``_claimState``): others keep no
    notes."""

    def __init__(self, documents):
        self.changed = set()
        super().__init__(documents)

    def __setitem__(self, key, value):
        self.changed.add(key)
        super().__setitem__(key, value)

    def __delitem__(self, key):
        self.changed.add(key)
        super().__delitem__(key)


class _ClaimState:
    """The claim indexes of one collection and the changes they have not
    seen yet."""

    def __init__(self, documents):
        self.documents = documents
        self.indexes = {}
        self.statuses = None
        self.groups = {}
        self.due = None
        self.updating = 0

    def noteEach(self, documents):
        for document in documents:
            self.documents.changed.add(document['_id'])
            yield document

    def _catchUp(self):
        changed, self.documents.changed = self.documents.changed, set()
        for index in self.indexes.values():
            index.note(changed, self.documents)
        if self.statuses is not None:
            self.statuses.note(changed, self.documents)
        for group in self.groups.values():
            group.note(changed, self.documents)
        if self.due is not None:
            self.due.note(changed, self.documents)

    def counts(self, fields):
        """The counts of the documents by their values of ``fields``."""
        self._catchUp()
        group = self.groups.get(fields)
        if group is None:
            group = self.groups[fields] = CountIndex(fields)
            group.note(list(self.documents), self.documents)
        return dict(group.counts)

    def backlog(self):
        """The index of the queued, active documents (``BacklogIndex``).
        """
        self._catchUp()
        if self.due is None:
            self.due = BacklogIndex()
            self.due.note(list(self.documents), self.documents)
        return self.due

    def statusIds(self, status):
        """The ids of the documents whose ``status`` is ``status``."""
        self._catchUp()
        if self.statuses is None:
            self.statuses = _ValueIndex('status')
            self.statuses.note(list(self.documents), self.documents)
        return list(self.statuses.ids.get(status, ()))

    def index(self, equal, order, where=None):
        self._catchUp()
        index = self.indexes.get((equal, order, where))
        if index is None:
            index = self.indexes[equal, order, where] = _OrderedIndex(
                equal, order, where)
            index.note(list(self.documents), self.documents)
        return index


def _liveClaimState(store):
    """The claim state of a collection claimed from, None for the others
    (and after a drop, until the next claim builds it again)."""
    state = getattr(store, '_m01_claims', None)
    if state is not None and store._documents is state.documents:
        return state
    return None


def _claimState(store):
    state = _liveClaimState(store)
    if state is None:
        # First use, or a drop replaced the dictionary.
        state = store._m01_claims = _ClaimState(
            _NotingDocuments(store._documents))
        store._documents = state.documents
    return state


class _OrderedIndex:
    """The ids of the documents having the ``equal`` pairs (and for which
    ``where(document)`` holds, when given), in a heap in ``order``.
    ``keys`` holds each member's current key; a heap entry whose key is
    not that one is outdated and skipped."""

    def __init__(self, equal, order, where=None):
        self.equal = equal
        self.order = order
        self.where = where
        self.keys = {}
        self.heap = []
        self._counter = itertools.count()

    def note(self, ids, documents):
        keys = self.keys
        for oid in ids:
            document = documents.get(oid)
            if document is None or not all(
                    document.get(field) == value
                    for field, value in self.equal) or (
                    self.where is not None and not self.where(document)):
                keys.pop(oid, None)
                continue
            key = orderKey(document, self.order)
            if keys.get(oid) != key:
                keys[oid] = key
                heapq.heappush(self.heap, (key, next(self._counter), oid))
        if len(self.heap) > (OUTDATED_ENTRIES_PER_ENTRY + 1) * len(keys) + 64:
            self.heap = [(key, next(self._counter), oid)
                         for oid, key in keys.items()]
            heapq.heapify(self.heap)


class _ValueIndex:
    """The ids of the documents by their value of ``field``, for the
    documents where it is a string."""

    def __init__(self, field):
        self.field = field
        self.ids = {}        # value -> {id: None}, in the order noted
        self.values = {}     # id -> value

    def note(self, ids, documents):
        for oid in ids:
            old = self.values.pop(oid, None)
            if old is not None:
                members = self.ids[old]
                del members[oid]
                if not members:
                    del self.ids[old]
            document = documents.get(oid)
            value = None if document is None else document.get(self.field)
            if isinstance(value, str):
                self.values[oid] = value
                self.ids.setdefault(value, {})[oid] = None

