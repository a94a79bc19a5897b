"""What the pages, the API and the commands show of a job factory and
of a queue (``FactoryInfo``, ``QueueInfo``), as ``QueueQueries`` reads
them."""
import dataclasses

from m01.remote.job import DEFAULT_QUEUE, jobClassKey


@dataclasses.dataclass
class FactoryInfo:
    """A job factory as the pages show it: its name, class, the first
    paragraph of the class's docstring, the defaults its jobs get, and
    whether it is paused; its queue, its rate limit (``[starts,
    seconds]``) and how many starts of it the current period used."""

    name: str
    className: str
    doc: str
    defaults: list
    paused: bool
    concurrency: int = None
    queue: str = DEFAULT_QUEUE
    rateLimit: list = None
    rateUsed: int = None
    #: ``{status: seconds or None}``, ``IJobRetention.periodsOf``.
    retention: dict = None


@dataclasses.dataclass
class QueueInfo:
    """A queue as the pages show it: its name, whether it is paused, its
    rate limit and how many starts the current period used, its jobs by
    status and the factories whose jobs join it."""

    name: str
    paused: bool
    rateLimit: list
    rateUsed: int
    counts: dict
    factories: list


def summary(doc):
    """The first paragraph of a docstring, on one line."""
    text = ' '.join((doc or '').strip().split('\n\n')[0].split())
    # reStructuredText literals read better without their quotes here.
    return text.replace('``', '')


def factoryInfo(name, factory, paused, rateUsed=None, retention=None):
    defaults = factory.dump()
    # The name and class have fields of their own; the fields a subclass
    # declares are shown beside the base ones.
    for key in ('name', 'jobClass'):
        defaults.pop(key, None)
    defaults.update(defaults.pop('data', None) or {})
    return FactoryInfo(name=name, className=jobClassKey(type(factory)),
                       doc=summary(type(factory).__doc__),
                       defaults=sorted(defaults.items()), paused=paused,
                       concurrency=factory.concurrency, queue=factory.queue,
                       rateLimit=factory.rateLimit, rateUsed=rateUsed,
                       retention=retention)
