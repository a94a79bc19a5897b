"""The JSON API (``m01.remote.views.api``) on every store, every answer
checked against the OpenAPI document shipped with the package."""
import datetime
import threading

import bson
import pytest
import transaction
from openapi_spec_validator import validate
from pyramid.config import Configurator
from pyramid.session import SignedCookieSessionFactory

from m01.remote import testing
from m01.remote.interfaces import IRemoteProcessor
from m01.remote.scheduler import Delay
from m01.remote.views.api import spec
from support.openapicheck import CheckedApp, body

PERMISSION = 'm01.remote.manage'


def makeApp(uri, databaseName, **settings):
    config = Configurator(settings=dict({
        'm01.remote.uri': uri, 'm01.remote.database': databaseName},
        **settings))
    config.set_session_factory(SignedCookieSessionFactory('not secret'))
    config.set_security_policy(testing.RemoteUserPolicy(PERMISSION))
    config.include('m01.remote')
    config.add_remote_job_factory('echo', testing.EchoJob)
    config.add_remote_job_factory('fail', testing.FatalErrorJob,
                                  maxRetries=1)
    return config.make_wsgi_app()


class Api:

    def __init__(self, wsgi):
        self.app = CheckedApp(wsgi, extra_environ={'REMOTE_USER': 'admin'})
        self.anonymous = CheckedApp(wsgi)
        self.rp = wsgi.registry.getUtility(IRemoteProcessor)
        self._token = None

    def token(self):
        if self._token is None:
            self._token = body(self.app.get('/remote/api/csrf'))['token']
        return self._token

    def get(self, path, params=None, status=200):
        return body(self.app.get('/remote/api' + path, params or {},
                                 status=status))

    def post(self, path, json=None, status=200, token=True):
        headers = {'X-CSRF-Token': self.token()} if token else {}
        return body(self.app.post_json('/remote/api' + path, json or {},
                                       headers=headers, status=status))

    def delete(self, path, status=200, token=True):
        headers = {'X-CSRF-Token': self.token()} if token else {}
        return body(self.app.delete('/remote/api' + path, headers=headers,
                                    status=status))

    def addJobs(self, name, inputs):
        jobids = [self.rp.addJob(name, value) for value in inputs]
        transaction.commit()
        return jobids


@pytest.fixture
def api(store_uri, database):
    wsgi = makeApp(store_uri, database.name)
    api = Api(wsgi)
    yield api
    api.rp.close()
    # Every test's answers were checked.
    assert api.app.checked or api.anonymous.checked


def test_the_document_is_valid_openapi():
    validate(spec())


def test_overview_and_stats(api):
    api.addJobs('echo', [1, 2])
    overview = api.get('/overview')
    assert overview['counts']['queued'] == 2 and overview['total'] == 2
    assert overview['threads'] == {'worker': False, 'scheduler': False}
    assert api.rp.processJobs() == 2
    transaction.commit()
    api.rp.counters.flush()
    stats = api.get('/stats', {'window': 'hour'})
    assert stats['totals']['completed'] == 2
    assert len(stats['buckets']) == 60
    assert api.get('/stats', {'window': 'week'})['bucketSeconds'] == 3600
    assert api.get('/stats', {'window': 'year'}, status=400)['error'][
        'status'] == 400


def test_jobs_are_listed_filtered_searched_and_shown(api):
    ann, bob = api.addJobs('echo', [{'to': 'ann'}, {'to': 'bob'}])
    fail, = api.addJobs('fail', [None])
    page = api.get('/jobs', {'pageSize': '2', 'order': 'asc'})
    assert [job['id'] for job in page['jobs']] == [ann, bob]
    assert (page['total'], page['pages']) == (3, 2)
    assert [j['id'] for j in api.get('/jobs', {'q': 'ann'})['jobs']] == \
        [ann]
    assert [j['id'] for j in api.get('/jobs', {'name': 'fail'})['jobs']] \
        == [fail]
    job = api.get('/jobs/' + ann)
    assert job['input'] == {'to': 'ann'} and not job['inputOmitted']
    assert job['status'] == 'queued'
    api.get('/jobs/' + str(bson.ObjectId()), status=404)
    api.get('/jobs/nonsense', status=404)
    for params in ({'status': 'nonsense'}, {'sort': 'input'},
                   {'page': 'x'}, {'pageSize': '201'}, {'q': 'x' * 501},
                   {'status': 'queued', 'stauts': 'error'}):
        assert api.get('/jobs', params, status=400)['error']['detail']


def test_a_large_input_is_left_out(api):
    jobid, = api.addJobs('echo', ['x' * 70000])
    job = api.get('/jobs/' + jobid)
    assert job['input'] is None and job['inputOmitted']


