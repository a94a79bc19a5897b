"""The scheduler: ``Delay`` and ``Cron`` items in a ``Scheduler``
container, each due occurrence turned into one job (``scheduleNextJob``),
as the specification imports them from ``m01.remote.scheduler``."""
from m01.remote.scheduler.container import (  # noqa: F401
    Scheduler,
    put_scheduler_item,
)
from m01.remote.scheduler.items import (  # noqa: F401
    DEFAULT_RETRY_DELAY,
    Cron,
    Delay,
    SchedulerItem,
    adjustCallTime,
)
from m01.remote.scheduler.occurrences import (  # noqa: F401
    jobIdFor,
    scheduleNextJob,
)
