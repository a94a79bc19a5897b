"""The job pages: the paged list, removing jobs, adding one, the detail
page of a job and its actions."""
import math

from pyramid.httpexceptions import HTTPBadRequest
from pyramid.view import view_defaults

from m01.remote import interfaces
from m01.remote.containers import SORT_FIELDS, toObjectId
from m01.remote.jobstate import MAX_ATTEMPTS
from m01.remote.limits import (
    MAX_NAME,
    quote,
    shorten,
)
from m01.remote.views import jobpage
from m01.remote.views.common import (
    BaseView,
    Shown,
    choiceParam,
    confirmation,
    echoed,
    intParam,
    jsonDownload,
    parseJSON,
    remote_view,
    template,
)
from m01.remote.views.jobrows import TIME_LABELS, jobRow, label, tags

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
        name = request.GET.get('name', '')
        if len(name) > MAX_NAME:
            # No factory has such a name; the page would repeat it in
            # every link.
            raise HTTPBadRequest('name has %d characters; a job factory '
                                 'name has at most %d' % (len(name),
                                                          MAX_NAME))
        return {
            'status': choiceParam(request, 'status', STATI, ''),
            'name': name,
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
        search = self.sources.jobSearch(self.request)
        return {'title': 'Jobs', 'jobs': jobs, 'filters': filters,
                'rows': [jobRow(job, self.now, filters['sort'])
                         for job in jobs],
                'timeLabel': TIME_LABELS[filters['sort']],
                'pager': pager, 'stati': STATI, 'sorts': SORT_FIELDS,
                'factoryNames': self.processor.jobFactories.keys(),
                'removable': REMOVABLE, 'search': search,
                'bulk': self.sources.bulkActions(self.request, filters),
                'removeMatching': self.removeMatching(filters, total,
                                                      search)}

    @staticmethod
    def removeMatching(filters, total, search):
        """Every job this filter shows removed at once, where the remove
        by status does just that (a removable status, no other filter):
        the status and how many jobs have it; None otherwise."""
        status = filters['status']
        if status not in REMOVABLE or filters['name'] or not total or \
                search.get('q'):
            return None
        return {'status': status, 'total': total}

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
                 renderer=template('confirm'))
    def confirmRemove(self):
        stati = self._removeStati(self.request.GET)
        if not stati:
            self.flash('Choose the statuses of the jobs to remove.',
                       'error')
            return self.redirect(self.context)
        counts = self.context.countByStatus()
        rows = [(status, counts.get(status, 0)) for status in stati]
        total = sum(count for status, count in rows)
        return {'title': 'Remove jobs', 'confirm': confirmation(
            'This removes %s jobs for good:' % '{:,}'.format(total),
            self.url(self.context), action=self.url(self.context, 'remove'),
            button='Remove %s jobs' % '{:,}'.format(total),
            fields=[('status', status) for status in stati], rows=rows,
            detail='The jobs in these statuses when you confirm go (the '
            'counts may have changed by then); a processing job never '
            'does.')}

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
            errors['name'] = 'There is no job factory %s.' % quote(name)
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
            values = {'name': name, 'input': text}
            echoed(values, errors)
            return self._addForm(values['name'], values['input'], errors)
        self.flash('Job %s added.' % jobid)
        return self.redirect(self.context, jobid)


@view_defaults(context=interfaces.IJob, containment=interfaces.IJobContainer)
class JobView(BaseView):

    section = 'jobs'

    @remote_view(request_method='GET', renderer=template('job'))
    def detail(self):
        job = self.context
        errors, errorCount = jobpage.shownErrors(job)
        attempts = jobpage.attempts(job, self.now)
        times = [('Created', job.created), ('Queued', job.queued),
                 ('Started', job.picked), ('Ended', job.completed)]
        if job.status == interfaces.QUEUED:
            times.append(('Due', job.retryTime))
        if job.status == interfaces.PROCESSING:
            times.append(('Lease until', job.leaseExpires))
        return {'title': '%s – job %s' % (shorten(label(job), 80),
                                          job.__name__),
                'heading': label(job), 'subtitle': 'job %s' % job.__name__,
                'job': job,
                'input': Shown(job.input), 'output': Shown(job.output),
                'failure': jobpage.failure(job, attempts, errors),
                'progress': jobpage.jobProgress(job),
                'attempts': attempts, 'maxAttempts': MAX_ATTEMPTS,
                'log': jobpage.logLines(job),
                'errors': errors, 'errorCount': errorCount,
                'times': times, 'live': jobpage.liveSeconds(job, self.now),
                'tags': tags(job, self.now),
                'cancelHelp': jobpage.CANCEL_HELP.get(job.status, ''),
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
            for message, traceback in jobpage.errorPairs(self.context)])

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

    def named(self):
        """How the pages name the job: its title or factory, and id."""
        return '%s (%s)' % (shorten(label(self.context), 80),
                            self.context.__name__)

    @remote_view(name='delete', request_method='GET',
                 renderer=template('confirm'))
    def confirmDelete(self):
        job = self.context
        back = self.url(job)
        if job.status not in REMOVABLE:
            confirm = confirmation(
                'Job %s is %s: cancel it before deleting it.'
                % (self.named(), job.status), back,
                detail='A running job belongs to its worker; a cancel '
                'stops it at its next checkpoint.')
        else:
            confirm = confirmation(
                'Delete job %s for good?' % self.named(), back,
                action=self.url(job, 'delete'), button='Delete job',
                detail='Its input, output, errors and log go with it.')
        return {'title': 'Delete job', 'confirm': confirm}

    @remote_view(name='delete', request_method='POST', require_csrf=True)
    def delete(self):
        # As the bulk remove: a processing job belongs to its worker. One
        # write, conditional on the status, so a job claimed since the
        # page was shown stays.
        job = self.context
        deleted = self.processor.jobsCollection.delete_one({
            '_id': toObjectId(job.__name__),
            'status': {'$in': list(REMOVABLE)}}).deleted_count
        if not deleted:
            current = self.context.__parent__.get(job.__name__)
            if current is None:
                self.flash('Job %s was deleted already.' % job.__name__)
                return self.redirect(job.__parent__)
            self.flash('Job %s is %s; cancel it before deleting it.'
                       % (job.__name__, current.status), 'error')
            return self.redirect(job)
        self.flash('Job %s deleted.' % job.__name__)
        return self.redirect(job.__parent__)
