"""Exactly once beside ZODB: a host site on pyramid_zodbconn with a
FileStorage (support.zodbsite), whose requests all change one persistent
ledger and add a job. Requests that conflict get a ConflictError at
commit and are run again by pyramid_retry; the ledger's committed
changes and the stored jobs stay one to one."""
import pytest

from support import testserver, zodbsite


@pytest.fixture
def ledger_site(tmp_path, store_uri, database):
    """The site with its store on each store (the embedded one is a
    fresh store of the site's own)."""
    site = zodbsite.LedgerSite(tmp_path, store_uri, database.name)
    yield site
    site.close()


@pytest.fixture
def concurrent_site(tmp_path, mongojava_uri):
    """The site with its store on mongo-java-server, for many threads."""
    with testserver.scratch_database(mongojava_uri) as db:
        site = zodbsite.LedgerSite(tmp_path, mongojava_uri, db.name)
        yield site
        site.close()


def test_a_change_commits_with_its_job(ledger_site):
    response = ledger_site.postChange(1)
    assert response.json['change'] == 1
    assert ledger_site.committedChanges() == [1]
    assert ledger_site.storedJobs() == [1]


def test_a_conflict_is_retried_and_stores_one_job(ledger_site):
    rival = 1000
    ledger_site.interleaveRival(rival)
    response = ledger_site.postChange(1)
    assert response.json['change'] == 1
    # The first attempt's commit met the rival's change: a ConflictError,
    # and pyramid_retry ran the request again, which committed.
    assert ledger_site.counts.asdict() == {
        'viewed': 2, 'refused': 1, 'retries': 1, 'committed': 1}
    assert ledger_site.committedChanges() == [rival, 1]
    assert ledger_site.storedJobs() == [1]


def test_concurrent_conflicting_changes(concurrent_site):
    changes = range(1, 201)
    outcomes = concurrent_site.postChanges(changes, threads=4)
    assert sum(outcomes.values()) == len(changes)
    # Commits were refused (ConflictError) and retried.
    assert concurrent_site.counts['refused'] > 0
    assert concurrent_site.counts['retries'] > 0
    committed = concurrent_site.committedChanges()
    assert len(committed) == outcomes['ok'] > 0
    assert sorted(concurrent_site.storedJobs()) == sorted(committed)
    assert concurrent_site.tally() == {
        'committed': len(committed), 'jobs': len(committed),
        'orphans': 0, 'extras': 0, 'missing': 0}
