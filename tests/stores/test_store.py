"""m01.remote.store on both stores: connecting, time zones, and the
embedded store's thread safety, its index and the mongomock releases it
fits."""
import datetime
import itertools
import logging
import threading

import pymongo
import pytest
import transaction

from m01.remote import store, testing
from m01.remote.processor import RemoteProcessor
from m01.remote.store.embedded import compat
from m01.remote.store.embedded.writes import EmbeddedJobWrites

THREADS = 4


def test_connect_answers_ping(store_uri):
    client = store.connect(store_uri)
    try:
        assert client.admin.command('ping')['ok'] == 1
    finally:
        client.close()


def test_connect_rejects_unknown_schemes():
    with pytest.raises(ValueError, match='mongomock://'):
        store.connect('redis://127.0.0.1:6379/')


def test_embedded_store_is_recognised(database, store_uri):
    assert store.isEmbedded(database) == (store_uri == 'mongomock://')


def test_a_client_remembers_the_uri_it_was_made_from(database,
                                                     store_uri):
    if store_uri == 'mongomock://':
        assert store.uriOf(database) is None    # no other process sees it
        return
    assert store.uriOf(database) == store_uri
    other = pymongo.MongoClient(store_uri, connect=False)
    try:
        # A client made otherwise does not say (it would compare equal).
        assert other == database.client
        assert store.uriOf(other[database.name]) is None
    finally:
        other.close()


def test_embedded_clients_share_nothing():
    first = store.connect('mongomock://')
    second = store.connect('mongomock://')
    first.db.jobs.insert_one({'_id': 'only-here'})
    assert second.db.jobs.find_one({'_id': 'only-here'}) is None


def test_database_and_collection_navigation(database):
    jobs = database['jobs']
    assert jobs.name == 'jobs'
    assert jobs.database.name == database.name
    assert database.client[database.name].name == database.name
    jobs.insert_one({'_id': 'a'})
    assert database.jobs.find_one({'_id': 'a'}) == {'_id': 'a'}


def test_datetimes_come_back_aware_in_utc(database):
    utc = datetime.datetime(2024, 3, 30, 23, 59, 58, 123456,
                            tzinfo=datetime.timezone.utc)
    plus_two = datetime.datetime(2024, 3, 31, 1, 59, 58, 123456,
                                 tzinfo=datetime.timezone(
                                     datetime.timedelta(hours=2)))
    database.jobs.insert_one({'_id': 'a', 'utc': utc, 'plusTwo': plus_two})

    doc = database.jobs.find_one({'_id': 'a'})

    # BSON keeps milliseconds and the instant, not the offset.
    expected = utc.replace(microsecond=123000)
    for key in ('utc', 'plusTwo'):
        assert doc[key] == expected
        assert doc[key].utcoffset() == datetime.timedelta(0)


def test_aware_datetimes_compare_in_queries(database):
    now = datetime.datetime(2024, 1, 1, 12, tzinfo=datetime.timezone.utc)
    hour = datetime.timedelta(hours=1)
    database.jobs.insert_many([
        {'_id': 'past', 'retryTime': now - hour},
        {'_id': 'future', 'retryTime': now + hour},
    ])
    due = database.jobs.find({'retryTime': {'$lte': now}})
    assert [doc['_id'] for doc in due] == ['past']


