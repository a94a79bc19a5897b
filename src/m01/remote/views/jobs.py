"""The job pages: the paged list, removing jobs, adding one, the detail
page of a job and its actions."""
import itertools

from pyramid.httpexceptions import HTTPBadRequest
from pyramid.view import view_defaults

from m01.remote import interfaces
from m01.remote.jobstate import DELETABLE
from m01.remote.limits import (
    MAX_ERRORS_SHOWN,
    SHOWN_ERROR,
    SHOWN_TRACEBACK,
    quote,
    shorten,
)
from m01.remote.operations import (
    ACTIONS,
    BULK_LIMITS,
    SORT_FIELDS,
    JobFilter,
)
from m01.remote.operations.actions import selectedIds
from m01.remote.operations.filters import MAX_PAGE
from m01.remote.views.common import (
    BaseView,
    Shown,
    choiceParam,
    echoed,
    intParam,
    jsonDownload,
    parseJSON,
    remote_view,
    template,
)

PAGE_SIZE = 50

STATI = tuple(status.value for status in interfaces.JobStatus)
# A processing job belongs to a worker; it is cancelled, not removed.
REMOVABLE = DELETABLE
ORDERS = ('desc', 'asc')
DEFAULT_FILTERS = {'sort': 'created', 'order': 'desc'}
DONE = {'cancel': 'Cancelled', 'retry': 'Queued again', 'delete': 'Deleted'}


def jobFilter(params):
    """The ``JobFilter`` of request parameters; a bad one is a 400."""
    try:
        return JobFilter.fromParams(params)
    except ValueError as e:
        raise HTTPBadRequest(str(e))


@view_defaults(context=interfaces.IJobContainer)
class JobsView(BaseView):

    section = 'jobs'

    def filters(self):
        request = self.request
        selected = jobFilter(request.GET)
        return selected, {
            'status': selected.statuses[0] if selected.statuses else '',
            'name': selected.name or '',
            'q': selected.q,
            'sort': choiceParam(request, 'sort', SORT_FIELDS,
                                DEFAULT_FILTERS['sort']),
            'order': choiceParam(request, 'order', ORDERS,
                                 DEFAULT_FILTERS['order']),
        }

    def pageUrl(self, selected, filters, page):
        query = selected.params()
        query.update({key: filters[key] for key in DEFAULT_FILTERS
                      if filters[key] != DEFAULT_FILTERS[key]})
        if page > 1:
            query['page'] = page
        return self.url(self.context, **query)

    @remote_view(request_method='GET', renderer=template('jobs'))
    def list(self):
        selected, filters = self.filters()
        page = intParam(self.request, 'page', 1, 1, MAX_PAGE)
        shown = self.queries.jobs(selected, filters['sort'],
                                  filters['order'] == 'desc', page,
                                  PAGE_SIZE)
        page, pages = shown.page, shown.pages
        pager = {
            'page': page, 'pages': pages, 'total': shown.total,
            'first': shown.first, 'last': shown.last,
            'previous': self.pageUrl(selected, filters, page - 1)
            if page > 1 else None,
            'next': self.pageUrl(selected, filters, page + 1)
            if page < pages else None,
            'firstUrl': self.pageUrl(selected, filters, 1) if page > 1
            else None,
            'lastUrl': self.pageUrl(selected, filters, pages)
            if page < pages else None,
        }
        return {'title': 'Jobs', 'jobs': shown.jobs, 'filters': filters,
                'filterParams': sorted(_pairs(selected.params())),
                'pager': pager, 'stati': STATI, 'sorts': SORT_FIELDS,
                'bulkActions': ACTIONS,
                'factoryNames': self.queries.factoryNames()}

    def _removeFilter(self, params):
        """The jobs a removal is about: the filter sent, less the
        processing jobs (a processing job is cancelled, not removed)."""
        selected = jobFilter(params)
        if selected.statuses == (interfaces.PROCESSING,):
            raise HTTPBadRequest('Processing jobs are not removed: cancel '
                                 'them first.')
        return selected, selected.without((interfaces.PROCESSING,))[0]

    @remote_view(name='remove', request_method='GET',
                 renderer=template('jobs_remove'))
    def confirmRemove(self):
        selected, removable = self._removeFilter(self.request.GET)
        counts = self.queries.countByStatus(removable)
        rows = [(status, counts[status]) for status in removable.statuses
                if counts.get(status)]
        return {'title': 'Remove jobs', 'rows': rows,
                'total': sum(count for status, count in rows),
                'filterParams': sorted(_pairs(selected.params())),
                'limit': BULK_LIMITS['delete'],
                'back': self.url(self.context, **selected.params())}

    @remote_view(name='remove', request_method='POST', require_csrf=True)
    def remove(self):
        selected, removable = self._removeFilter(self.request.POST)
        result = self.actions.bulk('delete', removable)
        message = 'Removed %d jobs.' % result.done
        if result.more:
            message += ' More match: remove again to go on.'
        self.flash(message)
        return self.redirect(self.context, **selected.params())

    def _bulk(self, params):
        """``(action, filter, jobids, params)`` of a bulk form: the jobs
        selected (``job``), or all that match the filter (``all``)."""
        action = params.get('action', '')
        if action not in ACTIONS:
            raise HTTPBadRequest('action must be one of %s'
                                 % ', '.join(ACTIONS))
        selected = jobFilter(params)
        pairs = list(_pairs(selected.params()))
        if params.get('all'):
            return action, selected, None, pairs + [('all', '1')]
        jobids = params.getall('job')
        try:
            selectedIds(jobids)
        except ValueError as e:
            raise HTTPBadRequest(str(e))
        return action, selected, jobids, pairs + [('job', jobid)
                                                   for jobid in jobids]

    @remote_view(name='bulk', request_method='GET',
                 renderer=template('jobs_bulk'))
    def confirmBulk(self):
        action, selected, jobids, params = self._bulk(self.request.GET)
        return {'title': '%s jobs' % action.capitalize(), 'action': action,
                'count': self.actions.countBulk(action, selected, jobids),
                'limit': BULK_LIMITS[action], 'params': params,
                'back': self.url(self.context, **selected.params())}

    @remote_view(name='bulk', request_method='POST', require_csrf=True)
    def bulk(self):
        action, selected, jobids, _ = self._bulk(self.request.POST)
        result = self.actions.bulk(action, selected, jobids)
        message = '%s: %d jobs.' % (DONE[action], result.done)
        if result.refused:
            message += ' %d had changed meanwhile and were left as they ' \
                'are.' % result.refused
        if result.more:
            message += ' More match: apply again to go on.'
        self.flash(message)
        return self.redirect(self.context, **selected.params())

    def _addForm(self, name='', input='', errors=None):
        self.section = 'add'
        return {'title': 'Add a job',
                'factoryNames': self.queries.factoryNames(),
                'name': name, 'input': input, 'errors': errors or {}}

    @remote_view(name='add', request_method='GET',
                 renderer=template('job_add'))
    def addForm(self):
        return self._addForm(name=self.request.GET.get('name', ''))

    @remote_view(name='add', request_method='POST', require_csrf=True,
                 renderer=template('job_add'))
    def add(self):
        name = self.request.POST.get('name', '')
        text = self.request.POST.get('input', '')
        errors = {}
        if not name:
            errors['name'] = 'Choose a job factory.'
        elif name not in self.queries.factoryNames():
            errors['name'] = 'There is no job factory %s.' % quote(name)
        try:
            input = parseJSON(text)
        except ValueError as e:
            errors['input'] = str(e)
        if not errors:
            try:
                jobid = self.actions.addJob(name, input)
            except ValueError as e:
                errors['input'] = str(e)
        if errors:
            self.invalid()
            values = {'name': name, 'input': text}
            echoed(values, errors)
            return self._addForm(values['name'], values['input'], errors)
        self.flash('Job %s added.' % jobid)
        return self.redirect(self.context, jobid)