def test_add_cancel_retry_and_delete_a_job(api):
    added = api.post('/jobs', {'name': 'echo', 'input': {'a': 1},
                               'priority': 5}, status=201)
    jobid = added['id']
    assert api.rp.getJobStatus(jobid) == 'queued'
    assert api.post('/jobs/%s/cancel' % jobid)['status'] == 'cancelled'
    assert api.post('/jobs/%s/cancel' % jobid, status=400)['error'][
        'detail'].startswith('Job %s is cancelled' % jobid)
    assert api.post('/jobs/%s/retry' % jobid)['status'] == 'queued'
    api.post('/jobs/%s/explode' % jobid, status=404)
    assert api.delete('/jobs/' + jobid) == {'id': jobid, 'deleted': True}
    api.delete('/jobs/' + jobid, status=404)


@pytest.mark.parametrize('json', [
    {'name': 'missing'}, {'input': 1}, {'name': 'echo', 'bogus': 1},
    {'name': 'echo', 'priority': 'high'}, {'name': 'echo', 'delay': -1},
])
def test_a_bad_job_is_refused(api, json):
    assert api.post('/jobs', json, status=400)['error']['status'] == 400
    assert api.rp.jobsCollection.count_documents({}) == 0


def test_changes_need_the_token_in_the_header(api):
    jobid, = api.addJobs('echo', [1])
    api.post('/jobs/%s/cancel' % jobid, token=False, status=400)
    api.delete('/jobs/' + jobid, token=False, status=400)
    api.post('/jobs', {'name': 'echo'}, token=False, status=400)
    assert api.rp.getJobStatus(jobid) == 'queued'
    assert api.rp.jobsCollection.count_documents({}) == 1


def test_the_permission_is_required(api):
    for path in ('/overview', '/jobs', '/stats', '/factories', '/workers'):
        answer = body(api.anonymous.get('/remote/api' + path, status=403))
        assert answer['error']['status'] == 403
    jobid, = api.addJobs('echo', [1])
    api.anonymous.delete('/remote/api/jobs/' + jobid, status=403)
    assert api.rp.getJobStatus(jobid) == 'queued'


def test_bulk_actions_count_then_change(api):
    jobids = api.addJobs('echo', [1, 2, 3])
    counted = api.get('/jobs/bulk', {'action': 'cancel', 'status': 'queued'})
    assert counted == {'action': 'cancel', 'count': 3, 'limit': 500}
    assert api.get('/jobs/bulk', {'action': 'cancel',
                                  'job': jobids[:2]})['count'] == 2
    result = api.post('/jobs/bulk', {'action': 'cancel',
                                     'jobids': jobids[:2]})
    assert result == {'action': 'cancel', 'done': 2, 'refused': 0,
                      'more': False}
    result = api.post('/jobs/bulk', {'action': 'delete',
                                     'filter': {'status': 'cancelled'}})
    assert result['done'] == 2
    assert api.rp.jobs.keys() == jobids[2:]
    for bad in ({'action': 'explode'}, {'action': 'cancel', 'jobids': 'x'},
                {'action': 'cancel', 'filter': []},
                {'action': 'cancel', 'jobids': ['nonsense']},
                {'action': 'cancel', 'other': 1}):
        api.post('/jobs/bulk', bad, status=400)
    api.get('/jobs/bulk', {'action': 'explode'}, status=400)
    assert api.rp.getJobStatus(jobids[2]) == 'queued'


def jobsInEveryStatus(api):
    """A job in each status but processing: ``{status: jobid}``."""
    queued, completed, cancelled = api.addJobs('echo', [1, 2, 3])
    failed, = api.addJobs('fail', [None])
    api.rp.processJob(completed)
    api.rp.processJob(failed)
    api.rp.cancelJob(cancelled)
    transaction.commit()
    return {'queued': queued, 'completed': completed, 'error': failed,
            'cancelled': cancelled}


def stored(rp):
    return sorted((str(document['_id']), document['status']) for document
                  in rp.jobsCollection.find({}, {'status': 1}))


