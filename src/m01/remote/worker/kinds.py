"""The worker kinds: named adapters of ``IRemoteProcessor`` to
``IJobWorker`` (``simple``, ``multi``, ``process`` and a site's own), and
the arguments each is made with from the settings."""
import inspect

from pyramid.exceptions import ConfigurationError

from m01.remote.interfaces import IJobWorker, IRemoteProcessor


def worker_arguments(settings, factory, **extra):
    """The keyword arguments the worker kind ``factory`` is called with:
    ``waitTime``, ``jobQuery``, ``maxThreads``, ``batchSize``, ``queues``,
    ``maxProcesses``, ``maxJobsPerChild`` and ``killGrace`` from the
    ``m01.remote.worker.*`` settings, and the ``extra`` ones (``m01remote
    worker`` gives ``configUri``), those it accepts (``accepted_names``).
    """
    offered = {'waitTime': settings.worker_wait_time,
               'jobQuery': settings.worker_job_query,
               'maxThreads': settings.worker_max_threads,
               'batchSize': settings.worker_batch_size,
               'queues': settings.worker_queues,
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
