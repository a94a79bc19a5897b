"""The workers page: the processes that work for the queue, as their
heartbeats tell, and asking one to take no more jobs, to take jobs again
or to stop."""
from pyramid.httpexceptions import HTTPBadRequest
from pyramid.view import view_defaults

from m01.remote import interfaces
from m01.remote.operations.actions import WORKER_ACTIONS
from m01.remote.views.common import BaseView, remote_view, template

DONE = {'quiet': 'Process %s takes no more jobs once it sees it '
                 '(within seconds).',
        'resume': 'Process %s takes jobs again once it sees it.',
        'stop': 'Process %s stops once it sees it (its running jobs '
                'finish first).'}


@view_defaults(context=interfaces.IRemoteProcessor)
class WorkersView(BaseView):

    section = 'workers'

    @remote_view(name='workers', request_method='GET',
                 renderer=template('workers'))
    def list(self):
        workers = self.queries.workers()
        for worker in workers:
            worker['actions'] = actionsFor(worker)
        return {'title': 'Workers', 'workers': workers,
                'alive': sum(1 for w in workers
                             if w['state'] not in ('gone', 'stopped'))}

    @remote_view(name='control-worker', request_method='POST',
                 require_csrf=True)
    def control(self):
        processId = self.request.POST.get('process', '')
        action = self.request.POST.get('action', '')
        if action not in WORKER_ACTIONS:
            raise HTTPBadRequest('action must be one of %s'
                                 % ', '.join(WORKER_ACTIONS))
        try:
            self.actions.controlWorker(processId, action)
        except KeyError:
            self.flash('There is no process %s.' % processId[:80], 'error')
        else:
            self.flash(DONE[action] % processId)
        return self.redirect(self.context, 'workers')


def actionsFor(worker):
    """What an operator may ask of a process in its state."""
    if worker['state'] == 'running':
        return ('quiet', 'stop')
    if worker['state'] == 'quiet':
        return ('resume', 'stop')
    return ()