@view_defaults(context=interfaces.IJob, containment=interfaces.IJobContainer)
class JobView(BaseView):

    section = 'jobs'

    def _errors(self):
        job = self.context
        return list(itertools.zip_longest(
            job.errors or (), job.tracebacks or (), fillvalue=''))

    @remote_view(request_method='GET', renderer=template('job'))
    def detail(self):
        job = self.context
        errors = self._errors()
        # The latest errors, each cut: a job retried many times, or one
        # whose errors are huge, still has a small page.
        first = max(0, len(errors) - MAX_ERRORS_SHOWN)
        shown = [(shorten(message, SHOWN_ERROR),
                  shorten(traceback, SHOWN_TRACEBACK))
                 for message, traceback in errors[first:]]
        times = [('Created', job.created), ('Queued', job.queued),
                 ('Picked', job.picked), ('Completed', job.completed),
                 ('Retry time', job.retryTime)]
        return {'title': 'Job %s' % job.__name__, 'job': job,
                'input': Shown(job.input), 'output': Shown(job.output),
                'errors': shown, 'errorCount': len(errors),
                'firstError': first + 1, 'times': times,
                'canCancel': job.status in (interfaces.QUEUED,
                                            interfaces.PROCESSING),
                'canRetry': job.status in (interfaces.ERROR,
                                           interfaces.CANCELLED),
                'canDelete': job.status in REMOVABLE}

    def _download(self, what, value):
        return jsonDownload(value, 'job-%s-%s.json'
                            % (self.context.__name__, what))

    @remote_view(name='input.json', request_method='GET')
    def downloadInput(self):
        return self._download('input', self.context.input)

    @remote_view(name='output.json', request_method='GET')
    def downloadOutput(self):
        return self._download('output', self.context.output)

    @remote_view(name='errors.json', request_method='GET')
    def downloadErrors(self):
        return self._download('errors', [
            {'error': message, 'traceback': traceback}
            for message, traceback in self._errors()])

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
        return self._act(self.actions.cancelJob, 'Job cancelled.')

    @remote_view(name='retry', request_method='POST', require_csrf=True)
    def retry(self):
        return self._act(self.actions.retryJob, 'Job queued again.')

    @remote_view(name='delete', request_method='POST', require_csrf=True)
    def delete(self):
        # As the bulk remove: a processing job belongs to its worker. One
        # conditional write, so a job claimed since the page was shown
        # stays.
        job = self.context
        try:
            self.actions.deleteJob(job.__name__)
        except KeyError:
            self.flash('Job %s was deleted already.' % job.__name__)
            return self.redirect(job.__parent__)
        except ValueError as e:
            self.flash(str(e), 'error')
            return self.redirect(job)
        self.flash('Job %s deleted.' % job.__name__)
        return self.redirect(job.__parent__)


def _pairs(params):
    """Query parameters as (name, value) pairs, lists spread out."""
    for name, value in params.items():
        for one in value if isinstance(value, list) else [value]:
            yield name, one
