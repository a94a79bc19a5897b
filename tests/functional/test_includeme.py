"""What ``config.include('m01.remote')`` registers, exactly and for real.
"""
import pytest
import transaction
from pyramid.config import PHASE1_CONFIG, Configurator
from pyramid.events import ApplicationCreated
from pyramid.exceptions import ConfigurationError
from pyramid.interfaces import IRoutesMapper
from pyramid.registry import Registry
from pyramid.request import Request
from zope.interface import Interface, implementer
from zope.interface.verify import verifyObject

import m01.remote
from m01.remote.interfaces import (
    IJob,
    IJobErrorMessage,
    IJobWorker,
    IRemoteProcessor,
)
from m01.remote.processes.worker import ProcessJobWorker
from m01.remote.processor import RemoteProcessor
from m01.remote.queue import errormessage
from m01.remote.settings import RemoteSettings
from m01.remote.testing import EchoJob
from m01.remote.worker import MultiJobWorker, SimpleJobWorker, kinds
from support.waiting import until


class DummyConfig:
    """Records what includeme asks of the configurator."""

    def __init__(self, settings=None):
        self.registry = Registry('dummy')
        self.registry.settings = settings or {}
        self.calls = []
        self.actions = []

    def include(self, name):
        self.calls.append(('include', name))

    def add_directive(self, name, directive):
        self.calls.append(('add_directive', name, directive))

    def add_request_method(self, callable, name, reify=False):
        self.calls.append(('add_request_method', callable, name, reify))

    def add_subscriber(self, subscriber, iface):
        self.calls.append(('add_subscriber', subscriber, iface))

    def add_route(self, name, pattern, factory=None):
        self.calls.append(('add_route', name, pattern, factory))

    def action(self, discriminator, callable, order=0):
        self.actions.append((discriminator, callable, order))


def test_includeme_registers_exactly():
    config = DummyConfig()
    m01.remote.includeme(config)
    assert config.calls == [
        ('include', 'pyramid_tm'),
        ('include', 'pyramid_chameleon'),
        ('add_directive', 'add_remote_job_factory',
         m01.remote.add_remote_job_factory),
        ('add_directive', 'add_remote_scheduler_item',
         m01.remote.add_remote_scheduler_item),
        ('add_directive', 'add_job_wrapper', m01.remote.add_job_wrapper),
        ('add_request_method', m01.remote.get_remote_processor,
         'remote_processor', True),
        ('add_subscriber', m01.remote.start_threads_on_app_created,
         ApplicationCreated),
    ]
    assert [(d, order) for d, _, order in config.actions] == [
        ('m01.remote.settings', PHASE1_CONFIG),
        ('m01.remote.processor', m01.remote.PROCESSOR_ORDER),
    ]
    # Nothing read the settings yet: a bad value only fails at commit.
    assert not hasattr(config.registry, 'm01_remote_settings')


def test_includeme_reads_no_settings_at_include_time():
    config = DummyConfig({'m01.remote.pages': 'not a boolean'})
    m01.remote.includeme(config)  # no error here
    settings_action = config.actions[0][1]
    with pytest.raises(ConfigurationError, match='m01.remote.pages'):
        settings_action()


def test_settings_action_adds_route_and_pages():
    config = DummyConfig({'m01.remote.route_prefix': '/queue'})
    m01.remote.includeme(config)
    del config.calls[:]
    config.actions[0][1]()
    assert config.calls == [
        # The metrics' and the API's routes before the traversal route,
        # which would match their paths too.
        ('include', 'm01.remote.views.metrics'),
        ('include', 'm01.remote.views.api'),
        ('add_route', 'm01.remote', '/queue*traverse',
         m01.remote.pages_root_factory),
        ('include', 'm01.remote.views'),
    ]
    assert config.registry.m01_remote_settings.route_prefix == '/queue'
    assert m01.remote.worker_kinds(config.registry) == ['multi', 'process',
                                                       'simple']


def test_settings_action_without_pages():
    config = DummyConfig({'m01.remote.pages': 'false'})
    m01.remote.includeme(config)
    del config.calls[:]
    config.actions[0][1]()
    assert config.calls == [('include', 'm01.remote.views.metrics'),
                            ('add_route', 'm01.remote', '/remote*traverse',
                             m01.remote.root_factory)]


class SiteErrorMessage:
    def __init__(self, job, error):
        self.message = 'site: %s' % error


def site_worker(remote_processor):
    return 'site worker'