def _claim_concurrently(collection, count):
    """THREADS threads claim queued documents until none is left.

    Returns the ids each thread claimed and the errors raised.
    """
    collection.insert_many(
        [{'_id': i, 'status': 'queued', 'owner': None}
         for i in range(count)])
    claims = {n: [] for n in range(THREADS)}
    errors = []
    start = threading.Barrier(THREADS)

    def claim(owner):
        try:
            start.wait()
            while True:
                doc = collection.find_one_and_update(
                    {'status': 'queued'},
                    {'$set': {'status': 'processing', 'owner': owner}},
                    sort=[('_id', pymongo.ASCENDING)],
                    return_document=pymongo.ReturnDocument.AFTER)
                if doc is None:
                    return
                claims[owner].append(doc['_id'])
        except Exception as e:  # reported by the test, not lost
            errors.append(e)

    threads = [threading.Thread(target=claim, args=(n,))
               for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not any(thread.is_alive() for thread in threads)
    return claims, errors


def test_concurrent_claims_take_each_document_once(database):
    # 200 documents are enough for unserialised mongomock to fail.
    count = 200
    claims, errors = _claim_concurrently(database.jobs, count)

    assert errors == []
    claimed = [i for ids in claims.values() for i in ids]
    assert len(claimed) == count, 'a document was claimed twice or lost'
    assert sorted(claimed) == list(range(count))
    # The stored owner is the thread that got the document back.
    for owner, ids in claims.items():
        stored = database.jobs.count_documents(
            {'_id': {'$in': ids}, 'owner': owner, 'status': 'processing'})
        assert stored == len(ids)


def test_cursors_survive_concurrent_writes(database):
    database.jobs.insert_many([{'_id': i} for i in range(200)])
    errors = []
    stop = threading.Event()

    def write():
        i = 1000
        while not stop.is_set():
            try:
                database.jobs.insert_one({'_id': i})
                database.jobs.delete_one({'_id': i - 1})
            except Exception as e:  # reported by the test, not lost
                errors.append(e)
                return
            i += 1

    writer = threading.Thread(target=write)
    writer.start()
    try:
        for _ in range(20):
            assert len(list(database.jobs.find({'_id': {'$lt': 200}}))) \
                == 200
    finally:
        stop.set()
        writer.join(30)
    assert errors == []


def test_embedded_lookups_by_id_keep_the_query_rules(mongomock_database):
    jobs = mongomock_database.jobs
    ids = jobs.insert_many([{'n': n, 'status': 'queued'}
                            for n in range(5)]).inserted_ids
    assert jobs.find_one({'_id': ids[2]})['n'] == 2
    assert jobs.find_one({'_id': ids[2], 'status': 'done'}) is None
    assert jobs.find_one({'_id': str(ids[2])}) is None   # not the same id
    assert jobs.update_one({'_id': ids[3], 'status': 'queued'},
                           {'$set': {'status': 'done'}}).modified_count == 1
    assert jobs.update_one({'_id': ids[3], 'status': 'queued'},
                           {'$set': {'status': 'again'}}).modified_count == 0
    assert [d['n'] for d in jobs.find({'_id': {'$in': ids[:2]}})] == [0, 1]
    jobs.drop()
    oid = jobs.insert_one({'n': 9}).inserted_id
    assert jobs.find_one({'_id': oid})['n'] == 9
    assert jobs.find_one({'_id': ids[0]}) is None


def test_embedded_claim_first_takes_the_oldest_match(mongomock_database):
    jobs = mongomock_database.jobs
    now = datetime.datetime.now(datetime.timezone.utc)
    later = now + datetime.timedelta(hours=1)
    jobs.insert_many([
        {'_id': 'c', 'status': 'queued', 'at': now, 'rank': 1},
        {'_id': 'a', 'status': 'done', 'at': now, 'rank': 0},
        {'_id': 'b', 'status': 'queued', 'at': later, 'rank': 0},
        {'_id': 'd', 'status': 'queued', 'at': now, 'rank': 2}])
    order = [('rank', pymongo.ASCENDING), ('_id', pymongo.ASCENDING)]
    due = {'status': 'queued', 'at': {'$lte': now}}
    claimed = jobs.claimFirst(due, order, {'$set': {'status': 'taken'}},
                              equal=[('status', 'queued')])
    # 'a' is not queued, 'b' is not due yet: 'c' is the first match.
    assert claimed['_id'] == 'c' and claimed['status'] == 'taken'
    assert claimed['at'].tzinfo is not None
    assert jobs.claimFirst(due, order, {'$set': {'status': 'taken'}}
                           )['_id'] == 'd'
    assert jobs.claimFirst(due, order, {'$set': {'status': 'taken'}}) \
        is None


def test_embedded_claim_index_follows_every_kind_of_change(
        mongomock_database):
    # The claim reads an index kept up to date from the changes since the
    # last claim; after any mix of writes it must take what a sorted query
    # over all documents would give.
    import random
    jobs = mongomock_database.jobs
    start = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
    order = [('queued', pymongo.ASCENDING), ('_id', pymongo.ASCENDING)]
    due = {'status': 'queued', 'retryTime': {'$lte': start}}
    randomly = random.Random(7)
    newIds = itertools.count(1000)

    def when():
        return start + datetime.timedelta(
            seconds=randomly.randrange(-50, 10))

    def document(n):
        return {'_id': n, 'status': randomly.choice(['queued', 'done']),
                'queued': when(), 'retryTime': when()}

    def some():
        return {'_id': randomly.randrange(60)}

    def replace():
        n = randomly.randrange(60)
        jobs.replace_one({'_id': n}, document(n))

    changes = [
        lambda: jobs.insert_one(document(next(newIds))),
        lambda: jobs.insert_many([document(next(newIds))
                                  for _ in range(3)]),
        lambda: jobs.update_one(some(), {'$set': {'queued': when()}}),
        lambda: jobs.update_one(some(), {'$set': {'status': 'queued',
                                                  'retryTime': when()}}),
        lambda: jobs.update_many({'queued': {'$gt': when()}},
                                 {'$set': {'status': 'queued'}}),
        replace,
        lambda: jobs.find_one_and_update(
            {'status': 'queued'}, {'$unset': {'queued': ''}}),
        lambda: jobs.update_one(
            some(), {'$set': {'status': 'queued', 'queued': when(),
                              'retryTime': when()}}, upsert=True),
        lambda: jobs.delete_one(some()),
        lambda: jobs.delete_many({'queued': {'$lt': when()}}),
        lambda: jobs.find_one_and_delete({'status': 'done'}),
    ]
    jobs.insert_many([document(n) for n in range(60)])
    claimed = 0
    for step in range(600):
        if step == 300:
            jobs.drop()
            jobs.insert_many([document(n) for n in range(60)])
        for change in randomly.sample(changes, 3):
            change()
        expected = jobs.find_one(due, sort=order)
        got = jobs.claimFirst(due, order, {'$set': {'status': 'taken'}},
                              equal=[('status', 'queued')])
        if expected is None:
            assert got is None
        else:
            assert got['_id'] == expected['_id']
            claimed += 1
    assert claimed > 100   # the comparison ran on real claims


def test_embedded_change_notes_start_with_the_first_claim(
        mongomock_database):
    # A collection nobody claims from (scheduler items, or jobs in a web
    # process without a worker) keeps no notes of its changes.
    from m01.remote.store.embedded import index as embeddedindex
    jobs = mongomock_database.jobs
    for n in range(50):
        jobs.insert_one({'_id': n, 'status': 'queued', 'at': n})
        jobs.delete_one({'_id': n})
    notes = embeddedindex._claimState(jobs._wrapped._store).documents
    assert notes.changed == set()
    jobs.insert_many([{'_id': 'a', 'status': 'queued', 'at': 1},
                      {'_id': 'b', 'status': 'queued', 'at': 2}])
    order = [('at', pymongo.ASCENDING)]

    def claim():
        return jobs.claimFirst({'status': 'queued'}, order,
                               {'$set': {'status': 'taken'}},
                               equal=[('status', 'queued')])['_id']
    assert claim() == 'a'
    assert notes.changed == {'a'}   # its own claim, read by the next one
    jobs.insert_one({'_id': 'c', 'status': 'queued', 'at': 0})
    assert claim() == 'c'
    assert notes.changed == {'c'}


def test_embedded_store_claims_in_place(mongomock_database):
    from m01.remote.store.strategy import jobWritesFor
    assert isinstance(jobWritesFor(mongomock_database, 'r'),
                      EmbeddedJobWrites)


# the mongomock releases the index fits

def test_the_tested_mongomock_runs_indexed():
    assert compat.check()
    assert compat.missing() == []
    assert compat.version('4.3.0') == (4, 3, 0)
    assert compat.version('5.0.0rc1') == (5, 0)
    assert compat.version('dev') == (0,)


@pytest.mark.parametrize('release, lacking', [
    ((4, 4, 0), []), ((4, 2, 9), []), ((0,), []),
    ((4, 3, 0), ['Collection._update'])])
def test_another_mongomock_runs_plain_with_a_warning(release, lacking,
                                                     caplog):
    with caplog.at_level(logging.WARNING, logger='m01.remote'):
        assert not compat.check(release, lacking)
    (record,) = caplog.records
    assert 'runs on plain mongomock, slower but correct' in \
        record.getMessage()
    assert ('lacks' in record.getMessage()) == bool(lacking)


@pytest.fixture
def plainMongomock(monkeypatch):
    """The embedded store as it runs outside the tested mongomock
    releases."""
    monkeypatch.setattr(compat, '_checked', False)


def test_plain_mongomock_runs_the_queue_unindexed(plainMongomock):
    client = store.connect('mongomock://')
    database = client.plain
    rp = RemoteProcessor(database)
    rp.ensureIndexes()
    assert type(rp.jobWrites.strategy) is EmbeddedJobWrites
    assert '_iter_documents' not in vars(rp.jobsCollection._wrapped)
    rp.addJobFactory('echo', testing.EchoJob())
    ids = [rp.addJob('echo', n, immediate=True) for n in range(5)]
    urgent = rp.addJob('echo', 'urgent', immediate=True, priority=1)
    assert [job.__name__ for job in rp.pullNextJobs(3)] == \
        [urgent] + ids[:2]
    assert rp.processJobs() == 3
    transaction.commit()
    assert {rp.getJobStatus(jobid) for jobid in ids[2:]} == {'completed'}


def test_embedded_status_lookups_follow_every_kind_of_change(
        mongomock_database):
    # Once the collection is claimed from, a query naming one status
    # tests only the documents of that status, found through an index
    # kept up to date from the changes: after any mix of writes it must
    # find what a test of every document finds.
    import random
    jobs = mongomock_database.jobs
    randomly = random.Random(11)
    statuses = ['queued', 'processing', 'done']
    newIds = itertools.count(1000)

    def document(n):
        return {'_id': n, 'status': randomly.choice(statuses),
                'rank': randomly.randrange(10)}

    def some():
        return {'_id': randomly.randrange(60)}

    def replace():
        n = randomly.randrange(60)
        jobs.replace_one({'_id': n}, document(n))

    changes = [
        lambda: jobs.insert_one(document(next(newIds))),
        lambda: jobs.update_one(some(), {'$set': {
            'status': randomly.choice(statuses)}}),
        lambda: jobs.update_many({'rank': randomly.randrange(10)},
                                 {'$set': {'status': 'processing'}}),
        lambda: jobs.update_many({'status': 'processing',
                                  'rank': {'$lt': 3}},
                                 {'$set': {'status': 'done'}}),
        replace,
        lambda: jobs.find_one_and_update({'status': 'queued'},
                                         {'$set': {'status': 'done'}}),
        lambda: jobs.update_one(some(), {'$unset': {'status': ''}}),
        lambda: jobs.delete_one(some()),
        lambda: jobs.delete_many({'status': 'done', 'rank': 9}),
    ]
    jobs.insert_many([document(n) for n in range(60)])
    order = [('rank', pymongo.ASCENDING), ('_id', pymongo.ASCENDING)]
    jobs.claimFirst({'status': 'queued'}, order,
                    {'$set': {'status': 'processing'}},
                    equal=[('status', 'queued')])
    for _ in range(300):
        for change in randomly.sample(changes, 3):
            change()
        every = list(jobs.find({}))     # no status named: every document
        for status in statuses:
            rank = randomly.randrange(10)
            expected = sorted(d['_id'] for d in every
                              if d.get('status') == status)
            assert sorted(d['_id'] for d in jobs.find(
                {'status': status})) == expected
            assert jobs.count_documents(
                {'status': status, 'rank': {'$gte': rank}}) == len(
                [d for d in every if d.get('status') == status
                 and d['rank'] >= rank])
