"""The Prometheus metrics (``m01.remote.views.metrics``), parsed by a
strict reader of the text exposition format, on every store."""
import re

import pytest
import transaction
import webtest
from pyramid.config import Configurator

from m01.remote import testing
from m01.remote.interfaces import IRemoteProcessor
from m01.remote.views.metrics import escape

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"'
                   r'(,|$)')
VALUE = re.compile(r'^(?:[+-]?(?:\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|Inf)|NaN)$')


def parse(text):
    """``{(name, labels...): value}`` and ``{name: type}``; AssertionError
    for any line the format does not allow."""
    assert text.endswith('\n')
    samples, types, helps = {}, {}, set()
    for line in text[:-1].split('\n'):
        if line.startswith('# HELP '):
            name = line.split(' ')[2]
            assert name not in helps, 'HELP twice: %s' % line
            helps.add(name)
            continue
        if line.startswith('# TYPE '):
            _, _, name, kind = line.split(' ')
            assert kind in ('counter', 'gauge'), line
            assert name not in types, 'TYPE twice: %s' % line
            types[name] = kind
            continue
        match = SAMPLE.match(line)
        assert match, 'not a sample: %r' % line
        name, labels, value = match.groups()
        assert name in types, 'a sample before its TYPE: %r' % line
        assert VALUE.match(value), 'not a value: %r' % line
        pairs = []
        rest = labels or ''
        while rest:
            label = LABEL.match(rest)
            assert label, 'bad labels: %r' % line
            pairs.append((label.group(1), label.group(2)))
            rest = rest[label.end():]
        key = (name,) + tuple(sorted(pairs))
        assert key not in samples, 'a sample twice: %r' % line
        samples[key] = float(value)
    return samples, types


def makeApp(uri, databaseName, metrics):
    config = Configurator(settings={'m01.remote.uri': uri,
                                    'm01.remote.database': databaseName,
                                    'm01.remote.metrics': metrics})
    config.set_security_policy(testing.RemoteUserPolicy('m01.remote.manage'))
    config.include('m01.remote')
    config.add_remote_job_factory('echo', testing.EchoJob)
    config.add_remote_job_factory('say "hi"\\', testing.FatalErrorJob,
                                  maxRetries=1)
    return config.make_wsgi_app()


@pytest.fixture
def public(store_uri, database):
    wsgi = makeApp(store_uri, database.name, 'public')
    yield webtest.TestApp(wsgi), wsgi.registry.getUtility(IRemoteProcessor)
    wsgi.registry.getUtility(IRemoteProcessor).close()


def test_the_metrics_tell_depth_latency_outcomes_and_workers(public):
    app, rp = public
    rp.addJob('echo', 1)
    rp.addJob('echo', 2, delay=3600)
    rp.addJob('say "hi"\\', None)
    transaction.commit()
    rp.pauseJobFactory('echo')
    assert rp.processJobs() == 1          # the other factory's job
    transaction.commit()
    rp.counters.flush()
    response = app.get('/remote/metrics')
    assert response.headers['Content-Type'] == \
        'text/plain; version=0.0.4; charset=utf-8'
    samples, types = parse(response.text)
    odd = escape('say "hi"\\')
    assert types['m01_remote_outcomes_total'] == 'counter'
    assert types['m01_remote_jobs'] == 'gauge'
    assert samples['m01_remote_jobs', ('factory', 'echo'),
                   ('status', 'queued')] == 2
    assert samples['m01_remote_jobs_due', ('factory', 'echo')] == 1
    assert samples['m01_remote_queue_latency_seconds',
                   ('factory', 'echo')] >= 0
    assert samples['m01_remote_jobs', ('factory', odd),
                   ('status', 'error')] == 1
    assert samples['m01_remote_outcomes_total', ('factory', odd),
                   ('outcome', 'error')] == 1
    assert samples['m01_remote_outcomes_total', ('factory', odd),
                   ('outcome', 'failed')] == 1
    assert samples['m01_remote_runs_total', ('factory', odd)] == 1
    assert samples['m01_remote_factory_paused', ('factory', 'echo')] == 1
    assert samples['m01_remote_workers', ('state', 'running')] == 0


def test_the_metrics_count_by_queue_and_tell_the_rate_limits(public):
    app, rp = public
    rp.addJobFactory('api', testing.EchoJob({'queue': 'mail',
                                             'rateLimit': [1, 60]}))
    rp.addJob('api', 1)
    rp.addJob('api', 2)
    rp.addJob('echo', 3)
    transaction.commit()
    rp.pauseQueue('default')
    rp.setQueueRateLimit('mail', [5, 60])
    assert rp.processJobs() == 1          # one start of api's limit
    transaction.commit()
    samples, types = parse(app.get('/remote/metrics').text)
    assert types['m01_remote_queue_jobs'] == 'gauge'
    assert samples['m01_remote_queue_jobs', ('queue', 'mail'),
                   ('status', 'queued')] == 1
    assert samples['m01_remote_queue_jobs', ('queue', 'mail'),
                   ('status', 'completed')] == 1
    assert samples['m01_remote_queue_jobs', ('queue', 'default'),
                   ('status', 'queued')] == 1
    assert samples['m01_remote_queue_paused', ('queue', 'default')] == 1
    assert samples['m01_remote_queue_paused', ('queue', 'mail')] == 0
    assert samples['m01_remote_rate_limit_starts', ('factory', 'api')] == 1
    assert samples['m01_remote_rate_limit_used', ('factory', 'api')] == 1
    assert samples['m01_remote_rate_limit_starts', ('queue', 'mail')] == 5
    assert samples['m01_remote_rate_limit_used', ('queue', 'mail')] == 1


def test_public_metrics_need_no_permission_pages_metrics_do(store_uri,
                                                            database):
    wsgi = makeApp(store_uri, database.name, 'pages')
    try:
        webtest.TestApp(wsgi).get('/remote/metrics', status=403)
        page = webtest.TestApp(wsgi, extra_environ={
            'REMOTE_USER': 'x'}).get('/remote/metrics')
        parse(page.text)
    finally:
        wsgi.registry.getUtility(IRemoteProcessor).close()


def test_no_metrics_by_default(store_uri, database):
    wsgi = makeApp(store_uri, database.name, 'false')
    try:
        webtest.TestApp(wsgi, extra_environ={'REMOTE_USER': 'x'}).get(
            '/remote/metrics', status=404)
    finally:
        wsgi.registry.getUtility(IRemoteProcessor).close()


@pytest.mark.parametrize('text', [
    'x 1', '# TYPE x gauge\nx{a="b} 1\n', '# TYPE x gauge\nx one\n',
    '# TYPE x gauge\nx 1\nx 2\n'])
def test_the_reader_refuses_what_the_format_does_not_allow(text):
    with pytest.raises(AssertionError):
        parse(text)
