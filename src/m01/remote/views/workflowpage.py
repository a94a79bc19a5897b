"""The page of a workflow (a chain or a group): its progress by status
and its jobs in the order they were added, one page at a time
(``/remote/jobs/workflow?id=<workflow id>``)."""
from pyramid.httpexceptions import HTTPNotFound
from pyramid.view import view_defaults

from m01.remote import interfaces
from m01.remote.operations.filters import MAX_PAGE
from m01.remote.views import common
from m01.remote.views.common import BaseView, intParam, remote_view, template

#: Jobs one page of a workflow lists.
PAGE_SIZE = 100


@view_defaults(context=interfaces.IJobContainer)
class WorkflowView(BaseView):

    section = 'jobs'

    @remote_view(name='workflow', request_method='GET',
                 renderer=template('workflow'))
    def workflow(self):
        workflowid = self.request.GET.get('id', '')
        page = intParam(self.request, 'page', 1, 1, MAX_PAGE)
        try:
            shown = self.queries.workflow(workflowid, page, PAGE_SIZE)
        except KeyError:
            raise HTTPNotFound('There is no workflow %r' % workflowid[:40])
        ended = sum(shown['progress'].get(status, 0) for status in (
            interfaces.COMPLETED, interfaces.ERROR, interfaces.CANCELLED))
        first = (shown['page'] - 1) * PAGE_SIZE + 1
        pager = common.pager(
            shown['page'], shown['pages'],
            lambda n: self.url(self.context, 'workflow', id=workflowid,
                               **({'page': n} if n > 1 else {})),
            asked=page, total=shown['total'], first=first,
            last=first + len(shown['jobs']) - 1)
        return {'title': 'Workflow %s' % shown['workflow'],
                'workflow': shown['workflow'],
                'progress': [(status, shown['progress'][status])
                             for status in interfaces.STATI
                             if shown['progress'].get(status)],
                'total': shown['total'], 'ended': ended,
                'percent': int(100 * ended / shown['total']),
                'jobs': shown['jobs'], 'pager': pager}
