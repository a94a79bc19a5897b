"""The job pages: the paged list with its search and the bulk actions
(each after a confirmation), adding a job, the detail page of a job and
its actions.

One way to each action: jobs are cancelled, retried or deleted many at
once by the bulk form only (the rows chosen, or every job the filter
shows), one at a time on the job's page; each asks first, on the same
confirmation page (a dialog with the script).

The list and the bulk form read their parameters strictly
(``m01.remote.operations``): an unknown or malformed one is a 400 naming
it, and a bulk action changes the rows chosen or, only when the form
says ``all``, every job the filter shows.
"""
from pyramid.httpexceptions import HTTPBadRequest
from pyramid.view import view_defaults
from webob.multidict import MultiDict

from m01.remote import interfaces
from m01.remote.job import DuplicateJobKeyError
from m01.remote.limits import quote, shorten
from m01.remote.operations import (
    BULK_LIMITS,
    SORT_FIELDS,
    BulkRequest,
    JobFilter,
)
from m01.remote.operations.filters import MAX_PAGE, flagParam
from m01.remote.queue.tracing import traceIdOf
from m01.remote.queue.updates import CANCELLABLE, DELETABLE, MAX_ATTEMPTS
from m01.remote.views import common, jobform, jobpage, waiting
from m01.remote.views.common import (
    BaseView,
    Shown,
    choiceParam,
    confirmation,
    echoed,
    intParam,
    jsonDownload,
    remote_view,
    template,
)
from m01.remote.views.jobrows import TIME_LABELS, jobRow, label, tags
from m01.remote.views.sources import BULK_ACTIONS

PAGE_SIZE = 50
#: Seconds between two refreshes of the list by the script.
LIVE_LIST = 10

STATI = tuple(status.value for status in interfaces.JobStatus)
# A processing job belongs to a worker; it is cancelled, not removed.
REMOVABLE = DELETABLE
ORDERS = ('desc', 'asc')
DEFAULT_FILTERS = {'sort': 'created', 'order': 'desc'}
#: The parameters of the list beside the filter's.
LIST_PARAMS = ('sort', 'order', 'page')
#: Those of the bulk form (the token when posted).
BULK_PARAMS = ('sort', 'order', 'csrf_token')
DONE = {'cancel': 'Cancelled', 'retry': 'Queued again', 'delete': 'Deleted'}
#: What a bulk action does, said on its confirmation.
BULK_HELP = {
    'cancel': 'Queued jobs are cancelled at once; a running job stops at '
              'its next checkpoint (in a process worker, at once).',
    'retry': 'Jobs in error or cancelled are queued again, due now.',
    'delete': 'Their input, output, errors and log go with them. A '
              'processing job is never deleted: cancel it first.',
}
#: What a bulk action changes, said when it changes none of the jobs.
BULK_FITS = {'cancel': 'waiting, queued or processing', 'retry': 'in error or '
             'cancelled', 'delete': 'not processing'}


def parsed(parse, *args):
    """What ``parse`` reads of a request's parameters; a bad one is a
    400 naming it."""
    try:
        return parse(*args)
    except ValueError as e:
        raise HTTPBadRequest(str(e))


def filterRows(selected):
    """The filter of a confirmation, as rows of its table."""
    rows = []
    if selected.statuses:
        rows.append(('Status', ', '.join(selected.statuses)))
    if selected.name:
        rows.append(('Factory', selected.name))
    if selected.q:
        rows.append(('Search', selected.q))
    return rows


