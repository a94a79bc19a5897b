"""A job's dependencies and dependents on its page, and a workflow's page,
on every store."""
import pytest
import transaction

from test_views import Site, makeApp, text


@pytest.fixture
def site(store_uri, database):
    wsgi = makeApp(store_uri, database.name)
    yield Site(wsgi)
    Site(wsgi).rp.close()


def test_a_job_page_shows_dependencies_and_dependents(site):
    rp = site.rp
    first = rp.addJob('echo', 1)
    second = rp.addJob('echo', 2, dependsOn=[first])
    third = rp.addJob('echo', 3, dependsOn=[second], onFailure='run')
    transaction.commit()
    page = site.app.get('/remote/jobs/%s' % second)
    section = page.html.find(id='job-relations')
    depends = section.find(id='job-depends-on')
    assert depends.find('a')['href'].endswith('/remote/jobs/%s' % first)
    assert 'queued' in text(depends)
    dependents = section.find(id='job-dependents')
    assert dependents.find('a')['href'].endswith('/remote/jobs/%s' % third)
    assert 'waiting' in text(dependents)
    assert 'one in error or cancelled cancels it' in text(section)
    assert 'runs whatever they ended in' in text(
        site.app.get('/remote/jobs/%s' % third).html.find(
            id='job-relations'))
    # A waiting job can be cancelled from its page.
    assert page.html.find('form', id='cancel') is not None
    # A job without any shows no such section.
    plain = rp.addJob('echo', 4)
    transaction.commit()
    page = site.app.get('/remote/jobs/%s' % plain)
    assert page.html.find(id='job-relations') is None


def test_a_workflow_page_shows_progress_and_pages_its_jobs(site):
    rp = site.rp
    group = rp.addGroup([('echo', n) for n in range(150)],
                        callback=('echo', 'done'))
    transaction.commit()
    callbackPage = site.app.get('/remote/jobs/%s' % group['callback'])
    link = callbackPage.html.find(id='job-workflow').find('a')['href']
    assert link.endswith('/remote/jobs/workflow?id=%s' % group['workflow'])
    # 150 dependencies: the first 100 are listed.
    assert len(callbackPage.html.find(id='job-depends-on').find_all(
        'li')) == 100
    assert 'the first 100 of 150' in text(
        callbackPage.html.find(id='job-relations'))
    page = site.app.get(link)
    assert text(page.html.find(id='workflow-ended')) == \
        '0 of 151 jobs ended (0 %).'
    assert len(page.html.find(id='workflow-list').find_all('li')) == 100
    second = site.app.get(page.html.find('a', rel='next')['href'])
    rows = second.html.find(id='workflow-list').find_all('li')
    assert len(rows) == 51
    assert group['callback'] in text(rows[-1])
    assert 'waiting' in text(rows[-1])
    for _ in range(20):
        site.process()
    page = site.app.get(link)
    assert text(page.html.find(id='workflow-ended')) == \
        '151 of 151 jobs ended (100 %).'
    assert 'completed 151' in text(page.html.find(id='workflow-counts'))


def test_an_unknown_workflow_is_not_found(site):
    site.app.get('/remote/jobs/workflow?id=' + '0' * 24, status=404)
    site.app.get('/remote/jobs/workflow?id=nope', status=404)
    site.app.get('/remote/jobs/workflow', status=404)


def test_a_waiting_job_is_cancelled_from_its_page(site):
    rp = site.rp
    first = rp.addJob('echo', 1)
    second = rp.addJob('echo', 2, dependsOn=[first])
    transaction.commit()
    confirm = site.app.get('/remote/jobs/%s/cancel' % second)
    assert 'the jobs waiting for it are cancelled too' in text(confirm.html)
    site.post('/remote/jobs/%s/cancel' % second)
    assert rp.getJobStatus(second) == 'cancelled'