@pytest.mark.parametrize('json, named', [
    ({'action': 'delete', 'filter': {'stauts': 'error'}}, "'stauts'"),
    ({'action': 'delete', 'filter': {'name': 0}}, 'filter.name'),
    ({'action': 'delete', 'filter': {'name': False}}, 'filter.name'),
    ({'action': 'delete', 'filter': {'name': ''}}, 'filter.name'),
    ({'action': 'delete', 'filter': {'status': [None]}}, 'None'),
    ({'action': 'delete', 'filter': {'status': 'error', 'q': 0}},
     'filter.q'),
    ({'action': 'delete', 'filter': {'q': '...'}}, 'no word'),
    ({'action': 'delete', 'jobids': [None]}, 'None is not a job id'),
    ({'action': 'delete', 'jobids': [0]}, '0 is not a job id'),
    ({'action': 'delete'}, 'or all to mean every job'),
    ({'action': 'delete', 'filter': {}}, 'or all to mean every job'),
    ({'action': 'delete', 'all': False}, 'or all to mean every job'),
    ({'action': 'delete', 'all': 'true'}, "all is true or false, not "
     "'true'"),
    ({'action': 'delete', 'all': True, 'jobids': []}, 'not both'),
    ({'action': 'delete', 'all': True, 'filter': {'status': []}},
     'empty list'),
])
def test_a_mistyped_bulk_action_is_a_400_naming_it(api, json, named):
    jobsInEveryStatus(api)
    before = stored(api.rp)
    detail = api.post('/jobs/bulk', json, status=400)['error']['detail']
    assert named in detail
    assert stored(api.rp) == before


def test_a_bulk_action_on_every_job_says_all(api):
    jobs = jobsInEveryStatus(api)
    assert api.get('/jobs/bulk', {'action': 'delete', 'all': 'true'}) == {
        'action': 'delete', 'count': 4, 'limit': 5000}
    for params in ({'action': 'delete'}, {'action': 'delete', 'all': 'no'},
                   {'action': 'delete', 'stauts': 'error'},
                   {'action': 'delete', 'name': ''}):
        api.get('/jobs/bulk', params, status=400)
    # The selected jobs that match the filter.
    assert api.get('/jobs/bulk', {'action': 'delete', 'status': 'error',
                                  'job': list(jobs.values())})['count'] == 1
    assert api.post('/jobs/bulk', {
        'action': 'retry', 'filter': {'name': 'echo'},
        'jobids': [jobs['error'], jobs['cancelled']]})['done'] == 1
    assert api.rp.getJobStatus(jobs['error']) == 'error'
    result = api.post('/jobs/bulk', {'action': 'delete', 'all': True})
    assert (result['done'], result['more']) == (4, False)
    assert api.rp.jobsCollection.count_documents({}) == 0


@pytest.mark.parametrize('params, named', [
    ({'stauts': 'error'}, "'stauts'"),
    ({'name': ['echo', 'fail']}, 'name is given 2 times'),
    ({'q': '!!'}, 'no word'),
    ({'status': 'error', 'csrf_token': 'x'}, "'csrf_token'"),
])
def test_a_mistyped_listing_is_a_400_naming_it(api, params, named):
    api.addJobs('echo', [1])
    assert named in api.get('/jobs', params, status=400)['error']['detail']


def test_a_second_job_with_a_key_is_the_existing_one(api):
    first = api.post('/jobs', {'name': 'echo', 'input': 1, 'key': 'k'},
                     status=201)
    assert first['existing'] is False and first['status'] == 'queued'
    again = api.post('/jobs', {'name': 'echo', 'input': 2, 'key': 'k'},
                     status=200)
    assert again == {'id': first['id'], 'status': 'queued',
                     'existing': True}
    assert api.rp.jobsCollection.count_documents({}) == 1
    api.rp.jobWrites.claimJob(bson.ObjectId(first['id']), api.rp.now(),
                              'w', 30)
    assert api.post('/jobs', {'name': 'echo', 'key': 'k'})['status'] == \
        'processing'
    # Once the job has ended, the key makes a new job.
    api.post('/jobs/%s/cancel' % first['id'])
    other = api.post('/jobs', {'name': 'echo', 'key': 'k'}, status=201)
    assert other['id'] != first['id'] and other['existing'] is False


def test_a_body_that_is_not_a_json_object_is_refused(api):
    headers = {'X-CSRF-Token': api.token(), 'Content-Type':
               'application/json'}
    for text in (b'[1]', b'{', b'\xff'):
        answer = api.app.post('/remote/api/jobs/bulk', text,
                              headers=headers, status=400)
        assert body(answer)['error']['status'] == 400


def test_factories_are_listed_paused_and_resumed(api):
    factories = api.get('/factories')['factories']
    assert [f['name'] for f in factories] == ['echo', 'fail']
    assert api.post('/factories/echo/pause') == {'name': 'echo',
                                                 'paused': True}
    assert [f['paused'] for f in api.get('/factories')['factories']] == [
        True, False]
    api.post('/factories/echo/resume')
    api.post('/factories/missing/pause', status=404)
    api.post('/factories/echo/explode', status=404)