@view_defaults(context=interfaces.IJobContainer)
class JobsView(BaseView):

    section = 'jobs'

    def filters(self):
        """The list's ``JobFilter`` and its parameters as the page shows
        them."""
        request = self.request
        selected = parsed(JobFilter.fromParams, request.GET, LIST_PARAMS)
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
        capacity = self.queries.capacity()
        rows = []
        for job in shown.jobs:
            row = jobRow(job, self.now, filters['sort'])
            row['waits'] = waiting.waitNotes(
                self, job, self.queries.waitReasons(job, capacity))
            row['stillRunning'] = waiting.stillRunning(
                self, job, waiting.holderOf(job, capacity))
            rows.append(row)
        asked = page
        page, pages = shown.page, shown.pages
        pager = common.pager(
            page, pages, lambda n: self.pageUrl(selected, filters, n),
            asked=asked, total=shown.total, first=shown.first,
            last=shown.last)
        return {'title': 'Jobs', 'live': LIVE_LIST,
                'jobs': shown.jobs, 'filters': filters,
                'rows': rows,
                'timeLabel': TIME_LABELS[filters['sort']],
                'pager': pager, 'stati': STATI, 'sorts': SORT_FIELDS,
                'factoryNames': self.queries.factoryNames(),
                'search': self.sources.jobSearch(self.request),
                'bulk': self.sources.bulkActions(self.request, filters)}

    def _bulk(self, params):
        """The ``BulkRequest`` of a bulk form. Its filter is the list's;
        the jobs are the rows chosen (``job``) that match it, or, with
        ``all`` (which outweighs rows chosen too), all that match it; no
        row and no ``all`` choose none."""
        if parsed(flagParam, params, 'all'):
            params = MultiDict([(name, value) for name, value
                                in params.items() if name != 'job'])
        return parsed(BulkRequest.fromParams, params, BULK_PARAMS, True)

    @remote_view(name='bulk', request_method='GET',
                 renderer=template('confirm'))
    def confirmBulk(self):
        request = self._bulk(self.request.GET)
        action, selected, jobids = (request.action, request.jobFilter,
                                    request.jobids)
        name, danger = BULK_ACTIONS[action]
        title = '%s jobs' % name
        back = self.url(self.context, **selected.params())
        if jobids is not None and not jobids:
            return {'title': title, 'confirm': confirmation(
                'Choose the jobs to %s, or all that match the filter.'
                % action, back)}
        count = self.actions.countBulk(action, selected, jobids,
                                       all=request.all)
        chosen = ('%d jobs selected' % len(jobids)) if jobids is not None \
            else 'all that match'
        if not count:
            return {'title': title, 'confirm': confirmation(
                'None of the jobs chosen (%s) can be %s: the action takes '
                'jobs %s.' % (chosen, DONE[action].lower(),
                              BULK_FITS[action]), back)}
        detail = BULK_HELP[action]
        if count > BULK_LIMITS[action]:
            detail += (' Each time at most %s jobs: apply again for the '
                       'rest.' % '{:,}'.format(BULK_LIMITS[action]))
        rows = filterRows(selected)
        if jobids is None and not rows:
            rows = [('Filter', 'none: every job')]
        return {'title': title, 'confirm': confirmation(
            '%s %s jobs?' % (name, '{:,}'.format(count)), back,
            action=self.url(self.context, 'bulk'),
            button='%s %s jobs' % (name, '{:,}'.format(count)),
            danger=danger, detail=detail, fields=request.params(),
            rows=[('Jobs', chosen)] + rows)}

    @remote_view(name='bulk', request_method='POST', require_csrf=True)
    def bulk(self):
        request = self._bulk(self.request.POST)
        result = self.actions.bulk(request.action, request.jobFilter,
                                   request.jobids, all=request.all)
        message = '%s: %d jobs.' % (DONE[request.action], result.done)
        if result.refused:
            message += ' %d had changed meanwhile and were left as they ' \
                'are.' % result.refused
        if result.more:
            message += ' More match: apply again to go on.'
        self.flash(message)
        return self.redirect(self.context, **request.jobFilter.params())

    def _addForm(self, name='', values=None, errors=None):
        self.section = 'add'
        infos = self.queries.factories()
        return {'title': 'Add a job',
                'factoryNames': [info.name for info in infos],
                'hints': jobform.factoryHints(infos),
                'name': name, 'values': values or {},
                'errors': errors or {}}

    @remote_view(name='add', request_method='GET',
                 renderer=template('job_add'))
    def addForm(self):
        return self._addForm(name=self.request.GET.get('name', ''))

    @remote_view(name='add', request_method='POST', require_csrf=True,
                 renderer=template('job_add'))
    def add(self):
        name = self.request.POST.get('name', '')
        form = jobform.JobForm(self.request.POST)
        errors = form.errors
        if not name:
            errors['name'] = 'Choose a job factory.'
        elif name not in self.queries.factoryNames():
            errors['name'] = 'There is no job factory %s.' % quote(name)
        input, options = form.options()
        if not errors:
            try:
                jobid = self.actions.addJob(name, input,
                                            onDuplicateKey='raise',
                                            **options)
            except DuplicateJobKeyError as e:
                errors['key'] = 'Job %s holds this key: it is queued or ' \
                    'running. A key is unique among those.' % e.jobid
            except ValueError as e:
                errors[_fieldOf(str(e))] = str(e)
        if errors:
            self.invalid()
            values = dict(form.values, name=name)
            echoed(values, errors)
            return self._addForm(values.pop('name'), values, errors)
        self.flash('Job %s added.' % jobid)
        return self.redirect(self.context, jobid)


