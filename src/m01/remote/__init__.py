"""m01.remote for Pyramid: ``config.include('m01.remote')``.

``includeme`` only registers. Everything that reads the ``m01.remote.*``
settings runs in configuration actions, when the configuration is
committed, so a site may still change its settings after the include;
worker threads start on ``ApplicationCreated``, never at import or include
time.
"""
import atexit
import contextlib
import inspect
import logging
import weakref

from pyramid.config import PHASE1_CONFIG
from pyramid.events import ApplicationCreated
from pyramid.exceptions import ConfigurationError
from zope.interface import Interface

from m01.remote.interfaces import (
    IJob,
    IJobErrorMessage,
    IJobOutboxFactory,
    IJobWorker,
    IRemoteProcessor,
)
from m01.remote.settings import get_remote_settings, parse_settings

logger = logging.getLogger('m01.remote')

ROUTE_NAME = 'm01.remote'

# Action orders: the processor is made after the site's own default-order
# registrations (a worker kind it registers in an action is then known),
# the job factories are stored once the processor exists, and the
# scheduler items once every factory they may name is there.
PROCESSOR_ORDER = 10
DIRECTIVE_ORDER = 20
SCHEDULER_ITEM_ORDER = 30

#: Seconds the atexit hook waits for running jobs.
STOP_TIMEOUT = 30.0


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


def root_factory(request):
    """A root factory making the processor the traversal root.

    Used by the ``m01.remote`` route; a site whose whole purpose is the
    queue may also pass it to its ``Configurator(root_factory=...)``.
    """
    return request.remote_processor


def pages_root_factory(request):
    """The root factory of the route when the pages are registered: the
    processor, but a request lacking the pages' permission is refused
    (the site's forbidden handling) before any id in its path is looked
    up, so an anonymous answer never tells which jobs or items exist.

    Paths of one segment (``/remote/jobs``) name no id and are left to
    the views' own permission check, which the site's policy then makes
    once, as for any view.
    """
    processor = request.remote_processor
    traverse = (request.matchdict or {}).get('traverse') or ()
    if len(traverse) > 1:
        permission = get_remote_settings(request.registry).permission
        if not request.has_permission(permission, processor):
            from pyramid.httpexceptions import HTTPForbidden
            raise HTTPForbidden()
    return processor


# worker kinds: named adapters (IRemoteProcessor) -> IJobWorker

def worker_arguments(settings, factory, **extra):
    """The keyword arguments the worker kind ``factory`` is called with:
    ``waitTime``, ``jobQuery``, ``maxThreads``, ``batchSize``,
    ``maxProcesses``, ``maxJobsPerChild`` and ``killGrace`` from the
    ``m01.remote.worker.*`` settings, and the ``extra`` ones (``m01remote
    worker`` gives ``configUri``), those it accepts (``accepted_names``).
    """
    offered = {'waitTime': settings.worker_wait_time,
               'jobQuery': settings.worker_job_query,
               'maxThreads': settings.worker_max_threads,
               'batchSize': settings.worker_batch_size,
               'maxProcesses': settings.worker_max_processes,
               'maxJobsPerChild': settings.worker_max_jobs_per_child,
               'killGrace': settings.worker_kill_grace}
    offered.update(extra)
    names = accepted_names(factory)
    if names is None:
        return offered
    return {key: value for key, value in offered.items() if key in names}


def _signature_names(callable):
    """The keyword names ``callable`` declares, and whether it also takes
    ``**kw``; None when it has no signature to read."""
    try:
        parameters = inspect.signature(callable).parameters.values()
    except (TypeError, ValueError):
        return None
    names = {parameter.name for parameter in parameters
             if parameter.kind in (parameter.POSITIONAL_OR_KEYWORD,
                                   parameter.KEYWORD_ONLY)}
    return names, any(parameter.kind is parameter.VAR_KEYWORD
                      for parameter in parameters)


def accepted_names(factory):
    """The keyword names the worker kind ``factory`` accepts, or None for
    any name.

    A function taking ``**kw``, or a class whose ``__init__`` takes it
    and has no base class but ``object``, accepts any name. A class whose
    ``__init__`` takes ``**kw`` and has base classes (a subclass of
    ``SimpleJobWorker`` passing ``**kw`` on, say) accepts the names it
    declares and those the ``__init__`` of its bases accept, up to the
    first one that takes no ``**kw``: those are the names the chain of
    ``super().__init__(..., **kw)`` calls can take.
    """
    if not isinstance(factory, type):
        read = _signature_names(factory)
        if read is None or read[1]:
            return None
        return read[0]
    accepted = set()
    for cls in factory.__mro__:
        if cls is object:
            return None   # every __init__ took **kw: they keep them
        if '__init__' not in vars(cls):
            continue
        read = _signature_names(vars(cls)['__init__'])
        if read is None:
            return None
        names, takesMore = read
        accepted |= names
        if not takesMore:
            return accepted
    return None


def worker_kinds(registry):
    """The names of the worker kinds registered in ``registry``."""
    return sorted(name for name, _ in registry.adapters.lookupAll(
        (IRemoteProcessor,), IJobWorker))


def get_job_worker_factory(registry, kind):
    factory = registry.adapters.lookup((IRemoteProcessor,), IJobWorker,
                                       name=kind)
    if factory is None:
        raise ConfigurationError(
            'm01.remote.worker = %s: no worker kind of that name is '
            'registered; the registered kinds are: %s' % (
                kind, ', '.join(worker_kinds(registry)) or 'none'))
    return factory


