"""The queue's own updates of one job, applied in place in the embedded
store.

mongomock applies an update by deep-copying the document first (to tell
whether the update changed it) and copies every value it sets; for a
job document with its attempts, errors and search terms that copy is
most of what a claim or an outcome costs. The updates the queue makes
of one job by ``_id`` are simple: ``$set``, ``$unset`` and ``$inc`` of
top-level fields, and ``$push`` of values (or ``$each`` with an optional
``$slice``) onto a top-level list. ``updateInPlace`` applies those to the
stored document directly, with mongomock's conversions of the values
(times as naive UTC at millisecond precision, containers copied), and
notes the change for the claim indexes (``m01.remote.store.embedded.index``).
Anything else (another operator, a dotted field, a unique index to
check, a value of an unexpected type) is left to mongomock: the function
answers None before it changed anything.

Every function here runs under the embedded store's lock (see
``store.embedded.client``).
"""
import numbers

import bson
from mongomock import filtering, helpers

#: The operators applied here.
OPERATORS = frozenset(('$set', '$unset', '$inc', '$push'))
#: The ``$push`` modifiers applied here.
PUSH_MODIFIERS = frozenset(('$each', '$slice'))


def updateInPlace(collection, query, update, noteChanged, matched=False):
    """Apply ``update`` to the document of the mongomock ``collection``
    whose ``_id`` ``query`` names, if it matches ``query``: 1 when it
    was changed, 0 when no document matched, None when the update is not
    one applied here (nothing changed: let mongomock apply it).
    ``noteChanged(oid)`` is told of the change. With ``matched``, an
    update without ``$inc`` (a lease renewal) is applied here too, and 1
    says that the document matched, whether or not it changed."""
    oid = query.get('_id') if type(query) is dict else None
    if not isinstance(oid, bson.ObjectId) or not _applicable(
            collection, update, matched):
        return None
    document = collection._store._documents.get(oid)
    if document is None:
        return 0
    query = helpers.patch_datetime_awareness_in_document(query)
    if not filtering.filter_applies(query, document):
        return 0
    update = helpers.patch_datetime_awareness_in_document(update)
    if not _fits(document, update):
        return None
    for field, value in update.get('$set', {}).items():
        document[field] = value
    for field in update.get('$unset', {}):
        document.pop(field, None)
    for field, amount in update.get('$inc', {}).items():
        document[field] = document.get(field, 0) + amount
    for field, value in update.get('$push', {}).items():
        _push(document, field, value)
    noteChanged(oid)
    return 1


def _applicable(collection, update, matched=False):
    """Whether ``update`` is one applied here, on ``collection``."""
    if type(update) is not dict or not (update.get('$inc') or (
            matched and update)):
        # Without an $inc an update may change nothing, which mongomock
        # tells by comparing; every update of the queue counts a version
        # (but a renewal, whose caller asks whether it matched).
        return False
    if any(index.get('unique') and [key for key, _ in index['key']]
           != ['_id'] for index in collection._store.indexes.values()):
        return False      # mongomock checks them after each update
    fields = set()
    for operator, changes in update.items():
        if operator not in OPERATORS or type(changes) is not dict:
            return False
        for field in changes:
            if '.' in field or field.startswith('$') or field == '_id' \
                    or field in fields:
                return False
            fields.add(field)
    for value in update.get('$push', {}).values():
        if type(value) is dict and (
                not set(value) <= PUSH_MODIFIERS or '$each' not in value):
            return False
    return True


def _fits(document, update):
    """Whether the converted ``update`` can be applied to ``document`` as
    MongoDB would, without an error to report."""
    for field, amount in update.get('$inc', {}).items():
        if not _isNumber(amount) or not _isNumber(document.get(field, 0)):
            return False
    for field, value in update.get('$push', {}).items():
        if not isinstance(document.get(field, []), list):
            return False
        if type(value) is dict:
            if not isinstance(value['$each'], list):
                return False
            limit = value.get('$slice')
            if limit is not None and (type(limit) is not int):
                return False
    return True


def _isNumber(value):
    return isinstance(value, numbers.Number) and not isinstance(value, bool)


def _push(document, field, value):
    items = document.setdefault(field, [])
    if type(value) is not dict:
        items.append(value)
        return
    items.extend(value['$each'])
    limit = value.get('$slice')
    if limit is None:
        return
    if limit >= 0:
        del items[limit:]
    elif len(items) > -limit:
        del items[:len(items) + limit]
