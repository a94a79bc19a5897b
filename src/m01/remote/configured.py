"""A processor as the application's settings describe it: what
``config.include('m01.remote')``, the ``m01remote`` commands and a
process worker's children make."""
from m01.remote.interfaces import IJobOutboxFactory
from m01.remote.processor import RemoteProcessor
from m01.remote.settings import get_remote_settings
from m01.remote.store import connect
from m01.remote.worker.kinds import get_job_worker_factory, worker_arguments


def make_remote_processor(registry, settings=None):
    """Connect to the store and return a processor set up from
    ``settings`` (default: the registry's), its indexes ensured; its job
    worker kind is the one ``m01.remote.worker`` names in ``registry``.

    This is how the application, the ``m01remote`` commands and a process
    worker's children make their processor.
    """
    settings = settings or get_remote_settings(registry)
    database = connect(settings.uri, **settings.timeouts)[settings.database]
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
    processor.asyncJobs.limit = settings.worker_async_limit
    processor.retention.periods = settings.retention
    outbox = registry.queryUtility(IJobOutboxFactory)
    if outbox is not None:
        processor.useOutbox(outbox(processor))
    processor.ensureIndexes()
    return processor