def test_register_defaults_keeps_the_sites_registrations():
    registry = Registry('site')
    registry.registerAdapter(SiteErrorMessage, (IJob, Interface),
                             IJobErrorMessage)
    registry.registerAdapter(site_worker, (IRemoteProcessor,), IJobWorker,
                             'simple')
    m01.remote.register_defaults(registry)
    assert registry.adapters.lookup((IJob, Interface),
                                    IJobErrorMessage) is SiteErrorMessage
    assert m01.remote.get_job_worker_factory(registry, 'simple') \
        is site_worker
    assert m01.remote.get_job_worker_factory(registry, 'multi') \
        is MultiJobWorker


def test_register_defaults_registers_the_defaults():
    registry = Registry('site')
    m01.remote.register_defaults(registry)
    assert registry.adapters.lookup(
        (IJob, Interface), IJobErrorMessage) is errormessage.JobErrorMessage


def test_unknown_worker_kind_names_the_registered_ones():
    registry = Registry('site')
    m01.remote.register_defaults(registry)
    with pytest.raises(ConfigurationError) as info:
        m01.remote.get_job_worker_factory(registry, 'turbo')
    assert str(info.value) == (
        'm01.remote.worker = turbo: no worker kind of that name is '
        'registered; the registered kinds are: multi, process, simple')


# A real Configurator

def make_config(**settings):
    settings = {'m01.remote.' + key.replace('__', '.'): value
                for key, value in settings.items()}
    config = Configurator(settings=settings)
    config.include('m01.remote')
    return config


def test_real_configurator_registers_processor_route_and_request_method():
    config = make_config(name='tested', worker__wait_time='0.25',
                         scheduler__wait_time='0.5', lease_time='20')
    app = config.make_wsgi_app()
    registry = app.registry
    rp = registry.getUtility(IRemoteProcessor)
    verifyObject(IRemoteProcessor, rp)
    assert rp.name == 'tested'
    assert rp.registry is registry
    assert rp.leaseTime == 20.0
    assert rp.jobWorkerFactory is SimpleJobWorker
    assert rp.jobWorkerArguments == {'waitTime': 0.25, 'jobQuery': None,
                                     'batchSize': None, 'queues': None}
    assert rp.schedulerWorkerArguments == {'waitTime': 0.5}
    assert not rp.isProcessing and not rp.isScheduling
    assert registry.m01_remote_settings == RemoteSettings(
        name='tested', worker_wait_time=0.25, scheduler_wait_time=0.5,
        lease_time=20.0)

    route = registry.getUtility(IRoutesMapper).get_route('m01.remote')
    assert route.pattern == '/remote*traverse'
    request = Request.blank('/remote/jobs')
    request.registry = registry
    request.tm = transaction.TransactionManager(explicit=True)
    bound = m01.remote.get_remote_processor(request)
    # The same processor, its jobs joining the request's transactions.
    assert isinstance(bound, RemoteProcessor) and bound is not rp
    assert (bound.name, bound.leases) == (rp.name, rp.leases)
    assert bound.transactionManager is request.tm
    request.remote_processor = bound
    assert route.factory(request) is bound
    assert m01.remote.root_factory(request) is bound


def test_worker_kinds_get_the_worker_settings():
    app = make_config(worker__wait_time='0.25', worker__max_threads='3',
                      worker__max_processes='2',
                      worker__job_query='{"name": "echo"}',
                      worker__batch_size='20').make_wsgi_app()
    settings = app.registry.m01_remote_settings
    # Each kind gets the settings it takes; one taking **kw gets them all.
    assert m01.remote.worker_arguments(settings, SimpleJobWorker) == {
        'waitTime': 0.25, 'jobQuery': {'name': 'echo'}, 'batchSize': 20,
        'queues': None}
    assert m01.remote.worker_arguments(settings, MultiJobWorker) == {
        'waitTime': 0.25, 'jobQuery': {'name': 'echo'}, 'maxThreads': 3,
        'batchSize': 20, 'queues': None}
    assert m01.remote.worker_arguments(settings, ProcessJobWorker) == {
        'waitTime': 0.25, 'jobQuery': {'name': 'echo'}, 'maxProcesses': 2,
        'maxJobsPerChild': None, 'killGrace': 5.0, 'queues': None}
    assert m01.remote.worker_arguments(settings, SiteWorker) == {
        'waitTime': 0.25, 'jobQuery': {'name': 'echo'}, 'maxThreads': 3,
        'batchSize': 20, 'maxProcesses': 2, 'maxJobsPerChild': None,
        'killGrace': 5.0, 'queues': None}
    assert m01.remote.worker_arguments(settings, site_worker) == {}
    # m01remote worker offers the ini file too.
    assert m01.remote.worker_arguments(
        settings, ProcessJobWorker, configUri='site.ini')['configUri'] == \
        'site.ini'
    assert 'configUri' not in m01.remote.worker_arguments(
        settings, MultiJobWorker, configUri='site.ini')


