"""Where the overview's figures, the workers page's processes and the
jobs page's search and bulk actions come from: the view-models those
pages show, read through the operator's layer (``m01.remote.operations``).

``QueueSources`` is the pages' source: ``BaseView.sources`` makes one
for each page, so that what several view-models share (the counters of a
period, the jobs counted per factory) is read once. A source of a site's
own has the same methods, returning the same dicts, and takes its place
as ``BaseView.sources`` (the tests' sample data is one). A source that
lacks some data says so, with ``available`` (or ``enabled``) False and a
``note`` the page shows instead of guessing. The templates show every
state: no data, no activity at all (an idle queue), and the data.

The view-models:

``activity(processor, now, span)``, the overview's charts
    ``{'available', 'span', 'bucketSeconds', 'end', 'completed',
    'failed', 'note'}``: ``completed`` and ``failed`` are lists of job
    counts, one per period of ``bucketSeconds`` (see ``SPANS``), the
    oldest first, the last ending at ``end``; ``failed`` counts attempts
    that failed, timed out or lost their worker (retried or not).

``queue(processor, now)``, the jobs, the backlog and its latency
    ``{'available', 'counts', 'due', 'later', 'oldestDue', 'note'}``:
    ``counts`` is ``{status: n}`` of every job (the overview counts them
    itself when a source gives none), then queued jobs due now and the
    others queued (due later), and the queued time of the oldest due job
    (its age is the queue's latency; None when none is due).

``factoryStats(processor, now, span)``, per factory
    ``{'available', 'rows', 'note'}``, each row ``{'name', 'queued',
    'processing', 'completed', 'error', 'meanSeconds', 'paused',
    'concurrency'}``; ``meanSeconds`` is the mean run time of its
    attempts that ran in the span (None without any).

``workers(processor, now)``, the processes working for the queue
    ``{'available', 'processes', 'note'}``, each process ``{'id',
    'host', 'pid', 'name', 'kinds', 'origin', 'threads', 'busy',
    'started', 'lastSeen', 'alive', 'state', 'jobs', 'quietUrl',
    'resumeUrl', 'stopUrl'}``: ``name`` is the processor's; ``kinds``
    what it runs ('worker', 'scheduler'); ``origin`` what started them
    ('threads' of a process such as a web process, or the ``m01remote``
    command); ``threads`` the job worker's threads and ``busy`` how many
    run a job; ``state`` 'running', 'quiet' (takes no new jobs),
    'stopping', 'stopped' or 'gone' (no heartbeat for a while), and
    ``alive`` False for the last two (the page greys them); ``jobs`` are
    the jobs it runs, each ``{'id', 'name', 'title', 'started',
    'leaseExpires', 'thread', 'status'}`` (``thread`` the name of the
    thread running it, when the heartbeat says; ``status`` the job's,
    which is not 'processing' for a job cancelled before it reached a
    checkpoint: its thread runs it until its code returns);
    ``quietUrl``, ``resumeUrl`` and ``stopUrl`` are links to GET
    confirmation pages of those actions (``confirm.pt``
    with ``common.confirmation``, whose form posts the action), None
    where the action does not apply (the page then shows no button).

``jobSearch(request)`` and ``bulkActions(request, filters)``, the jobs
    page: ``{'enabled', 'q'}`` (the search box is shown once enabled;
    ``q`` is the text searched for), and ``{'enabled', 'actions'}``, each
    action ``{'name', 'label', 'url', 'danger'}`` whose ``url`` is a
    confirmation page taking the chosen ``job`` ids (or ``all=1`` and the
    filters, for every job that matches) and the ``action``'s name, and
    showing how many jobs it changes.
"""
import datetime

from m01.remote import operations
from m01.remote.interfaces import QUEUED, STATI
from m01.remote.operations.stats import WINDOWS
from m01.remote.views.routes import resourceUrl

