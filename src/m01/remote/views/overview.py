"""The overview: worker threads, job counts and the latest errors."""
from pyramid.view import view_defaults

from m01.remote import interfaces
from m01.remote.views.common import BaseView, remote_view, template

LATEST_ERRORS = 10


@view_defaults(context=interfaces.IRemoteProcessor,
               renderer=template('overview'))
class OverviewView(BaseView):

    section = 'overview'

    @remote_view(request_method='GET')
    def overview(self):
        data = self.queries.overview(latest=LATEST_ERRORS)
        counts, threads = data['counts'], data['threads']
        return {
            'title': 'Remote processor',
            'threads': [
                {'title': 'Job processor', 'running': threads['worker'],
                 'start': 'start-processor', 'stop': 'stop-processor'},
                {'title': 'Scheduler', 'running': threads['scheduler'],
                 'start': 'start-scheduler', 'stop': 'stop-scheduler'},
            ],
            'counts': [(status.value, counts.get(status.value, 0))
                       for status in interfaces.JobStatus],
            'total': data['total'],
            'errors': data['latestFailures'],
            'workersAlive': data['workersAlive'],
        }

    def _switch(self, kind, running, message):
        self.actions.switchThreads(kind, running)
        self.flash(message)
        return self.redirect(self.context)

    @remote_view(name='start-processor', request_method='POST',
                 require_csrf=True)
    def startProcessor(self):
        return self._switch('worker', True, 'The job processor started.')

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
