"""m01.remote for Pyramid: ``config.include('m01.remote')``.

``includeme`` only registers. Everything that reads the ``m01.remote.*``
settings runs in configuration actions, when the configuration is
committed, so a site may still change its settings after the include;
worker threads start on ``ApplicationCreated``, never at import or include
time.
"""
from pyramid.config import PHASE1_CONFIG
from pyramid.events import ApplicationCreated
from pyramid.exceptions import ConfigurationError
from zope.interface import Interface

from m01.remote.configured import make_remote_processor
from m01.remote.interfaces import (
    IJob,
    IJobErrorMessage,
    IJobWorker,
    IJobWrappers,
    IRemoteProcessor,
    ISchedulerItem,
)
from m01.remote.job import Job
from m01.remote.processes.worker import ProcessJobWorker
from m01.remote.queue import tracing
from m01.remote.queue.errormessage import registerJobErrorMessageAdapter
from m01.remote.queue.wrappers import (  # noqa: F401  (public here)
    JOB,
    OUTERMOST,
    JobWrappers,
)
from m01.remote.scheduler import put_scheduler_item
from m01.remote.settings import get_remote_settings, parse_settings
from m01.remote.views.routes import (
    ROUTE_NAME,
    pages_root_factory,
    root_factory,
)
from m01.remote.worker import MultiJobWorker, SimpleJobWorker
from m01.remote.worker.kinds import (  # noqa: F401  (public here)
    get_job_worker_factory,
    worker_arguments,
    worker_kinds,
)
from m01.remote.worker.threads import (  # noqa: F401  (public here)
    STOP_TIMEOUT,
    in_process_threads,
    no_in_process_threads,
    start_threads,
    stop_threads,
)

# Action orders: the processor is made after the site's own default-order
# registrations (a worker kind it registers in an action is then known),
# the job factories are stored once the processor exists, and the
# scheduler items once every factory they may name is there.
PROCESSOR_ORDER = 10
DIRECTIVE_ORDER = 20
SCHEDULER_ITEM_ORDER = 30

def get_remote_processor(request):
    """The application's ``IRemoteProcessor`` bound to the request's
    transaction manager, ``request.tm`` (``request.remote_processor``):
    jobs added through it are stored when pyramid_tm commits the request,
    whether pyramid_tm uses the thread's manager or an explicit one.

    With an outbox (``m01.remote.outbox``), they are rows of the
    request's SQL session, moved into the queue once committed.
    """
    processor = request.registry.getUtility(IRemoteProcessor)
    if processor.outbox is None:
        return processor.bind(request.tm)
    return processor.bind(request.tm,
                          session=processor.outbox.sessionOf(request))


def register_defaults(registry):
    """Register the default worker kinds and job error message adapter,
    each only where the site has not registered its own."""
    kinds = {'simple': SimpleJobWorker, 'multi': MultiJobWorker,
             'process': ProcessJobWorker}
    for name, factory in kinds.items():
        if registry.adapters.lookup((IRemoteProcessor,), IJobWorker,
                                    name=name) is None:
            registry.registerAdapter(factory, (IRemoteProcessor,),
                                     IJobWorker, name)
    if registry.adapters.lookup((IJob, Interface), IJobErrorMessage) is None:
        registerJobErrorMessageAdapter(registry)


def start_threads_on_app_created(event):
    if not in_process_threads():
        return
    registry = event.app.registry
    settings = get_remote_settings(registry)
    if settings.start_worker or settings.start_scheduler:
        start_threads(registry.getUtility(IRemoteProcessor),
                      worker=settings.start_worker,
                      scheduler=settings.start_scheduler)


# directives

def add_remote_job_factory(config, name, job_class, **defaults):
    """Store a job factory ``name`` made as ``job_class(defaults)``.

    ``job_class`` is a ``m01.remote.job.Job`` subclass or its dotted
    name. Two factories of the same name conflict at commit time.
    """
    job_class = config.maybe_dotted(job_class)
    if not isinstance(name, str) or not name.strip():
        raise ConfigurationError('A job factory name must be a non-empty '
                                 'string, not %r' % (name,))
    if not (isinstance(job_class, type) and issubclass(job_class, Job)):
        raise ConfigurationError('add_remote_job_factory(%r): %r is not a '
                                 'subclass of m01.remote.job.Job'
                                 % (name, job_class))
    try:
        factory = job_class(defaults)
    except ValueError as e:
        raise ConfigurationError('add_remote_job_factory(%r): %s'
                                 % (name, e))

    def register():
        config.registry.getUtility(IRemoteProcessor).addJobFactory(
            name, factory)

    intr = config.introspectable('m01.remote job factories', name, name,
                                 'm01.remote job factory')
    intr['job_class'] = job_class
    intr['defaults'] = defaults
    config.action(('m01.remote.job_factory', name), register,
                  order=DIRECTIVE_ORDER, introspectables=(intr,))