_LABELS = {'hour': 'Last hour', 'day': 'Last day', 'week': 'Last week'}
#: The charts' spans, the layer's windows: name -> (label, seconds per
#: period, periods).
SPANS = {name: (_LABELS[name], step, seconds // step)
         for name, (seconds, step, _kind) in WINDOWS.items()}
DEFAULT_SPAN = 'hour'

#: The bulk actions: name -> (label, whether it cannot be undone).
BULK_ACTIONS = {'cancel': ('Cancel', False), 'retry': ('Retry', False),
                'delete': ('Delete', True)}
#: What an operator may ask of a process in each state.
CONTROLS = {'running': ('quiet', 'stop'), 'quiet': ('resume', 'stop')}
GONE_STATES = ('gone', 'stopped')


class QueueSources:
    """The view-models of one page (``request``'s), from the queue."""

    def __init__(self, request):
        self.request = request
        self._read = {}

    def _once(self, processor, what, *args):
        """What the layer answers to ``what(*args)``, asked once."""
        key = (id(processor), what) + args
        if key not in self._read:
            queries = operations.queries(processor)
            self._read[key] = getattr(queries, what)(*args)
        return self._read[key]

    def activity(self, processor, now, span=DEFAULT_SPAN):
        _label, bucketSeconds, _count = SPANS[span]
        buckets, _perFactory = self._once(processor, 'outcomes', span)
        end = buckets[-1]['at'] + datetime.timedelta(
            seconds=bucketSeconds) if buckets else now
        return {'available': True, 'span': span,
                'bucketSeconds': bucketSeconds, 'end': end,
                'completed': [bucket['completed'] for bucket in buckets],
                'failed': [bucket['failures'] for bucket in buckets],
                'note': ''}

    def queue(self, processor, now):
        backlog = self._once(processor, 'backlog')
        due = sum(count for count, _oldest in backlog.values())
        # The counts per status are those per factory added up: the jobs
        # are counted once a page.
        counts = dict.fromkeys(STATI, 0)
        for perStatus in self._once(processor, 'countsByFactory').values():
            for status, count in perStatus.items():
                counts[status] = counts.get(status, 0) + count
        queued = counts.get(QUEUED, 0)
        return {'available': True, 'counts': counts, 'due': due,
                'later': max(queued - due, 0),
                'oldestDue': min((oldest for _count, oldest in
                                  backlog.values() if oldest is not None),
                                 default=None),
                'note': ''}

    def factoryStats(self, processor, now, span=DEFAULT_SPAN):
        counts = self._once(processor, 'countsByFactory')
        _buckets, perFactory = self._once(processor, 'outcomes', span)
        infos = {info.name: info
                 for info in self._once(processor, 'factories')}
        rows = []
        for name in sorted(set(infos) | set(counts)):
            jobs, window = counts.get(name, {}), perFactory.get(name, {})
            info = infos.get(name)
            rows.append({
                'name': name, 'queued': jobs.get('queued', 0),
                'processing': jobs.get('processing', 0),
                'completed': jobs.get('completed', 0),
                'error': jobs.get('error', 0),
                'meanSeconds': window['seconds'] / window['runs']
                if window.get('runs') else None,
                'paused': bool(info and info.paused),
                'concurrency': info.concurrency if info else None})
        return {'available': True, 'rows': rows, 'note': ''}

    def workers(self, processor, now):
        listed = self._once(processor, 'workers')
        running = [job['job'] for worker in listed
                   if worker['state'] not in GONE_STATES
                   for job in worker.get('jobs') or ()]
        jobs = operations.queries(processor).jobsById(
            running[:operations.MAX_LOOKUP])
        return {'available': True, 'note': '',
                'processes': [self._process(processor, worker, jobs)
                              for worker in listed]}

    def _process(self, processor, worker, jobs):
        threads = worker.get('threads') or {}
        running = []
        for entry in worker.get('jobs') or ():
            job = jobs.get(entry['job'])
            running.append({'id': entry['job'],
                            'name': job.name if job is not None else '',
                            'title': job.title if job is not None else '',
                            'started': job.picked if job is not None
                            else None,
                            'leaseExpires': entry.get('leaseExpires'),
                            'thread': entry.get('thread'),
                            'status': job.status if job is not None
                            else None})
        controls = CONTROLS.get(worker['state'], ())

        def url(action):
            if action not in controls:
                return None
            return resourceUrl(self.request, processor, 'control-worker',
                               query={'process': worker['id'],
                                      'action': action})
        return {'id': worker['id'], 'host': worker.get('host'),
                'pid': worker.get('pid'), 'name': worker.get('processor'),
                'kinds': list(worker.get('kinds') or ()),
                'origin': worker.get('origin'),
                'threads': threads.get('worker', 0),
                'busy': len(running), 'started': worker.get('started'),
                'lastSeen': worker.get('seen'),
                'alive': worker['state'] not in GONE_STATES,
                'state': worker['state'], 'jobs': running,
                'quietUrl': url('quiet'), 'resumeUrl': url('resume'),
                'stopUrl': url('stop')}

    def jobSearch(self, request):
        return {'enabled': True, 'q': request.GET.get('q', '')}

    def bulkActions(self, request, filters):
        url = resourceUrl(request, request.root.jobs, 'bulk')
        return {'enabled': True, 'actions': [
            {'name': name, 'label': label, 'url': url, 'danger': danger}
            for name, (label, danger) in BULK_ACTIONS.items()]}
