"""The overview: job counts, the queue, activity charts, workers, the
latest failures, and the threads of the web process serving the page."""
from pyramid.view import view_defaults

from m01.remote import interfaces
from m01.remote.operations import waits
from m01.remote.operations.actions import STOP_TIMEOUT
from m01.remote.views import charts, sources, waiting
from m01.remote.views.common import (
    BaseView,
    choiceParam,
    confirmation,
    remote_view,
    template,
)
from m01.remote.views.jobrows import jobRow

LATEST_ERRORS = 10


class _DueJob:
    """Any job due now, of no factory in particular: what holds every
    due job (no worker, every thread busy)."""

    status = interfaces.QUEUED
    active = True
    retryTime = None
    retryCounter = 0
    name = None


_DUE = _DueJob()
#: Seconds between two refreshes of the page by the script.
LIVE_OVERVIEW = 10


@view_defaults(context=interfaces.IRemoteProcessor,
               renderer=template('overview'))
class OverviewView(BaseView):

    section = 'overview'

    @remote_view(request_method='GET')
    def overview(self):
        rp = self.context
        queries = self.queries
        threads = queries.threads()
        span = choiceParam(self.request, 'span', tuple(sources.SPANS),
                           sources.DEFAULT_SPAN)
        activity = self.sources.activity(rp, self.now, span)
        workers = self.sources.workers(rp, self.now)
        queue = self.sources.queue(rp, self.now)
        # The queue's source counts the jobs with its figures; one that
        # does not leaves it to the page.
        counts = queue.get('counts')
        if counts is None:
            counts = queries.countByStatus()
        return {
            'title': 'Remote processor', 'live': LIVE_OVERVIEW,
            'threads': [
                {'title': 'Job worker thread', 'running': threads['worker'],
                 'start': 'start-processor', 'stop': 'stop-processor'},
                {'title': 'Scheduler thread',
                 'running': threads['scheduler'],
                 'start': 'start-scheduler', 'stop': 'stop-scheduler'},
            ],
            'process': rp.workerId,
            'counts': [(status.value, counts.get(status.value, 0))
                       for status in interfaces.JobStatus],
            'total': sum(counts.values()),
            'queued': counts.get(interfaces.QUEUED, 0),
            'queue': queue,
            'activity': activity,
            'spans': [(name, label, self.url(rp, span=name)
                       if name != sources.DEFAULT_SPAN else self.url(rp))
                      for name, (label, _s, _c) in sources.SPANS.items()],
            'spanLabel': sources.SPANS[span][0].lower(),
            'chart': self.chart(activity),
            'factoryStats': self.sources.factoryStats(rp, self.now, span),
            'workers': workers,
            'alive': sum(1 for p in workers['processes'] if p['alive']),
            'endedRunning': [job for p in workers['processes']
                             if p['alive'] for job in p['jobs']
                             if self.endedButRunning(job)],
            'failures': [jobRow(job, self.now, 'completed') for job in
                         queries.latestFailures(LATEST_ERRORS)],
            'holds': self.holds(),
        }

    def holds(self):
        """What holds the due jobs, in words: ``[(text, link)]``, the
        factories paused or at their limit with due jobs, and the worker
        threads when none takes them (``IQueueQueries.capacity``)."""
        queries = self.queries
        capacity = queries.capacity()
        due = {name: count for name, (count, _oldest)
               in queries.backlog().items() if count}
        rp = self.context
        holds = []
        for name in sorted(set(due) & capacity.paused):
            holds.append(('%s due job%s of the paused factory %s'
                          % ('{:,}'.format(due[name]),
                             '' if due[name] == 1 else 's', name),
                          ('resume it', self.url(
                              rp.jobFactories, _anchor='factory-' + name))))
        for name, (limit, running) in sorted(capacity.caps.items()):
            if due.get(name) and running >= limit and \
                    name not in capacity.paused:
                holds.append(('%s due job%s of %s, which runs at most %d '
                              'at once' % ('{:,}'.format(due[name]),
                                           '' if due[name] == 1 else 's',
                                           name, limit), None))
        if not sum(count for name, count in due.items()
                   if name not in capacity.paused):
            return holds
        reasons = waits.reasons(_DUE, capacity, self.now)
        for note in waiting.waitNotes(self, _DUE, reasons):
            holds.append((note['text'], note['link']))
        return holds

    @staticmethod
    def chart(activity):
        """The chart of the activity view-model (None without data)."""
        if not activity['available']:
            return None
        label = sources.SPANS[activity['span']][0]
        return charts.stackedBars(
            [('completed', activity['completed'], 'bar',
              'attempts that completed: each one a job completed'),
             ('failed', activity['failed'], 'bar failures',
              'attempts that failed, timed out or lost their worker, '
              'retried or not: a job that ends in error counts once for '
              'each of its attempts')],
            activity['bucketSeconds'], activity['end'],
            'Attempts completed and failed, %s' % label.lower(),
            unit='attempts')

    def _switch(self, kind, running, message):
        self.actions.switchThreads(kind, running)
        self.flash(message)
        return self.redirect(self.context)

    @remote_view(name='start-processor', request_method='POST',
                 require_csrf=True)
    def startProcessor(self):
        return self._switch('worker', True, 'The job processor started.')

    def _confirmStop(self, what, action, running):
        back = self.url(self.context)
        if not running:
            confirm = confirmation(
                'The %s of this web process is not running.' % what, back)
        else:
            confirm = confirmation(
                'Stop the %s of this web process?' % what, back,
                action=self.url(self.context, action),
                button='Stop the %s' % what,
                detail='What it runs now finishes first (this page waits '
                'up to %g s; the thread ends once it is done). Workers '
                'and schedulers in other processes go on.' % STOP_TIMEOUT)
        return {'title': 'Stop the %s' % what, 'confirm': confirm}

    @remote_view(name='stop-processor', request_method='GET',
                 renderer=template('confirm'))
    def confirmStopProcessor(self):
        return self._confirmStop('job worker thread', 'stop-processor',
                                 self.queries.threads()['worker'])

    @remote_view(name='stop-scheduler', request_method='GET',
                 renderer=template('confirm'))
    def confirmStopScheduler(self):
        return self._confirmStop('scheduler thread', 'stop-scheduler',
                                 self.queries.threads()['scheduler'])

    @remote_view(name='stop-processor', request_method='POST',
                 require_csrf=True)
    def stopProcessor(self):
        return self._switch('worker', False, 'The job processor stopped.')

    @remote_view(name='start-scheduler', request_method='POST',
                 require_csrf=True)
    def startScheduler(self):
        return self._switch('scheduler', True, 'The scheduler started.')

    @remote_view(name='stop-scheduler', request_method='POST',
                 require_csrf=True)
    def stopScheduler(self):
        return self._switch('scheduler', False, 'The scheduler stopped.')