@pytest.mark.parametrize('wakeup', ['auto', 'poll'])
def test_the_processors_wakeup_is_made_from_the_settings(wakeup):
    app = make_config(wakeup=wakeup).make_wsgi_app()
    rp = app.registry.getUtility(IRemoteProcessor)
    assert rp.jobChanges.mode == rp.schedulerChanges.mode == wakeup


@pytest.mark.parametrize('kind, expected', [
    ('simple', {'waitTime': 0.25, 'jobQuery': {'name': 'echo'},
                'batchSize': None, 'queues': None}),
    ('multi', {'waitTime': 0.25, 'jobQuery': {'name': 'echo'},
               'maxThreads': 3, 'batchSize': None, 'queues': None}),
])
def test_the_processors_worker_is_made_from_the_settings(kind, expected):
    app = make_config(worker=kind, worker__wait_time='0.25',
                      worker__max_threads='3',
                      worker__job_query='{"name": "echo"}').make_wsgi_app()
    rp = app.registry.getUtility(IRemoteProcessor)
    assert rp.jobWorkerArguments == expected
    worker = rp.jobWorkerFactory(rp, **rp.jobWorkerArguments)
    verifyObject(IJobWorker, worker)
    assert (worker.waitTime, worker.jobQuery) == (0.25, {'name': 'echo'})
    assert getattr(worker, 'maxThreads', None) == expected.get('maxThreads')


@implementer(IJobWorker)
class SiteWorker:
    running = False

    def __init__(self, remote_processor, **arguments):
        self.remoteProcessor = remote_processor
        self.arguments = arguments

    def __call__(self):
        pass

    def stop(self, timeout=None):
        pass


def test_a_site_registers_its_own_kind():
    config = make_config(worker='site')
    config.registry.registerAdapter(SiteWorker, (IRemoteProcessor,),
                                    IJobWorker, 'site')
    rp = config.make_wsgi_app().registry.getUtility(IRemoteProcessor)
    assert rp.jobWorkerFactory is SiteWorker
    # A kind registered as the documentation says gets the worker
    # settings too.
    rp.startProcessor()
    try:
        assert rp.threads.worker.worker.arguments == {
            'waitTime': 1.0, 'jobQuery': None, 'batchSize': None,
            'queues': None,
            'maxThreads': rp.registry.m01_remote_settings.worker_max_threads,
            'maxProcesses':
                rp.registry.m01_remote_settings.worker_max_processes,
            'maxJobsPerChild': None, 'killGrace': 5.0}
    finally:
        rp.stopProcessor()


class CountingWorker(SimpleJobWorker):
    """A kind as README suggests: a subclass passing ``**kw`` on."""

    def __init__(self, remoteProcessor, label='counting', **kw):
        super().__init__(remoteProcessor, **kw)
        self.label = label
        self.steps = 0

    def step(self):
        self.steps += 1
        return super().step()


class CountingMultiWorker(MultiJobWorker):

    def __init__(self, remoteProcessor, **kw):
        super().__init__(remoteProcessor, **kw)


def test_a_subclass_passing_kw_on_gets_what_its_bases_accept():
    settings = make_config(worker__max_threads='3', worker__max_processes='2',
                           worker__batch_size='5').make_wsgi_app() \
        .registry.m01_remote_settings
    assert m01.remote.worker_arguments(settings, CountingWorker) == {
        'waitTime': 1.0, 'jobQuery': None, 'batchSize': 5, 'queues': None}
    assert m01.remote.worker_arguments(settings, CountingMultiWorker) == {
        'waitTime': 1.0, 'jobQuery': None, 'maxThreads': 3, 'batchSize': 5,
        'queues': None}
    assert kinds.accepted_names(CountingWorker) == {
        'self', 'remoteProcessor', 'label', 'waitTime', 'jobQuery',
        'batchSize', 'queues'}
    # A class of its own taking **kw keeps them all; so does a function.
    assert kinds.accepted_names(SiteWorker) is None
    assert kinds.accepted_names(lambda processor, **kw: None) is None