def add_remote_scheduler_item(config, name, item):
    """Add the scheduler item ``item`` (a ``Delay`` or ``Cron``) under
    ``name``, which becomes its title.

    The name identifies the item across restarts: an item stored under
    that title is updated, not duplicated (and keeps its next call time
    when nothing changed). Two items of the same name conflict at commit
    time.
    """
    if not isinstance(name, str) or not name.strip():
        raise ConfigurationError('A scheduler item name must be a '
                                 'non-empty string, not %r' % (name,))
    if not ISchedulerItem.providedBy(item):
        raise ConfigurationError('add_remote_scheduler_item(%r): %r is not '
                                 'a scheduler item' % (name, item))
    if item.title and item.title != name:
        raise ConfigurationError(
            'add_remote_scheduler_item(%r): the name is the item\'s title; '
            'leave the title out (it is %r)' % (name, item.title))

    def register():
        processor = config.registry.getUtility(IRemoteProcessor)
        if item.jobName not in processor.jobFactories:
            known = ', '.join(repr(n) for n in processor.jobFactories.keys())
            raise ConfigurationError(
                'add_remote_scheduler_item(%r): its jobName %r names no job '
                'factory; declare it with config.add_remote_job_factory(%r, '
                '...) (the known factories: %s)' % (
                    name, item.jobName, item.jobName, known or 'none'))
        put_scheduler_item(processor.scheduler, name, item)

    intr = config.introspectable('m01.remote scheduler items', name, name,
                                 'm01.remote scheduler item')
    intr['item'] = item
    config.action(('m01.remote.scheduler_item', name), register,
                  order=SCHEDULER_ITEM_ORDER, introspectables=(intr,))


def job_wrappers(registry):
    """The registry's ``IJobWrappers``, registered at first use."""
    wrappers = registry.queryUtility(IJobWrappers)
    if wrappers is None:
        wrappers = JobWrappers()
        registry.registerUtility(wrappers, IJobWrappers)
    return wrappers


def add_job_wrapper(config, factory, name=None, over=None, under=None):
    """Wrap each job's run in what ``factory(handler, registry)``
    returns (``m01.remote.queue.wrappers``), as Pyramid wraps requests in
    tweens: the wrappers declared first are outermost; ``over`` and
    ``under`` name wrappers (or ``OUTERMOST`` / ``JOB``) it goes outside
    or inside of. ``factory`` may be a dotted name; ``name`` defaults to
    its dotted name. Two wrappers of one name conflict at commit time.
    """
    factory = config.maybe_dotted(factory)
    if not callable(factory):
        raise ConfigurationError('add_job_wrapper: %r is not callable'
                                 % (factory,))
    if name is None:
        name = '%s.%s' % (factory.__module__, factory.__qualname__)
    for value in (over, under):
        names = value if isinstance(value, (list, tuple)) else [value]
        if not all(n is None or isinstance(n, str) for n in names):
            raise ConfigurationError('add_job_wrapper(%r): over and under '
                                     'name wrappers, not %r' % (name, value))

    def register():
        job_wrappers(config.registry).add(name, factory, over=over,
                                          under=under)

    intr = config.introspectable('m01.remote job wrappers', name, name,
                                 'm01.remote job wrapper')
    intr['factory'] = factory
    intr['over'] = over
    intr['under'] = under
    config.action(('m01.remote.job_wrapper', name), register,
                  introspectables=(intr,))


# includeme

def _configure_route_and_pages(config):
    # The one place the settings are parsed: every later reader (the
    # processor, the worker kinds, the pages) gets this object.
    settings = parse_settings(config.registry.settings or {})
    config.registry.m01_remote_settings = settings
    register_defaults(config.registry)
    if settings.tracing and tracing.available():
        # Outermost: the span covers every other wrapper.
        job_wrappers(config.registry).add(
            tracing.WRAPPER_NAME, tracing.jobSpan, under=OUTERMOST)
    # Their routes first: the pages' traversal route matches them too.
    config.include('m01.remote.views.metrics')
    if settings.pages:
        config.include('m01.remote.views.api')
    config.add_route(ROUTE_NAME, settings.route_pattern,
                     factory=pages_root_factory if settings.pages
                     else root_factory)
    if settings.pages:
        config.include('m01.remote.views')


def _register_processor(registry):
    registry.registerUtility(make_remote_processor(registry),
                             IRemoteProcessor)


def includeme(config):
    """Set up m01.remote in a Pyramid application.

    Registers the ``config.add_remote_job_factory``,
    ``config.add_remote_scheduler_item`` and ``config.add_job_wrapper``
    directives, the
    ``request.remote_processor`` property and, at commit time, the
    processor (an ``IRemoteProcessor`` utility), the ``m01.remote``
    traversal route and the management pages. No security policy is set:
    the pages require the permission named by ``m01.remote.permission``,
    which the site's policy grants.
    """
    # Jobs join the request's transaction: pyramid_tm commits or aborts it.
    config.include('pyramid_tm')
    config.include('pyramid_chameleon')
    config.add_directive('add_remote_job_factory', add_remote_job_factory)
    config.add_directive('add_remote_scheduler_item',
                         add_remote_scheduler_item)
    config.add_directive('add_job_wrapper', add_job_wrapper)
    config.add_request_method(get_remote_processor, 'remote_processor',
                              reify=True)
    config.add_subscriber(start_threads_on_app_created, ApplicationCreated)
    # Before the views are registered (order 0), which need the route.
    config.action('m01.remote.settings',
                  lambda: _configure_route_and_pages(config),
                  order=PHASE1_CONFIG)
    config.action('m01.remote.processor',
                  lambda: _register_processor(config.registry),
                  order=PROCESSOR_ORDER)