def test_queues_are_listed_paused_resumed_and_limited(api):
    api.rp.addJobFactory('mail', testing.EchoJob({'queue': 'mail',
                                                  'rateLimit': [5, 60]}))
    api.addJobs('mail', [1, 2])
    added = api.post('/jobs', {'name': 'echo', 'input': 3,
                               'queue': 'reports'}, status=201)
    assert api.rp.getJobDocument(added['id'])['queue'] == 'reports'
    queues = {q['name']: q for q in api.get('/queues')['queues']}
    assert sorted(queues) == ['default', 'mail', 'reports']
    assert queues['mail']['counts']['queued'] == 2
    assert queues['mail']['factories'] == ['mail']
    assert queues['default']['factories'] == ['echo', 'fail']
    assert queues['mail']['rateLimit'] is None
    factory = {f['name']: f for f in api.get('/factories')['factories']}
    assert factory['mail']['queue'] == 'mail'
    assert factory['mail']['rateLimit'] == [5, 60]
    assert factory['mail']['rateUsed'] == 0
    listed = api.get('/jobs', {'queue': 'mail'})
    assert listed['total'] == 2 and listed['filter'] == {'queue': 'mail'}
    assert {job['queue'] for job in listed['jobs']} == {'mail'}
    assert api.post('/queues/mail/pause') == {'name': 'mail',
                                              'paused': True}
    assert api.rp.queueSettings.isPaused('mail')
    api.post('/queues/mail/resume')
    assert not api.rp.queueSettings.isPaused('mail')
    assert api.post('/queues/mail/limit', {'rateLimit': [10, 1.5]}) == \
        {'name': 'mail', 'rateLimit': [10, 1.5]}
    queues = {q['name']: q for q in api.get('/queues')['queues']}
    assert queues['mail']['rateLimit'] == [10, 1.5]
    assert queues['mail']['rateUsed'] == 0
    api.post('/queues/mail/limit', {'rateLimit': None})
    assert api.rp.queueSettings.rateLimit('mail', fresh=True) is None


@pytest.mark.parametrize('path, json', [
    ('/queues/mail/limit', {'rateLimit': [0, 60]}),
    ('/queues/mail/limit', {'rateLimit': 'often'}),
    ('/queues/mail/limit', {'limit': [1, 60]}),
    ('/queues/a%20b/pause', None),
])
def test_a_bad_queue_change_is_refused(api, path, json):
    api.post(path, json, status=400)
    assert api.rp.queueSettings.documents(fresh=True) == {}


def test_an_unknown_queue_action_is_not_found(api):
    api.post('/queues/mail/explode', status=404)


def test_a_bad_queue_filter_is_refused(api):
    api.get('/jobs', {'queue': 'a b'}, status=400)
    api.post('/jobs', {'name': 'echo', 'queue': ''}, status=400)


def test_scheduler_items_are_listed_and_changed(api):
    itemid = api.rp.addScheduler(Delay({'jobName': 'echo', 'delay': 60}))
    items = api.get('/scheduler')
    assert items['total'] == 1 and items['items'][0]['id'] == itemid
    assert items['items'][0]['schedule'] == \
        'every minute, counted from its last run'
    assert api.post('/scheduler/%s/deactivate' % itemid)['active'] is False
    jobid = api.post('/scheduler/%s/run' % itemid)['job']
    assert api.rp.getJobStatus(jobid) == 'queued'
    api.post('/scheduler/%s/explode' % itemid, status=404)
    api.delete('/scheduler/' + itemid)
    api.delete('/scheduler/' + itemid, status=404)
    api.post('/scheduler/nonsense/run', status=404)


def test_workers_are_listed_and_controlled(api):
    assert api.get('/workers') == {'workers': []}
    monitor = api.rp.monitor
    monitor.acquire('worker')
    try:
        monitor.beat()
        worker, = api.get('/workers')['workers']
        assert worker['id'] == monitor.processId
        assert worker['state'] == 'running'
        assert api.post('/workers/%s/quiet' % monitor.processId) == {
            'id': monitor.processId, 'control': 'quiet'}
        monitor.beat()
        assert api.get('/workers')['workers'][0]['state'] == 'quiet'
        api.post('/workers/nobody/stop', status=404)
        api.post('/workers/%s/explode' % monitor.processId, status=404)
    finally:
        monitor.release('worker')


