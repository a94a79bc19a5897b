"""The job pages: the paged list, removing jobs, adding one, the detail
page of a job and its actions."""
import itertools
import math

from pyramid.httpexceptions import HTTPBadRequest
from pyramid.view import view_defaults

from m01.remote import interfaces
from m01.remote.containers import SORT_FIELDS
from m01.remote.views.common import (
    BaseView,
    choiceParam,
    intParam,
    parseJSON,
    remote_view,
    template,
)

PAGE_SIZE = 50
# Beyond this a page number is surely hand-made; it keeps the skip given
# to the database small (the page is clamped to the last one anyway).
MAX_PAGE = 10 ** 6

STATI = tuple(status.value for status in interfaces.JobStatus)
# A processing job belongs to a worker; it is cancelled, not removed.
REMOVABLE = (interfaces.COMPLETED, interfaces.CANCELLED, interfaces.ERROR,
             interfaces.QUEUED)
ORDERS = ('desc', 'asc')
DEFAULT_FILTERS = {'sort': 'created', 'order': 'desc'}


@view_defaults(context=interfaces.IJobContainer)
class JobsView(BaseView):

    section = 'jobs'

    def filters(self):
        request = self.request
        return {
            'status': choiceParam(request, 'status', STATI, ''),
            'name': request.GET.get('name', ''),
            'sort': choiceParam(request, 'sort', SORT_FIELDS,
                                DEFAULT_FILTERS['sort']),
            'order': choiceParam(request, 'order', ORDERS,
                                 DEFAULT_FILTERS['order']),
        }

    def pageUrl(self, filters, page):
        query = {key: value for key, value in filters.items()
                 if value and value != DEFAULT_FILTERS.get(key)}
        if page > 1:
            query['page'] = page
        return self.url(self.context, **query)

    @remote_view(request_method='GET', renderer=template('jobs'))
    def list(self):
        filters = self.filters()
        page = intParam(self.request, 'page', 1, 1, MAX_PAGE)
        total, jobs = self._query(filters, page)
        pages = max(1, math.ceil(total / PAGE_SIZE))
        if page > pages:
            # Past the end: show the last page rather than nothing.
            page = pages
            total, jobs = self._query(filters, page)
            pages = max(1, math.ceil(total / PAGE_SIZE))
        pager = {
            'page': page, 'pages': pages, 'total': total,
            'first': (page - 1) * PAGE_SIZE + 1 if jobs else 0,
            'last': (page - 1) * PAGE_SIZE + len(jobs),
            'previous': self.pageUrl(filters, page - 1) if page > 1
            else None,
            'next': self.pageUrl(filters, page + 1) if page < pages
            else None,
            'firstUrl': self.pageUrl(filters, 1) if page > 1 else None,
            'lastUrl': self.pageUrl(filters, pages) if page < pages
            else None,
        }
        return {'title': 'Jobs', 'jobs': jobs, 'filters': filters,
                'pager': pager, 'stati': STATI, 'sorts': SORT_FIELDS,
                'factoryNames': self.processor.jobFactories.keys(),
                'removable': REMOVABLE}

    def _query(self, filters, page):
        return self.context.query(
            status=filters['status'] or None, name=filters['name'] or None,
            sort=filters['sort'], descending=filters['order'] == 'desc',
            skip=(page - 1) * PAGE_SIZE, limit=PAGE_SIZE)

    def _removeStati(self, params):
        stati = params.getall('status')
        unknown = [status for status in stati if status not in REMOVABLE]
        if unknown:
            raise HTTPBadRequest('Cannot remove jobs of status %s'
                                 % ', '.join(repr(s) for s in unknown))
        return [status for status in REMOVABLE if status in stati]

    @remote_view(name='remove', request_method='GET',
                 renderer=template('jobs_remove'))
    def confirmRemove(self):
        stati = self._removeStati(self.request.GET)
        if not stati:
            self.flash('Choose the statuses of the jobs to remove.',
                       'error')
            return self.redirect(self.context)
        counts = self.context.countByStatus()
        rows = [(status, counts.get(status, 0)) for status in stati]
        return {'title': 'Remove jobs', 'rows': rows,
                'total': sum(count for status, count in rows)}

    @remote_view(name='remove', request_method='POST', require_csrf=True)
    def remove(self):
        stati = self._removeStati(self.request.POST)
        if not stati:
            self.flash('Choose the statuses of the jobs to remove.',
                       'error')
            return self.redirect(self.context)
        counts = self.processor.removeJobs(stati)
        self.flash('Removed %d jobs (%s).' % (
            sum(counts.values()),
            ', '.join('%s: %d' % item for item in counts.items())))
        return self.redirect(self.context)

    def _addForm(self, name='', input='', errors=None):
        self.section = 'add'
        return {'title': 'Add a job',
                'factoryNames': self.processor.jobFactories.keys(),
                'name': name, 'input': input, 'errors': errors or {}}

    @remote_view(name='add', request_method='GET',
                 renderer=template('job_add'))
    def addForm(self):
        return self._addForm(name=self.request.GET.get('name', ''))

    @remote_view(name='add', request_method='POST', require_csrf=True,
                 renderer=template('job_add'))
    def add(self):
        rp = self.processor
        name = self.request.POST.get('name', '')
        text = self.request.POST.get('input', '')
        errors = {}
        if not name:
            errors['name'] = 'Choose a job factory.'
        elif name not in rp.jobFactories:
            errors['name'] = 'There is no job factory %r.' % name
        try:
            input = parseJSON(text)
        except ValueError as e:
            errors['input'] = str(e)
        if not errors:
            try:
                jobid = rp.addJob(name, input, immediate=True)
            except ValueError as e:
                errors['input'] = str(e)
        if errors:
            self.invalid()
            return self._addForm(name, text, errors)
        self.flash('Job %s added.' % jobid)
        return self.redirect(self.context, jobid)


@view_defaults(context=interfaces.IJob, containment=interfaces.IJobContainer)
class JobView(BaseView):

    section = 'jobs'

    @remote_view(request_method='GET', renderer=template('job'))
    def detail(self):
        job = self.context
        errors = itertools.zip_longest(job.errors or (), job.tracebacks or (),
                                       fillvalue='')
        times = [('Created', job.created), ('Queued', job.queued),
                 ('Picked', job.picked), ('Completed', job.completed),
                 ('Retry time', job.retryTime)]
        return {'title': 'Job %s' % job.__name__, 'job': job,
                'errors': list(errors), 'times': times,
                'canCancel': job.status in (interfaces.QUEUED,
                                            interfaces.PROCESSING),
                'canRetry': job.status in (interfaces.ERROR,
                                           interfaces.CANCELLED)}

    def _act(self, action, done):
        try:
            action(self.context.__name__)
        except (KeyError, ValueError) as e:
            # Its status changed since the page was shown.
            self.flash(str(e.args[0]) if e.args else str(e), 'error')
        else:
            self.flash(done)
        return self.redirect(self.context)

    @remote_view(name='cancel', request_method='POST', require_csrf=True)
    def cancel(self):
        return self._act(
            lambda jobid: self.processor.cancelJob(jobid, immediate=True),
            'Job cancelled.')

    @remote_view(name='retry', request_method='POST', require_csrf=True)
    def retry(self):
        return self._act(
            lambda jobid: self.processor.retryJob(jobid, immediate=True),
            'Job queued again.')

    @remote_view(name='delete', request_method='POST', require_csrf=True)
    def delete(self):
        self.processor.removeJob(self.context.__name__)
        self.flash('Job %s deleted.' % self.context.__name__)
        return self.redirect(self.context.__parent__)
