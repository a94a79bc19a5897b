"""Where the overview's figures and the workers page's processes come
from: the view-models those pages show, and stand-ins that say honestly
that the data is not recorded yet.

``Placeholders`` has one method per view-model, each returning the dict
documented below with ``available`` (or ``enabled``) False and nothing
made up. A source that has the data (per-minute counters, worker
heartbeats, a search, bulk actions) has the same methods, returning the
same dicts filled in; the pages use it once it is their ``sources``
(``BaseView.sources``, one line). The templates show every state: no
data yet, no activity at all (an idle queue), and the data.

The view-models:

``activity(processor, now, span)``, the overview's charts
    ``{'available', 'span', 'bucketSeconds', 'end', 'completed',
    'failed', 'note'}``: ``completed`` and ``failed`` are lists of job
    counts, one per period of ``bucketSeconds`` (see ``SPANS``), the
    oldest first, the last ending at ``end``; ``failed`` counts attempts
    that failed (retried or not).

``queue(processor, now)``, the backlog and its latency
    ``{'available', 'due', 'later', 'oldestDue', 'note'}``: queued jobs
    due now and due later, and the due time of the job that has waited
    longest (its age is the queue's latency; None when none is due).

``factoryStats(processor, now)``, per factory
    ``{'available', 'rows', 'note'}``, each row ``{'name', 'queued',
    'processing', 'completed', 'error', 'meanSeconds', 'paused',
    'concurrency'}``; ``meanSeconds`` is the mean run time of its jobs
    completed in the last day (None without any).

``workers(processor, now)``, the processes working for the queue
    ``{'available', 'processes', 'note'}``, each process ``{'id',
    'host', 'pid', 'name', 'kind', 'threads', 'busy', 'started',
    'lastSeen', 'alive', 'state', 'jobs', 'quietUrl', 'stopUrl'}``:
    ``kind`` is 'worker', 'scheduler' or 'web'; ``state`` 'running',
    'quiet' (takes no new jobs) or 'stopping'; a process that stopped
    sending heartbeats has ``alive`` False (the page greys it); ``jobs``
    are the jobs it runs, each ``{'id', 'name', 'title', 'started',
    'leaseExpires'}``; ``quietUrl`` and ``stopUrl`` are links to GET
    confirmation pages of those actions (``confirm.pt`` with
    ``common.confirmation``, whose form posts the action), None where
    there is no such action (the page then shows no button).

``jobSearch(request)`` and ``bulkActions(request, filters)``, the jobs
    page: ``{'enabled', 'q'}`` (the search box is shown once enabled;
    ``q`` is the text searched for), and ``{'enabled', 'actions'}``, each
    action ``{'name', 'label', 'url', 'danger'}`` whose ``url`` is a
    confirmation page taking the chosen ``job`` ids (or ``all=1`` and the
    filters, for every job that matches) and showing their count.
"""

#: The charts' spans: name -> (label, seconds per period, periods).
SPANS = {
    'hour': ('Last hour', 60, 60),
    'day': ('Last day', 15 * 60, 96),
    'week': ('Last week', 3600, 168),
}
DEFAULT_SPAN = 'hour'

NOT_RECORDED = ('No data yet: this version of the queue does not record '
                '%s.')


class Placeholders:
    """Every source, none with data yet (``BaseView.sources``)."""

    def activity(self, processor, now, span=DEFAULT_SPAN):
        _label, bucketSeconds, _count = SPANS[span]
        return {'available': False, 'span': span,
                'bucketSeconds': bucketSeconds, 'end': now,
                'completed': [], 'failed': [],
                'note': NOT_RECORDED % 'how many jobs complete and fail '
                'a minute'}

    def queue(self, processor, now):
        return {'available': False, 'due': None, 'later': None,
                'oldestDue': None,
                'note': NOT_RECORDED % 'how long due jobs have waited'}

    def factoryStats(self, processor, now):
        return {'available': False, 'rows': [],
                'note': NOT_RECORDED % 'job counts and run times per '
                'factory'}

    def workers(self, processor, now):
        return {'available': False, 'processes': [],
                'note': NOT_RECORDED % 'worker heartbeats, so the '
                'processes working for it are not known here'}

    def jobSearch(self, request):
        return {'enabled': False, 'q': ''}

    def bulkActions(self, request, filters):
        return {'enabled': False, 'actions': []}