def test_a_workers_jobs_name_their_thread(api):
    jobid, = api.addJobs('echo', [1])
    monitor = api.rp.monitor
    monitor.acquire('worker')
    # As a worker thread running the job registers it.
    api.rp.leases.add(jobid, 'a-claim')
    try:
        monitor.beat()
        worker, = api.get('/workers')['workers']
        running, = worker['jobs']
        assert (running['job'], running['thread']) == (
            jobid, threading.current_thread().name)
    finally:
        api.rp.leases.discard(jobid)
        monitor.release('worker')


def test_the_api_has_an_index(api):
    index = body(api.app.get('/remote/api/'))
    assert index['openapi'] == 'http://localhost/remote/api/openapi.json'
    assert index['csrf'] == 'http://localhost/remote/api/csrf'
    paths = [endpoint['path'] for endpoint in index['endpoints']]
    assert paths == list(spec()['paths'])
    workers = [endpoint for endpoint in index['endpoints']
               if endpoint['path'] == '/api/workers'][0]
    assert workers == {
        'path': '/api/workers', 'methods': ['GET'],
        'url': 'http://localhost/remote/api/workers',
        'summary': 'The processes running workers, as their heartbeats '
                   'tell'}
    api.anonymous.get('/remote/api/', status=403)


def test_a_body_too_large_is_a_json_413(api, monkeypatch):
    from m01.remote.views import security
    monkeypatch.setattr(security, 'MAX_REQUEST_BODY', 10)
    answer = api.app.post('/remote/api/jobs', b'{"name": "echo", "x": 1}',
                          headers={'X-CSRF-Token': api.token(),
                                   'Content-Type': 'application/json'},
                          status=413)
    assert body(answer)['error']['status'] == 413


def test_the_api_under_the_root_prefix(store_uri, database):
    wsgi = makeApp(store_uri, database.name,
                   **{'m01.remote.route_prefix': '/'})
    app = CheckedApp(wsgi, extra_environ={'REMOTE_USER': 'admin'})
    assert body(app.get('/api/overview'))['total'] == 0
    assert app.get('/jobs').content_type == 'text/html'


def test_the_document_is_served(api):
    served = api.get('/openapi.json')
    assert served == spec()
    assert served['paths']['/api/jobs']['get']


def test_times_are_iso_8601_in_utc(api):
    jobid, = api.addJobs('echo', [1])
    created = api.get('/jobs/' + jobid)['created']
    moment = datetime.datetime.fromisoformat(created)
    assert moment.utcoffset() == datetime.timedelta(0)


def test_factories_say_how_long_their_finished_jobs_are_kept(api):
    api.rp.retention.periods = {'completed': 60, 'error': None,
                                'cancelled': 3600}
    api.rp.addJobFactory('audit', testing.EchoJob(
        {'retention': {'completed': None}}))
    kept = {f['name']: f['retention']
            for f in api.get('/factories')['factories']}
    assert kept['echo'] == {'completed': 60, 'error': None,
                            'cancelled': 3600}
    assert kept['audit'] == {'completed': None, 'error': None,
                             'cancelled': 3600}


def test_a_key_held_for_a_period_and_a_debounced_add(api):
    first = api.post('/jobs', {'name': 'echo', 'input': 1, 'key': 'p',
                               'keyPeriod': 600}, status=201)
    api.post('/jobs/%s/cancel' % first['id'])
    # Ended, it holds its key for its period: the existing job answers.
    again = api.post('/jobs', {'name': 'echo', 'key': 'p'}, status=200)
    assert again == {'id': first['id'], 'status': 'cancelled',
                     'existing': True}
    burst = api.post('/jobs', {'name': 'echo', 'input': 1, 'key': 'd',
                               'debounce': 30}, status=201)
    moved = api.post('/jobs', {'name': 'echo', 'input': 2, 'key': 'd',
                               'debounce': 30}, status=200)
    assert moved == {'id': burst['id'], 'status': 'queued',
                     'existing': True}
    assert api.rp.getJobDocument(burst['id'])['input'] == 2
    for bad in ({'debounce': 30}, {'key': 'x', 'keyPeriod': -1},
                {'key': 'x', 'debounce': 3, 'delay': 1}):
        api.post('/jobs', dict(bad, name='echo'), status=400)


def test_the_retention_settings_are_the_processor_s(store_uri, database):
    wsgi = makeApp(store_uri, database.name, **{
        'm01.remote.retention.completed': '2h',
        'm01.remote.retention.cancelled': 'forever'})
    rp = wsgi.registry.getUtility(IRemoteProcessor)
    assert rp.retention.periods == {'completed': 7200.0,
                                    'error': 7 * 86400.0,
                                    'cancelled': None}
    api = Api(wsgi)
    assert api.get('/factories')['factories'][0]['retention'] == \
        rp.retention.periods
    rp.close()
