"""Jobs added in a request join its transaction (pyramid_tm's
``request.tm``): stored when the request succeeds, not at all when it
fails. Under pyramid_tm's default manager (the thread's) and under the
explicit one its documentation recommends, on every store."""
import pytest
import transaction
from pyramid.config import Configurator
from pyramid.httpexceptions import HTTPBadRequest
from webtest import TestApp

from m01.remote.interfaces import IRemoteProcessor
from m01.remote.testing import EchoJob


class Boom(Exception):
    pass


class Handled(Exception):
    pass


def add_job(request):
    return {'jobid': request.remote_processor.addJob(
        'echo', {'n': request.params.get('n', '1')})}


def add_job_then_fail(request):
    request.remote_processor.addJob('echo', {'n': 'lost'})
    raise Boom('the view failed after adding a job')


def add_job_then_handled_error(request):
    request.remote_processor.addJob('echo', {'n': 'lost'})
    raise Handled('rendered by an exception view')


def add_job_immediately_then_fail(request):
    request.remote_processor.addJob('echo', {'n': 'kept'}, immediate=True)
    raise Boom('the view failed after adding a job immediately')


def add_job_then_bad_request(request):
    request.remote_processor.addJob('echo', {'n': 'lost'})
    raise HTTPBadRequest()


def handled_view(exc, request):
    request.response.status = 500
    return {'error': str(exc)}


MANAGERS = {
    'default': {},
    'explicit': {'tm.manager_hook': 'pyramid_tm.explicit_manager'},
}


@pytest.fixture(params=sorted(MANAGERS))
def manager(request):
    return request.param


@pytest.fixture
def app(store_uri, database, manager):
    config = Configurator(settings=dict({
        'm01.remote.uri': store_uri,
        'm01.remote.database': database.name,
        'm01.remote.pages': 'false',
    }, **MANAGERS[manager]))
    config.include('m01.remote')
    config.add_remote_job_factory('echo', EchoJob)
    for name, view in [('add', add_job), ('fail', add_job_then_fail),
                       ('handled', add_job_then_handled_error),
                       ('immediate', add_job_immediately_then_fail),
                       ('bad', add_job_then_bad_request)]:
        config.add_route(name, '/' + name)
        config.add_view(view, route_name=name, renderer='json')
    config.add_exception_view(handled_view, Handled, renderer='json')
    wsgi = config.make_wsgi_app()
    yield TestApp(wsgi)
    wsgi.registry.getUtility(IRemoteProcessor).stopProcessor(5)


def stored_inputs(app):
    # Read the store itself, outside any transaction's pending work.
    transaction.abort()
    rp = app.app.registry.getUtility(IRemoteProcessor)
    return sorted(document['input']['n']
                  for document in rp.jobsCollection.find())


def test_the_processor_uses_the_fixture_database(app, database):
    rp = app.app.registry.getUtility(IRemoteProcessor)
    assert rp.database.name == database.name


def test_the_view_works_in_the_requests_transaction(app, manager):
    seen = {}

    def look(request):
        rp = request.remote_processor
        jobid = rp.addJob('echo', {'n': 'seen'})
        seen['same manager'] = rp.transactionManager is request.tm
        seen['visible before the commit'] = rp.getJobStatus(jobid)
        # The thread's own transaction holds nothing of the request's,
        # unless the request runs in it.
        thread = app.app.registry.getUtility(IRemoteProcessor)
        seen['thread'] = thread.pendingJobDocuments()
        return {}
    config = Configurator(registry=app.app.registry)
    config.add_route('look', '/look')
    config.add_view(look, route_name='look', renderer='json')
    config.commit()
    app.get('/look')
    assert seen['same manager'] is True
    assert seen['visible before the commit'] == 'queued'
    assert len(seen['thread']) == (1 if manager == 'default' else 0)
    assert stored_inputs(app) == ['seen']


def test_a_job_added_by_a_successful_view_is_stored(app):
    jobid = app.get('/add', {'n': '1'}).json['jobid']
    assert stored_inputs(app) == ['1']
    rp = app.app.registry.getUtility(IRemoteProcessor)
    assert rp.getJobStatus(jobid) == 'queued'
    app.get('/add', {'n': '2'})
    assert stored_inputs(app) == ['1', '2']


def test_a_job_added_by_a_failing_view_is_not_stored(app):
    with pytest.raises(Boom):
        app.get('/fail')
    assert stored_inputs(app) == []
    app.get('/add', {'n': '3'})
    assert stored_inputs(app) == ['3']


def test_an_error_rendered_by_an_exception_view_aborts_too(app):
    response = app.get('/handled', status=500)
    assert response.json == {'error': 'rendered by an exception view'}
    assert stored_inputs(app) == []


def test_an_http_error_response_aborts(app):
    app.get('/bad', status=400)
    assert stored_inputs(app) == []


def test_immediate_jobs_do_not_wait_for_the_transaction(app):
    with pytest.raises(Boom):
        app.get('/immediate')
    assert stored_inputs(app) == ['kept']