def register_defaults(registry):
    """Register the default worker kinds and job error message adapter,
    each only where the site has not registered its own."""
    from m01.remote.processes.worker import ProcessJobWorker
    from m01.remote.queue.errormessage import registerJobErrorMessageAdapter
    from m01.remote.worker import MultiJobWorker, SimpleJobWorker
    kinds = {'simple': SimpleJobWorker, 'multi': MultiJobWorker,
             'process': ProcessJobWorker}
    for name, factory in kinds.items():
        if registry.adapters.lookup((IRemoteProcessor,), IJobWorker,
                                    name=name) is None:
            registry.registerAdapter(factory, (IRemoteProcessor,),
                                     IJobWorker, name)
    if registry.adapters.lookup((IJob, Interface), IJobErrorMessage) is None:
        registerJobErrorMessageAdapter(registry)


def make_remote_processor(registry, settings=None):
    """Connect to the store and return a processor set up from
    ``settings`` (default: the registry's), its indexes ensured.

    This is how both the application and the ``m01remote`` commands make
    their processor.
    """
    # Imported here: importing m01.remote (for its interfaces, say) should
    # not import pymongo and the whole queue.
    from m01.remote.processor import RemoteProcessor
    from m01.remote.store import connect
    settings = settings or get_remote_settings(registry)
    database = connect(settings.uri)[settings.database]
    processor = RemoteProcessor(
        database, name=settings.name, registry=registry,
        prefix=settings.collection_prefix, leaseTime=settings.lease_time,
        wakeup=settings.wakeup, writeConcern=settings.write_concern,
        readPreference=settings.read_preference,
        schedulerWorkerArguments={'waitTime': settings.scheduler_wait_time})
    processor.jobWorkerFactory = get_job_worker_factory(registry,
                                                        settings.worker)
    processor.jobWorkerArguments = worker_arguments(
        settings, processor.jobWorkerFactory)
    processor.counters.retentionDays = settings.stats_retention_days
    outbox = registry.queryUtility(IJobOutboxFactory)
    if outbox is not None:
        processor.useOutbox(outbox(processor))
    processor.ensureIndexes()
    return processor


# threads

_in_process_threads = True


@contextlib.contextmanager
def no_in_process_threads():
    """Load an application without starting its worker threads.

    The ``m01remote`` commands run the threads in the foreground
    themselves, whatever ``start_worker`` says.
    """
    global _in_process_threads
    _in_process_threads = False
    try:
        yield
    finally:
        _in_process_threads = True


def start_threads(processor, worker=False, scheduler=False):
    """Start the job worker and/or the scheduler thread of ``processor``
    and make sure they are stopped gracefully when the process exits."""
    if worker:
        processor.startProcessor()
    if scheduler:
        processor.startScheduler()
    if (worker or scheduler) and processor not in _stopped_at_exit:
        _stopped_at_exit.add(processor)
        atexit.register(_stop_at_exit, weakref.ref(processor))


_stopped_at_exit = weakref.WeakSet()


def _stop_at_exit(reference):
    processor = reference()
    if processor is not None:
        stop_threads(processor)


def stop_threads(processor, timeout=STOP_TIMEOUT):
    """Stop both threads, each waiting up to ``timeout`` seconds for the
    jobs it runs; a job still running after that keeps its lease and is
    requeued by another worker once the lease expires."""
    processor.stopProcessor(timeout)
    processor.stopScheduler(timeout)


def start_threads_on_app_created(event):
    if not _in_process_threads:
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
    from m01.remote.job import Job
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
    from m01.remote.interfaces import ISchedulerItem
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


# Not compared: the scheduler moves these itself.
_MOVING_FIELDS = ('_id', '_type', 'nextCallTime', 'retryTime')


def _configured(item):
    data = item.dump()
    for key in _MOVING_FIELDS:
        data.pop(key, None)
    return data


def put_scheduler_item(scheduler, name, item):
    """Store (a copy of) ``item`` as the scheduler's item titled ``name``
    and return its id: added when there is none, updated when it changed,
    left alone (its next call time too) when it did not.

    Two processes starting at the same moment may both add it; the next
    start removes the younger duplicate.
    """
    data = dict(item.dump(), title=name)
    data.pop('_id', None)
    wanted = type(item)(data)
    stored = [i for i in scheduler.values() if i.title == name]
    keep = None
    for candidate in stored:
        if keep is None and type(candidate) is type(wanted):
            keep = candidate
        else:
            scheduler.remove(candidate)
    if keep is None:
        return scheduler.add(wanted)
    old, new = _configured(keep), _configured(wanted)
    changed = {key: value for key, value in new.items()
               if old.get(key) != value}
    if changed:
        logger.info('Scheduler item %r changed: %s', name,
                    ', '.join(sorted(changed)))
        scheduler.update(keep, **changed)
    return keep.__name__


# includeme

def _configure_route_and_pages(config):
    # The one place the settings are parsed: every later reader (the
    # processor, the worker kinds, the pages) gets this object.
    settings = parse_settings(config.registry.settings or {})
    config.registry.m01_remote_settings = settings
    register_defaults(config.registry)
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

    Registers the ``config.add_remote_job_factory`` and
    ``config.add_remote_scheduler_item`` directives, the
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
