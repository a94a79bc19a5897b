"""Tracing with OpenTelemetry, on every store: one request adding a job
gives one trace, holding the request's span and the span of each of the
job's attempts, with their attributes; an async job's span lasts until
its task ended."""
import asyncio

import pytest
import transaction
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)
from pyramid.config import Configurator
from webtest import TestApp

from m01.remote.interfaces import IJobWrappers, IRemoteProcessor
from m01.remote.job import Job
from m01.remote.queue import tracing
from m01.remote.testing import EchoJob, FatalErrorJob
from support.waiting import until

EXPORTER = InMemorySpanExporter()


def tracer():
    """The tracer of the process's SDK provider, exporting to
    ``EXPORTER`` (the global provider is set once per process)."""
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(EXPORTER))
        trace.set_tracer_provider(provider)
    return trace.get_tracer('tests')


class AsyncEchoJob(Job):

    async def __call__(self, remoteProcessor):
        await asyncio.sleep(0.05)
        return self.input


def traced_requests(app):
    """WSGI middleware making each request a span, as a site's
    instrumentation does."""
    def middleware(environ, start_response):
        with tracer().start_as_current_span(
                'request %s' % environ['PATH_INFO'],
                kind=trace.SpanKind.SERVER):
            return app(environ, start_response)
    return middleware


def add_job(request):
    return {'jobid': request.remote_processor.addJob(
        request.params['name'], request.params.get('input'))}


@pytest.fixture
def app(database, store_uri):
    tracer()
    EXPORTER.clear()
    config = Configurator(settings={
        'm01.remote.uri': store_uri, 'm01.remote.database': database.name,
        'm01.remote.pages': 'false',
        'm01.remote.worker.wait_time': '0'})
    config.include('m01.remote')
    config.add_remote_job_factory('echo', EchoJob)
    config.add_remote_job_factory('async', AsyncEchoJob)
    config.add_remote_job_factory('fatal', FatalErrorJob, maxRetries=2,
                                  retryDelay=0)
    config.add_route('add', '/add')
    config.add_view(add_job, route_name='add', renderer='json')
    wsgi = config.make_wsgi_app()
    testapp = TestApp(traced_requests(wsgi))
    testapp.processor = wsgi.registry.getUtility(IRemoteProcessor)
    yield testapp
    testapp.processor.stopProcessor(10)


def processor_of(app):
    return app.processor


def spans(name):
    return [span for span in EXPORTER.get_finished_spans()
            if span.name == name]


def test_the_span_wrapper_is_registered_outermost(app):
    rp = processor_of(app)
    assert rp.registry.getUtility(IJobWrappers).names()[0] == \
        tracing.WRAPPER_NAME


def test_one_request_one_trace_with_the_jobs_run(app):
    jobid = app.get('/add', {'name': 'echo', 'input': 'hi'}).json['jobid']
    rp = processor_of(app)
    document = rp.getJobDocument(jobid)
    assert document['traceContext']['traceparent'].startswith('00-')
    assert rp.processNextJob()
    transaction.commit()
    [request] = spans('request /add')
    [run] = spans('m01.remote job echo')
    assert run.context.trace_id == request.context.trace_id
    assert run.parent.span_id == request.context.span_id
    assert run.kind == trace.SpanKind.CONSUMER
    assert dict(run.attributes) == {
        tracing.FACTORY: 'echo', tracing.JOB_ID: jobid, tracing.ATTEMPT: 1,
        tracing.OUTCOME: 'completed'}
    assert len({span.context.trace_id
                for span in EXPORTER.get_finished_spans()}) == 1
    # The pages and the API name the trace to look the run up by.
    assert tracing.traceIdOf(document['traceContext']) == \
        format(request.context.trace_id, '032x')


@pytest.mark.parametrize('stored', [
    None, {}, 'text', {'traceparent': None}, {'traceparent': '00-x-y-01'},
    {'traceparent': '00-%s-%s-01' % ('A' * 32, 'b' * 16)},
    {'traceparent': '00-%s-%s-01-extra' % ('a' * 32, 'b' * 16)}])
def test_a_stored_context_without_a_trace_names_none(stored):
    assert tracing.traceIdOf(stored) is None


def test_each_attempt_is_a_span_of_the_trace(app):
    jobid = app.get('/add', {'name': 'fatal'}).json['jobid']
    rp = processor_of(app)
    for _ in range(2):
        assert rp.processNextJob()
        transaction.commit()
    assert rp.getJobStatus(jobid) == 'error'
    [request] = spans('request /add')
    runs = spans('m01.remote job fatal')
    assert [run.attributes[tracing.ATTEMPT] for run in runs] == [1, 2]
    assert {run.attributes[tracing.OUTCOME] for run in runs} == {'failed'}
    assert {run.context.trace_id for run in runs} == \
        {request.context.trace_id}
    assert runs[0].status.status_code == trace.StatusCode.ERROR


def test_an_async_jobs_span_lasts_until_its_task_ended(app):
    jobid = app.get('/add', {'name': 'async', 'input': 'a'}).json['jobid']
    rp = processor_of(app)
    rp.startProcessor()
    until(lambda: spans('m01.remote job async'), 30, 'the run span')
    [request] = spans('request /add')
    [run] = spans('m01.remote job async')
    assert run.parent.span_id == request.context.span_id
    assert run.attributes[tracing.OUTCOME] == 'completed'
    # The span covers the await, not only the call starting the task.
    assert (run.end_time - run.start_time) / 1e9 >= 0.05
    until(lambda: rp.getJobStatus(jobid) == 'completed', 30, 'the job')


def test_without_a_span_no_context_is_stored(app):
    rp = processor_of(app)
    jobid = rp.addJob('echo', immediate=True)
    assert 'traceContext' not in rp.getJobDocument(jobid)
    assert rp.processNextJob()
    transaction.commit()
    [run] = spans('m01.remote job echo')
    assert run.parent is None
