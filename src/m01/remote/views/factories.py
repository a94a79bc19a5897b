"""The job factories page: each factory with its state (taking jobs or
paused, its concurrency limit, its queue, its rate limit and how much of
it the current period used), its jobs counted by status, what its jobs
get by default, how long its finished jobs are kept, and pausing or
resuming it after a confirmation; then the queues, each with its state,
rate limit and jobs, paused or resumed the same way."""
from pyramid.httpexceptions import HTTPBadRequest
from pyramid.view import view_defaults

from m01.remote import interfaces
from m01.remote.job import RETAINED, checkQueueName
from m01.remote.operations.filters import textParam
from m01.remote.views.common import (
    BaseView,
    confirmation,
    formatValue,
    remote_view,
    template,
)
from m01.remote.views.formatting import duration

#: The statuses the page counts a factory's jobs in, with their label.
COUNTED = ((interfaces.QUEUED, 'queued'),
           (interfaces.PROCESSING, 'processing'),
           (interfaces.ERROR, 'in error'))
#: Characters of a default value the summary shows.
SHOWN_DEFAULT = 60


def _seconds(value):
    """A setting in seconds as the page writes it: "5 s", "1 min 30 s".
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return formatValue(value, SHOWN_DEFAULT)
    return '%g s' % value if value < 60 else duration(value)


def defaultsSummary(defaults):
    """What a factory's jobs get, in words: ``[(label, text)]``, the
    attempts always, the rest only where it differs from a plain job.
    (Its default input is among all the defaults only: a job added
    without an input has none.)"""
    attempts = defaults.get('maxRetries')
    text = 'at most %s' % attempts
    if attempts != 1:
        retry = 'retried %s after a failure' % _seconds(
            defaults.get('retryDelay'))
        if defaults.get('retryBackoff') == 'exponential':
            retry += ', doubling each time'
        if defaults.get('retryDelayMax') is not None:
            retry += ' up to %s' % _seconds(defaults['retryDelayMax'])
        if defaults.get('retryJitter'):
            retry += ', moved up to %g %% either way' % (
                defaults['retryJitter'] * 100)
        text += ', %s' % retry
    summary = [('Attempts', text)]
    if defaults.get('priority'):
        summary.append(('Priority', '%+d' % defaults['priority']))
    if defaults.get('timeout'):
        summary.append(('Timeout', _seconds(defaults['timeout'])))
    if defaults.get('title'):
        summary.append(('Title', formatValue(defaults['title'],
                                             SHOWN_DEFAULT)))
    if defaults.get('active') is False:
        summary.append(('Added', 'inactive'))
    return summary


def keptSummary(periods):
    """How long the finished jobs of a factory are kept, in words:
    ``[(status, 'for 1 day')]``."""
    return [(status, 'for ever' if periods[status] is None
             else 'for %s' % duration(periods[status]))
            for status in RETAINED if status in (periods or {})]


@view_defaults(context=interfaces.IJobFactoryContainer,
               renderer=template('factories'))
class FactoriesView(BaseView):

    section = 'factories'

    @remote_view(request_method='GET')
    def list(self):
        counts = self.queries.countsByFactory()
        capacity = self.queries.capacity()
        rp = self.processor
        factories = []
        for info in self.queries.factories():
            jobs = counts.get(info.name, {})
            limit, running = capacity.caps.get(info.name, (None, 0))
            factories.append({
                'name': info.name, 'className': info.className,
                'doc': info.doc, 'paused': info.paused,
                'concurrency': info.concurrency, 'slotsTaken': running,
                'queue': info.queue, 'rate': rateText(info),
                'kept': keptSummary(info.retention),
                'defaults': info.defaults,
                'summary': defaultsSummary(dict(info.defaults)),
                'counts': [(label, jobs[status],
                            self.url(rp.jobs, status=status,
                                     name=info.name))
                           for status, label in COUNTED
                           if jobs.get(status)],
                'total': sum(jobs.values()),
                'jobsUrl': self.url(rp.jobs, name=info.name),
                'addUrl': self.url(rp.jobs, 'add', name=info.name),
                'switchUrl': self.url(self.context, info.name,
                                      'resume' if info.paused
                                      else 'pause')})
        queues = [{
            'name': info.name, 'paused': info.paused,
            'rate': rateText(info), 'factories': info.factories,
            'counts': [(label, info.counts[status],
                        self.url(rp.jobs, status=status, queue=info.name))
                       for status, label in COUNTED
                       if info.counts.get(status)],
            'total': sum(info.counts.values()),
            'jobsUrl': self.url(rp.jobs, queue=info.name),
            'switchUrl': self.url(self.context, 'resume-queue' if
                                  info.paused else 'pause-queue')}
            for info in self.queries.queues()]
        return {'title': 'Job factories', 'factories': factories,
                'queues': queues}

    def _queueName(self):
        params = self.request.POST if self.request.method == 'POST' \
            else self.request.GET
        try:
            return checkQueueName(textParam(params, 'queue'))
        except ValueError as e:
            raise HTTPBadRequest(str(e))

    def _confirmQueue(self, pause):
        name = self._queueName()
        back = self.url(self.context, _anchor='queue-' + name)
        paused = self.processor.queueSettings.isPaused(name)
        title = '%s a queue' % ('Pause' if pause else 'Resume')
        if paused == pause:
            return {'title': title, 'confirm': confirmation(
                'Queue %s is %s already.'
                % (name, 'paused' if paused else 'not paused'), back)}
        return {'title': title, 'confirm': confirmation(
            '%s queue %s?' % ('Pause' if pause else 'Resume', name), back,
            action=self.url(self.context, '%s-queue' % (
                'pause' if pause else 'resume')),
            fields=[('queue', name)],
            button='%s queue' % ('Pause' if pause else 'Resume'),
            danger=False,
            detail='No process claims its jobs until it is resumed: they '
            'wait, queued. The jobs running now finish.' if pause else
            'Its queued jobs are claimed again, in their order.')}

    @remote_view(name='pause-queue', request_method='GET',
                 renderer=template('confirm'))
    def confirmPauseQueue(self):
        return self._confirmQueue(True)

    @remote_view(name='resume-queue', request_method='GET',
                 renderer=template('confirm'))
    def confirmResumeQueue(self):
        return self._confirmQueue(False)

    @remote_view(name='pause-queue', request_method='POST',
                 require_csrf=True)
    def pauseQueue(self):
        name = self._queueName()
        self.actions.pauseQueue(name)
        self.flash('Queue %s paused: its jobs wait.' % name)
        return self.redirect(self.context, _anchor='queue-' + name)

    @remote_view(name='resume-queue', request_method='POST',
                 require_csrf=True)
    def resumeQueue(self):
        name = self._queueName()
        self.actions.resumeQueue(name)
        self.flash('Queue %s resumed.' % name)
        return self.redirect(self.context, _anchor='queue-' + name)


def rateText(info):
    """A rate limit and its use, in words (None without a limit)."""
    if not info.rateLimit:
        return None
    starts, seconds = info.rateLimit
    return 'at most %d starts per %s, %s in the current period' % (
        starts, _seconds(seconds), info.rateUsed)


@view_defaults(context=interfaces.IJob,
               containment=interfaces.IJobFactoryContainer)
class FactoryView(BaseView):

    section = 'factories'

    def _switch(self, change, message):
        name = self.context.__name__
        try:
            change(name)
        except KeyError:
            self.flash('There is no job factory %s any more.' % name,
                       'error')
        else:
            self.flash(message % name)
        return self.redirect(self.context.__parent__,
                             _anchor='factory-' + name)

    def _confirm(self, pause):
        name = self.context.__name__
        back = self.url(self.context.__parent__,
                        _anchor='factory-' + name)
        paused = self.queries.factory(name).paused
        title = '%s a factory' % ('Pause' if pause else 'Resume')
        if paused == pause:
            return {'title': title, 'confirm': confirmation(
                'Job factory %s is %s already.'
                % (name, 'paused' if paused else 'not paused'), back)}
        if pause:
            confirm = confirmation(
                'Pause job factory %s?' % name, back,
                action=self.url(self.context, 'pause'),
                button='Pause factory', danger=False,
                detail='No process claims its jobs until it is resumed: '
                'they wait, queued. The jobs running now finish.')
        else:
            confirm = confirmation(
                'Resume job factory %s?' % name, back,
                action=self.url(self.context, 'resume'),
                button='Resume factory', danger=False,
                detail='Its queued jobs are claimed again, in their '
                'order.')
        return {'title': title, 'confirm': confirm}

    @remote_view(name='pause', request_method='GET',
                 renderer=template('confirm'))
    def confirmPause(self):
        return self._confirm(True)

    @remote_view(name='resume', request_method='GET',
                 renderer=template('confirm'))
    def confirmResume(self):
        return self._confirm(False)

    @remote_view(name='pause', request_method='POST', require_csrf=True)
    def pause(self):
        return self._switch(self.actions.pauseFactory,
                            'Job factory %s paused: its jobs wait.')

    @remote_view(name='resume', request_method='POST', require_csrf=True)
    def resume(self):
        return self._switch(self.actions.resumeFactory,
                            'Job factory %s resumed.')