def _fieldOf(message):
    """The add-job form's field an error of the queue is about."""
    for name in ('priority', 'timeout', 'delay', 'key'):
        if message.lower().startswith(name) or \
                ('job %s' % name) in message.lower():
            return name
    if message.startswith('at ') or 'a time (at)' in message:
        return 'at'
    return 'input'


@view_defaults(context=interfaces.IJob, containment=interfaces.IJobContainer)
class JobView(BaseView):

    section = 'jobs'

    @remote_view(request_method='GET', renderer=template('job'))
    def detail(self):
        job = self.context
        errors, errorCount = jobpage.shownErrors(job)
        capacity = self.queries.capacity()
        holder = waiting.holderOf(job, capacity)
        attempts = jobpage.attempts(job, self.now, holder)
        reasons = self.queries.waitReasons(job, capacity)
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
                'times': times,
                'live': jobpage.liveSeconds(job, self.now, holder),
                'waits': waiting.waitNotes(self, job, reasons),
                'position': waiting.positionText(
                    self.queries.position(job, capacity))
                if reasons == [] else '',
                'stillRunning': waiting.stillRunning(self, job, holder),
                'thread': waiting.threadName(holder)
                if holder is not None else None,
                'attemptsText': jobpage.attemptsText(job),
                'tags': tags(job, self.now),
                'cancelHelp': jobpage.CANCEL_HELP.get(job.status, '')
                if job.status == interfaces.PROCESSING else '',
                'canCancel': job.status in CANCELLABLE,
                'relations': self.queries.relations(job.__name__),
                'canRetry': job.status in (interfaces.ERROR,
                                           interfaces.CANCELLED),
                'canDelete': job.status in REMOVABLE,
                'traceId': traceIdOf(job.traceContext)}

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

    @remote_view(name='cancel', request_method='GET',
                 renderer=template('confirm'))
    def confirmCancel(self):
        job = self.context
        back = self.url(job)
        if job.status not in CANCELLABLE:
            confirm = confirmation(
                'Job %s is %s: only a waiting, queued or processing job is '
                'cancelled.' % (self.named(), job.status), back)
        else:
            confirm = confirmation(
                'Cancel job %s?' % self.named(), back,
                action=self.url(job, 'cancel'), button='Cancel job',
                danger=False,
                detail=jobpage.CANCEL_HELP.get(job.status, ''))
        return {'title': 'Cancel a job', 'confirm': confirm}

    @remote_view(name='retry', request_method='GET',
                 renderer=template('confirm'))
    def confirmRetry(self):
        job = self.context
        back = self.url(job)
        if job.status not in (interfaces.ERROR, interfaces.CANCELLED):
            confirm = confirmation(
                'Job %s is %s: only a job in error or cancelled is '
                'retried.' % (self.named(), job.status), back)
        else:
            detail = ('It is queued again, due now, with all its attempts '
                      'to make; its errors and earlier attempts stay on its '
                      'page.')
            holder = waiting.holderOf(job, self.queries.capacity())
            if holder is not None:
                detail += (' Mind that %s still runs it: retried now, it '
                           'may run twice at once.'
                           % waiting.threadName(holder))
            confirm = confirmation(
                'Retry job %s now?' % self.named(), back,
                action=self.url(job, 'retry'), button='Retry job',
                danger=holder is not None, detail=detail)
        return {'title': 'Retry a job', 'confirm': confirm}

    @remote_view(name='cancel', request_method='POST', require_csrf=True)
    def cancel(self):
        return self._act(self.actions.cancelJob, 'Job cancelled.')

    @remote_view(name='retry', request_method='POST', require_csrf=True)
    def retry(self):
        return self._act(self.actions.retryJob, 'Job queued again.')

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

