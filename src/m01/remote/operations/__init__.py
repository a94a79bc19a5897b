"""The operator's layer: the one place the management pages, the JSON
API, the ``m01remote`` commands and the metrics read and change the
queue through.

``queries(processor)`` gives the reads (``IQueueQueries``),
``actions(processor)`` the changes (``IQueueActions``), of a processor
bound to the unit of work's transaction manager (a request's
``request.remote_processor``). ``JobFilter`` says which jobs a listing,
a count or a bulk action is about, ``BulkRequest`` which jobs a bulk
action changes; both are read strictly from what the pages, the API and
the commands are given (``fromParams``, ``fromJSON``).
"""
from m01.remote.operations.actions import (  # noqa: F401
    BULK_LIMITS,
    BulkResult,
    QueueActions,
)
from m01.remote.operations.bulkrequest import (  # noqa: F401
    ACTIONS,
    MAX_SELECTED,
    BulkRequest,
)
from m01.remote.operations.factories import (  # noqa: F401
    FactoryInfo,
    QueueInfo,
)
from m01.remote.operations.filters import (  # noqa: F401
    FILTER_KEYS,
    MAX_PAGE_SIZE,
    SORT_FIELDS,
    JobFilter,
    JobPage,
    checkPage,
    checkSort,
)
from m01.remote.operations.queries import (  # noqa: F401
    MAX_LOOKUP,
    QueueQueries,
)


def queries(processor):
    """The reads of ``processor`` (``IQueueQueries``)."""
    return QueueQueries(processor)


def actions(processor):
    """The changes made through ``processor`` (``IQueueActions``)."""
    return QueueActions(processor)
