"""The workers page: every process working for the queue, as the
``workers`` view-model of ``m01.remote.views.sources`` describes them
(from their heartbeats), and the threads of the web process serving the
page; asking a process to take no more jobs, to take jobs again or to
stop, after a confirmation."""
from pyramid.httpexceptions import HTTPBadRequest
from pyramid.view import view_defaults

from m01.remote import interfaces
from m01.remote.limits import shorten
from m01.remote.operations.actions import WORKER_ACTIONS
from m01.remote.views.common import (
    BaseView,
    confirmation,
    remote_view,
    template,
)
from m01.remote.views.sources import CONTROLS

#: action -> (question, button, what follows, whether it is red)
QUESTIONS = {
    'quiet': ('Let process %s take no more jobs?', 'Quiet process',
              'It finishes the jobs it runs and then waits, its scheduler '
              'adds no jobs, until it is resumed. It sees this at its next '
              'heartbeat, within seconds.', False),
    'resume': ('Let process %s take jobs again?', 'Resume process',
               'It sees this at its next heartbeat, within seconds.',
               False),
    'stop': ('Stop process %s?', 'Stop process',
             'It stops as on SIGTERM: it takes no more jobs, lets the '
             'running ones finish and exits. Only a process manager starts '
             'it again.', True),
}
DONE = {'quiet': 'Process %s takes no more jobs once it sees it '
                 '(within seconds).',
        'resume': 'Process %s takes jobs again once it sees it.',
        'stop': 'Process %s stops once it sees it (its running jobs '
                'finish first).'}


def _order(process):
    # The live ones first, then by where they run.
    return (not process['alive'], str(process['host']), process['pid'] or 0)


#: Seconds between two refreshes of the page by the script: a heartbeat's.
LIVE_WORKERS = 5


@view_defaults(context=interfaces.IRemoteProcessor)
class WorkersView(BaseView):

    section = 'workers'

    @remote_view(name='workers', request_method='GET',
                 renderer=template('workers'))
    def list(self):
        rp = self.context
        workers = self.sources.workers(rp, self.now)
        processes = sorted(workers['processes'], key=_order)
        threads = self.queries.threads()
        return {'title': 'Workers', 'workers': workers,
                'processes': processes, 'live': LIVE_WORKERS,
                'alive': sum(1 for p in processes if p['alive']),
                'stopped': sum(1 for p in processes
                               if p['state'] == 'stopped'),
                'gone': sum(1 for p in processes
                            if not p['alive'] and p['state'] != 'stopped'),
                'localThreads': [('Job worker thread', threads['worker']),
                                 ('Scheduler thread',
                                  threads['scheduler'])]}

    def _control(self, params):
        processId = params.get('process', '')
        action = params.get('action', '')
        if action not in WORKER_ACTIONS:
            raise HTTPBadRequest('action must be one of %s'
                                 % ', '.join(WORKER_ACTIONS))
        return processId, action

    @remote_view(name='control-worker', request_method='GET',
                 renderer=template('confirm'))
    def confirmControl(self):
        processId, action = self._control(self.request.GET)
        back = self.url(self.context, 'workers')
        question, button, detail, danger = QUESTIONS[action]
        title = '%s a process' % action.capitalize()
        try:
            worker = self.queries.worker(processId)
        except KeyError:
            return {'title': title, 'confirm': confirmation(
                'There is no process %s.' % shorten(processId, 80), back)}
        if action not in CONTROLS.get(worker['state'], ()):
            return {'title': title, 'confirm': confirmation(
                'Process %s is %s: there is nothing to %s.'
                % (processId, worker['state'], action), back)}
        return {'title': title, 'confirm': confirmation(
            question % processId, back,
            action=self.url(self.context, 'control-worker'),
            button=button, danger=danger, detail=detail,
            fields=[('process', processId), ('action', action)])}

    @remote_view(name='control-worker', request_method='POST',
                 require_csrf=True)
    def control(self):
        processId, action = self._control(self.request.POST)
        try:
            self.actions.controlWorker(processId, action)
        except KeyError:
            self.flash('There is no process %s.' % shorten(processId, 80),
                       'error')
        else:
            self.flash(DONE[action] % processId)
        return self.redirect(self.context, 'workers')
