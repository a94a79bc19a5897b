"""The workers page: every process working for the queue, as the
``workers`` view-model of ``m01.remote.views.sources`` describes them,
and the threads of the web process serving the page."""
from pyramid.view import view_defaults

from m01.remote import interfaces
from m01.remote.views.common import BaseView, remote_view, template


def _order(process):
    # The live ones first, then by where they run.
    return (not process['alive'], str(process['host']), process['pid'] or 0)


@view_defaults(context=interfaces.IRemoteProcessor,
               renderer=template('workers'))
class WorkersView(BaseView):

    section = 'workers'

    @remote_view(name='workers', request_method='GET')
    def list(self):
        rp = self.context
        workers = self.sources.workers(rp, self.now)
        processes = sorted(workers['processes'], key=_order)
        return {'title': 'Workers', 'workers': workers,
                'processes': processes,
                'alive': sum(1 for p in processes if p['alive']),
                'gone': sum(1 for p in processes if not p['alive']),
                'localThreads': [('Job worker thread', rp.isProcessing),
                                 ('Scheduler thread', rp.isScheduling)]}
