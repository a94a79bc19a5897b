"""The worker kinds: named adapters of ``IRemoteProcessor`` to
``IJobWorker`` (``simple``, ``multi``, ``process`` and a site's own), and
the arguments each is made with from the settings."""
import inspect

from pyramid.exceptions import ConfigurationError

from m01.remote.interfaces import IJobWorker, IRemoteProcessor


def worker_arguments(settings, factory, **extra):
    """The keyword arguments the worker kind ``factory`` is called with:
    ``waitTime``, ``jobQuery``, ``maxThreads``, ``batchSize``,
    ``maxProcesses``, ``maxJobsPerChild`` and ``killGrace`` from the
    ``m01.remote.worker.*`` settings, and the ``extra`` ones (``m01remote
    worker`` gives ``configUri``), those it accepts (all of them when it
    takes ``**kw``).
    """
    offered = {'waitTime': settings.worker_wait_time,
               'jobQuery': settings.worker_job_query,
               'maxThreads': settings.worker_max_threads,
               'batchSize': settings.worker_batch_size,
               'maxProcesses': settings.worker_max_processes,
               'maxJobsPerChild': settings.worker_max_jobs_per_child,
               'killGrace': settings.worker_kill_grace}
    offered.update(extra)
    try:
        parameters = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return offered   # no signature to read: offer them all
    if any(parameter.kind is parameter.VAR_KEYWORD
           for parameter in parameters.values()):
        return offered
    return {key: value for key, value in offered.items()
            if key in parameters}


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
