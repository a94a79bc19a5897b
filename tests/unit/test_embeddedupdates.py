"""The embedded store's in-place updates of one job
(``m01.remote.store.embedded.updates``) leave the document as mongomock's own
update would, and leave to mongomock what they do not apply."""
import datetime

import bson
import pytest

from m01.remote import store
from m01.remote.store.embedded.updates import updateInPlace

UTC = datetime.timezone.utc
WHEN = datetime.datetime(2030, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
ZURICH = datetime.timezone(datetime.timedelta(hours=1))

DOCUMENT = {'status': 'queued', 'version': 3, 'claim': 'abc',
            'attempts': [{'n': 1}, {'n': 2}], 'errors': [],
            'input': {'nested': [1, 2]}, 'count': 1.5}

APPLIED = {
    'set and inc': {'$set': {'status': 'processing', 'picked': WHEN,
                             'worker': 'w'}, '$inc': {'version': 1}},
    'a time elsewhere': {'$set': {'at': WHEN.astimezone(ZURICH)},
                         '$inc': {'version': 1}},
    'unset': {'$unset': {'claim': '', 'missing': ''},
              '$inc': {'version': 1}},
    'inc a missing and a float': {'$inc': {'version': 1, 'new': 2,
                                           'count': 1}},
    'push one': {'$push': {'errors': 'boom'}, '$inc': {'version': 1}},
    'push a list as one': {'$push': {'errors': [1, 2]},
                           '$inc': {'version': 1}},
    'push to a missing list': {'$push': {'log': {'$each': ['a', 'b']}},
                               '$inc': {'version': 1}},
    'push sliced from the end': {
        '$push': {'attempts': {'$each': [{'n': 3}, {'n': 4}],
                               '$slice': -3}}, '$inc': {'version': 1}},
    'push sliced from the start': {
        '$push': {'attempts': {'$each': [{'n': 3}], '$slice': 2}},
        '$inc': {'version': 1}},
    'push sliced to nothing': {
        '$push': {'attempts': {'$each': [{'n': 3}], '$slice': 0}},
        '$inc': {'version': 1}},
    'a set value with times inside': {
        '$set': {'output': {'at': [WHEN], 'deep': {'x': WHEN}}},
        '$inc': {'version': 1}},
}

LEFT_TO_MONGOMOCK = {
    'no version counted': {'$set': {'status': 'processing'}},
    'another operator': {'$addToSet': {'errors': 'x'},
                         '$inc': {'version': 1}},
    'a dotted field': {'$set': {'input.nested': 1}, '$inc': {'version': 1}},
    'the id': {'$set': {'_id': 1}, '$inc': {'version': 1}},
    'a field twice': {'$set': {'claim': 1}, '$unset': {'claim': ''},
                      '$inc': {'version': 1}},
    'an unknown push modifier': {
        '$push': {'attempts': {'$each': [1], '$position': 0}},
        '$inc': {'version': 1}},
    'a push onto a non-list': {'$push': {'status': 1},
                               '$inc': {'version': 1}},
    'an inc of a string': {'$inc': {'status': 1}},
    'an inc by a string': {'$inc': {'version': 'one'}},
}


@pytest.fixture
def collections():
    database = store.connect('mongomock://')['m01updates']
    # The raw mongomock collections, as the store's lock holder sees them.
    return (database['mine']._wrapped, database['theirs']._wrapped)


def stored(collection, oid):
    return collection.find_one({'_id': oid})


@pytest.mark.parametrize('name', sorted(APPLIED))
def test_an_update_applied_in_place_is_mongomocks(collections, name):
    mine, theirs = collections
    oid = bson.ObjectId()
    for collection in collections:
        collection.insert_one(dict(DOCUMENT, _id=oid))
    noted = []
    update = APPLIED[name]
    assert updateInPlace(mine, {'_id': oid, 'claim': 'abc'}, update,
                         noted.append) == 1
    assert theirs.update_one({'_id': oid, 'claim': 'abc'},
                             update).modified_count == 1
    assert stored(mine, oid) == stored(theirs, oid)
    assert noted == [oid]
    # Nothing set was shared with the caller's update.
    for value in update.get('$set', {}).values():
        if isinstance(value, dict):
            value['changed'] = True
    assert stored(mine, oid) == stored(theirs, oid)


@pytest.mark.parametrize('name', sorted(LEFT_TO_MONGOMOCK))
def test_other_updates_are_left_to_mongomock_unchanged(collections, name):
    mine, _theirs = collections
    oid = mine.insert_one(dict(DOCUMENT)).inserted_id
    before = stored(mine, oid)
    noted = []
    assert updateInPlace(mine, {'_id': oid}, LEFT_TO_MONGOMOCK[name],
                         noted.append) is None
    assert stored(mine, oid) == before
    assert noted == []


def test_a_filter_that_does_not_match_changes_nothing(collections):
    mine, _theirs = collections
    oid = mine.insert_one(dict(DOCUMENT)).inserted_id
    before = stored(mine, oid)
    update = APPLIED['set and inc']
    assert updateInPlace(mine, {'_id': oid, 'claim': 'other'}, update,
                         None) == 0
    assert updateInPlace(mine, {'_id': bson.ObjectId()}, update, None) == 0
    assert stored(mine, oid) == before


def test_a_query_not_by_id_or_a_unique_index_is_left_to_mongomock(
        collections):
    mine, _theirs = collections
    oid = mine.insert_one(dict(DOCUMENT)).inserted_id
    update = APPLIED['set and inc']
    assert updateInPlace(mine, {'status': 'queued'}, update, None) is None
    mine.create_index([('worker', 1)], unique=True, sparse=True)
    assert updateInPlace(mine, {'_id': oid}, update, None) is None
