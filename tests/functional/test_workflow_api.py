"""Dependencies and workflows through the JSON API, on every store, every
answer checked against the OpenAPI document."""
import pytest
import transaction

from test_api import Api, makeApp


@pytest.fixture
def api(store_uri, database):
    wsgi = makeApp(store_uri, database.name)
    api = Api(wsgi)
    yield api
    api.rp.close()
    assert api.app.checked


def runAll(rp):
    while rp.processNextJob():
        transaction.commit()
    transaction.commit()


def test_a_job_depending_on_another(api):
    first = api.post('/jobs', {'name': 'echo', 'input': 1}, status=201)
    second = api.post('/jobs', {'name': 'echo', 'input': 2,
                                'dependsOn': [first['id']],
                                'onFailure': 'run'}, status=201)
    assert second['status'] == 'waiting'
    detail = api.get('/jobs/' + second['id'])
    assert detail['status'] == 'waiting'
    assert detail['dependsOn'] == [
        {'id': first['id'], 'name': 'echo', 'status': 'queued'}]
    assert detail['onFailure'] == 'run'
    assert api.get('/jobs/' + first['id'])['dependents'] == [
        {'id': second['id'], 'name': 'echo', 'status': 'waiting'}]
    runAll(api.rp)
    assert api.get('/jobs/' + second['id'])['status'] == 'completed'


@pytest.mark.parametrize('json', [
    {'name': 'echo', 'dependsOn': ['0' * 24]},
    {'name': 'echo', 'dependsOn': 'nope'},
    {'name': 'echo', 'dependsOn': []},
    {'name': 'echo', 'dependsOn': ['0' * 24], 'onFailure': 'maybe'},
])
def test_bad_dependencies_are_refused(api, json):
    assert api.post('/jobs', json, status=400)['error']['status'] == 400
    assert api.rp.jobsCollection.count_documents({}) == 0


def test_a_group_and_its_page(api):
    added = api.post('/workflows', {
        'kind': 'group', 'jobs': [['echo', n] for n in range(5)],
        'callback': {'name': 'echo', 'input': 'done'}}, status=201)
    assert len(added['jobs']) == 5
    page = api.get('/workflows/' + added['workflow'],
                   {'page': '2', 'pageSize': '4'})
    assert page['total'] == 6 and page['pages'] == 2
    assert page['progress'] == {'queued': 5, 'waiting': 1}
    assert page['jobs'] == [
        {'id': added['jobs'][4], 'name': 'echo', 'status': 'queued'},
        {'id': added['callback'], 'name': 'echo', 'status': 'waiting'}]
    runAll(api.rp)
    page = api.get('/workflows/' + added['workflow'])
    assert page['progress'] == {'completed': 6}
    assert api.get('/jobs/' + added['callback'])['workflow'] == \
        added['workflow']


def test_a_chain(api):
    added = api.post('/workflows', {
        'kind': 'chain', 'jobs': [{'name': 'echo', 'input': n}
                                  for n in range(3)]}, status=201)
    assert added['callback'] is None
    statuses = [api.get('/jobs/' + j)['status'] for j in added['jobs']]
    assert statuses == ['queued', 'waiting', 'waiting']


@pytest.mark.parametrize('json', [
    {'kind': 'dag', 'jobs': [['echo', 1]]},
    {'kind': 'chain', 'jobs': []},
    {'kind': 'chain', 'jobs': [['echo', 1]], 'callback': ['echo', 2]},
    {'kind': 'group', 'jobs': [['echo', 1], ['missing', 2]]},
    {'kind': 'group', 'jobs': [['echo', 1]], 'bogus': 1},
])
def test_a_bad_workflow_is_refused_whole(api, json):
    assert api.post('/workflows', json, status=400)['error']['status'] == 400
    assert api.rp.jobsCollection.count_documents({}) == 0


def test_an_unknown_workflow_is_not_found(api):
    api.get('/workflows/' + '0' * 24, status=404)
    api.get('/workflows/nope', status=404)