def test_a_subclass_of_simplejobworker_passing_kw_on_runs_jobs():
    config = make_config(worker='counting', worker__wait_time='0.05',
                         worker__max_threads='3', worker__max_processes='2')
    config.registry.registerAdapter(CountingWorker, (IRemoteProcessor,),
                                    IJobWorker, 'counting')
    rp = config.make_wsgi_app().registry.getUtility(IRemoteProcessor)
    rp.addJobFactory('echo', EchoJob())
    jobid = rp.addJob('echo', 'hello')
    transaction.commit()
    rp.startProcessor()
    try:
        until(lambda: rp.getJobStatus(jobid) == 'completed',
              what='the job run by the subclass')
        worker = rp.threads.worker.worker
        assert isinstance(worker, CountingWorker) and worker.steps >= 1
        assert (worker.waitTime, worker.label) == (0.05, 'counting')
    finally:
        rp.stopProcessor()
    assert rp.getJobResult(jobid) == 'hello'


def test_an_unregistered_kind_fails_at_commit():
    config = make_config(worker='turbo')
    with pytest.raises(ConfigurationError, match='registered kinds are: '
                       'multi, process, simple'):
        config.commit()


def test_bad_settings_fail_at_commit_not_at_include():
    config = make_config(colour='blue')
    with pytest.raises(ConfigurationError, match='m01.remote.colour'):
        config.commit()


def test_settings_changed_after_the_include_are_used():
    config = make_config()
    config.add_settings({'m01.remote.name': 'late',
                         'm01.remote.route_prefix': '/late'})
    app = config.make_wsgi_app()
    assert app.registry.getUtility(IRemoteProcessor).name == 'late'
    route = app.registry.getUtility(IRoutesMapper).get_route('m01.remote')
    assert route.pattern == '/late*traverse'


def test_site_error_message_adapter_wins():
    config = make_config()
    config.registry.registerAdapter(SiteErrorMessage, (IJob, Interface),
                                    IJobErrorMessage)
    app = config.make_wsgi_app()
    rp = app.registry.getUtility(IRemoteProcessor)
    assert errormessage.getJobErrorMessage(
        rp.registry, EchoJob(), ValueError('boom')) == 'site: boom'


def test_pages_are_optional():
    with_pages = make_config().make_wsgi_app().registry
    without = make_config(pages='false').make_wsgi_app().registry

    def views(registry):
        return [a for a in registry.introspector.get_category('views')
                if a['introspectable']['route_name'] == 'm01.remote']
    assert views(with_pages)
    assert views(without) == []


def test_include_twice_is_harmless():
    config = make_config()
    config.include('m01.remote')
    assert config.make_wsgi_app().registry.getUtility(IRemoteProcessor)


def test_start_threads_on_application_created():
    config = make_config(start_worker='true', start_scheduler='true',
                         worker__wait_time='0.05',
                         scheduler__wait_time='0.05')
    app = config.make_wsgi_app()
    rp = app.registry.getUtility(IRemoteProcessor)
    try:
        assert rp.isProcessing and rp.isScheduling
    finally:
        m01.remote.stop_threads(rp, timeout=5)
    assert not rp.isProcessing and not rp.isScheduling


def test_no_threads_unless_asked():
    rp = make_config(start_scheduler='true').make_wsgi_app() \
        .registry.getUtility(IRemoteProcessor)
    try:
        assert rp.isScheduling and not rp.isProcessing
    finally:
        m01.remote.stop_threads(rp, timeout=5)


def test_no_in_process_threads():
    config = make_config(start_worker='true')
    with m01.remote.no_in_process_threads():
        app = config.make_wsgi_app()
    rp = app.registry.getUtility(IRemoteProcessor)
    assert not rp.isProcessing
    assert m01.remote.in_process_threads()


def test_request_remote_processor_in_a_view():
    from webtest import TestApp
    config = make_config(pages='false')

    def view(request):
        rp = request.remote_processor
        assert rp is request.remote_processor
        return {'name': rp.name, 'root': request.root is rp}

    config.add_view(view, route_name='m01.remote', renderer='json')
    app = TestApp(config.make_wsgi_app())
    assert app.get('/remote').json == {'name': 'root', 'root': True}
    transaction.abort()


def test_root_factory_for_a_whole_site():
    from webtest import TestApp
    config = Configurator(settings={'m01.remote.pages': 'false'},
                          root_factory=m01.remote.root_factory)
    config.include('m01.remote')

    def view(request):
        return {'root': request.root is request.remote_processor,
                'context': type(request.context).__name__}

    config.add_view(view, context=IRemoteProcessor, renderer='json')
    config.add_view(view, name='', context='m01.remote.queue.containers'
                    '.JobContainer', renderer='json')
    app = TestApp(config.make_wsgi_app())
    assert app.get('/').json == {'root': True, 'context': 'RemoteProcessor'}
    assert app.get('/jobs').json == {'root': True, 'context': 'JobContainer'}
    app.get('/nothing', status=404)
