"""The scheduler pages: every item with when it runs (in words, its next
runs, the run before and its job), adding and editing Delay and Cron
items (their forms are ``itemform``), and the actions on an item or on
all of them."""
from pyramid.view import view_defaults

from m01.remote import interfaces
from m01.remote.limits import MAX_NAME, shorten
from m01.remote.operations.filters import MAX_PAGE
from m01.remote.scheduler import jobIdFor
from m01.remote.scheduler.items import DEFAULT_RETRY_DELAY
from m01.remote.views.common import (
    BaseView,
    confirmation,
    intParam,
    jsonDownload,
    pager,
    remote_view,
    template,
)
from m01.remote.views.cronwords import describe
from m01.remote.views.itemform import (
    CRON_FORM_FIELDS,
    WEEKDAYS,
    ItemForm,
    itemValues,
    kindOf,
    timezoneNames,
)
from m01.remote.views.upcoming import nextRuns, previousCall

#: How many items a confirmation page lists by name.
MAX_LISTED = 20
#: Scheduler items a page lists.
ITEMS_PAGE = 100


class SchedulerBase(BaseView):

    section = 'scheduler'

    def itemUrl(self, item, *elements):
        return self.url(self.processor.scheduler, item.__name__, *elements)

    def itemRows(self, items):
        """The view-models of items on the scheduler's pages.

        An item's ``lastRun`` is the run before its next one and the job
        of that run: ``{'due', 'jobid', 'job', 'kind'}``. A Cron item's is
        found by the id the scheduler gives its job (``jobIdFor``), the
        jobs of all the items in one query (``job`` None when there is
        none: the item was added or changed since, the run was missed
        while no scheduler ran, or the job was removed). A Delay item's
        run was ``delay`` seconds before its next one, its job the one the
        scheduler added then (``IQueueQueries.delayLastRuns``); None when
        none is found (it has not run since it was added or changed)."""
        lastRuns = {}
        for item in items:
            due = previousCall(item)
            if due is not None:
                lastRuns[item.__name__] = {
                    'due': due, 'jobid': jobIdFor(item.__name__, due),
                    'kind': 'cron'}
        delays = self.queries.delayLastRuns(
            [item for item in items if kindOf(item) == 'delay'])
        for itemid, (called, jobid) in delays.items():
            lastRuns[itemid] = {'due': called, 'jobid': jobid,
                                'kind': 'delay'}
        jobs = self.queries.jobsById(
            [run['jobid'] for run in lastRuns.values()])
        for run in lastRuns.values():
            run['job'] = jobs.get(run['jobid'])
        return [{'item': item, 'kind': kindOf(item),
                 'words': describe(item),
                 'expression': getattr(item, 'expression', None),
                 'runs': nextRuns(item),
                 'lastRun': lastRuns.get(item.__name__),
                 'url': self.itemUrl(item), 'open': False}
                for item in items]

    def form(self, kind, values, errors, item=None):
        if item is None:
            title = 'Add a %s item' % ('Cron' if kind == 'cron'
                                       else 'Delay')
            action = self.url(self.processor.scheduler, 'add-' + kind)
        else:
            title = 'Edit %s' % (item.title or item.jobName or
                                 item.__name__)
            action = self.itemUrl(item, 'edit')
        return {'title': title, 'kind': kind, 'values': values,
                'errors': errors, 'action': action, 'item': item,
                'row': None if item is None else self.itemRows([item])[0],
                'factoryNames': self.queries.factoryNames(),
                'timezones': timezoneNames() if kind == 'cron' else (),
                'cronFields': CRON_FORM_FIELDS, 'weekdays': WEEKDAYS,
                'defaultLock': DEFAULT_RETRY_DELAY}


@view_defaults(context=interfaces.IScheduler)
class SchedulerView(SchedulerBase):

    @remote_view(request_method='GET', renderer=template('scheduler'))
    def list(self):
        queries = self.queries
        page = intParam(self.request, 'page', 1, 1, MAX_PAGE)
        total, shown = queries.schedulerItems(page, ITEMS_PAGE)
        pages = max(1, -(-total // ITEMS_PAGE))
        page = min(page, pages)
        items = self.itemRows(shown)
        # The item just added or saved shows its next runs.
        for row in items:
            row['open'] = row['item'].__name__ == self.request.GET.get(
                'shown', '')
        active = queries.schedulerItems(1, 1, active=True)[0] if total \
            else 0
        first = (page - 1) * ITEMS_PAGE + 1
        return {'title': 'Scheduler', 'items': items, 'total': total,
                'pauseAll': {'active': active, 'inactive': total - active},
                'pager': pager(
                    page, pages, lambda n: self.url(self.context, page=n)
                    if n > 1 else self.url(self.context), total=total,
                    first=first, last=first + len(items) - 1,
                    noun='items')}

    @remote_view(name='pause-all', request_method='GET',
                 renderer=template('confirm'))
    @remote_view(name='resume-all', request_method='GET',
                 renderer=template('confirm'))
    def confirmAll(self):
        pause = self.request.view_name == 'pause-all'
        count, items = self.queries.schedulerItems(1, MAX_LISTED,
                                                   active=pause)
        back = self.url(self.context)
        if not count:
            message = ('No scheduler item is active.' if pause
                       else 'Every scheduler item is active.')
            return {'title': 'Deactivate all' if pause
                    else 'Activate all',
                    'confirm': confirmation(message, back)}
        if pause:
            confirm = confirmation(
                'Deactivate all %d active scheduler items?' % count,
                back, action=self.url(self.context, 'pause-all'),
                button='Deactivate %d items' % count,
                detail='No job is added for them until they are activated '
                'again; jobs added already are not touched. Activate all '
                'activates every item, those inactive before too.',
                rows=[(shorten(item.title or item.__name__), 'active')
                      for item in items])
        else:
            confirm = confirmation(
                'Activate all %d inactive scheduler items?' % count,
                back, action=self.url(self.context, 'resume-all'),
                button='Activate %d items' % count, danger=False,
                detail='Each is scheduled from now on; missed runs are not '
                'made up.',
                rows=[(shorten(item.title or item.__name__), 'inactive')
                      for item in items])
        return {'title': 'Deactivate all' if pause else 'Activate all',
                'confirm': confirm}

    @remote_view(name='pause-all', request_method='POST', require_csrf=True)
    @remote_view(name='resume-all', request_method='POST',
                 require_csrf=True)
    def setAll(self):
        active = self.request.view_name == 'resume-all'
        changed = self.actions.setAllSchedulerItemsActive(active)
        self.flash('%d scheduler items %s.' % (
            changed, 'activated' if active else 'deactivated'))
        return self.redirect(self.context)

    def _addForm(self, kind):
        values = {'active': True}
        jobName = self.request.GET.get('jobName', '')
        if jobName and len(jobName) <= MAX_NAME:
            values['jobName'] = jobName
        return self.form(kind, values, {})

    def _add(self, kind):
        form = ItemForm(self, kind)
        item = form.submit(self.request.POST)
        if item is None:
            self.invalid()
            return self.form(kind, form.values, form.errors)
        itemid = self.actions.addSchedulerItem(item)
        self.flash('Scheduler item %s added.'
                   % shorten(item.title or itemid))
        return self.redirect(self.context, shown=itemid)

    @remote_view(name='add-delay', request_method='GET',
                 renderer=template('scheduler_item'))
    def addDelayForm(self):
        return self._addForm('delay')

    @remote_view(name='add-delay', request_method='POST',
                 require_csrf=True, renderer=template('scheduler_item'))
    def addDelay(self):
        return self._add('delay')

    @remote_view(name='add-cron', request_method='GET',
                 renderer=template('scheduler_item'))
    def addCronForm(self):
        return self._addForm('cron')

    @remote_view(name='add-cron', request_method='POST',
                 require_csrf=True, renderer=template('scheduler_item'))
    def addCron(self):
        return self._add('cron')


@view_defaults(context=interfaces.ISchedulerItem)
class SchedulerItemView(SchedulerBase):

    @property
    def scheduler(self):
        return self.processor.scheduler

    @remote_view(request_method='GET', renderer=template('scheduler_item'))
    @remote_view(name='edit', request_method='GET',
                 renderer=template('scheduler_item'))
    def editForm(self):
        item = self.context
        return self.form(kindOf(item), itemValues(item), {}, item)

    @remote_view(name='edit', request_method='POST', require_csrf=True,
                 renderer=template('scheduler_item'))
    def edit(self):
        item = self.context
        kind = kindOf(item)
        form = ItemForm(self, kind, item)
        changed = form.submit(self.request.POST)
        if changed is None:
            self.invalid()
            return self.form(kind, form.values, form.errors, item)
        self.actions.updateSchedulerItem(item.__name__,
                                         **form.fields(changed))
        self.flash('Scheduler item %s saved.'
                   % shorten(changed.title or item.__name__))
        return self.redirect(self.scheduler, shown=item.__name__)

    @remote_view(name='input.json', request_method='GET')
    def downloadInput(self):
        return jsonDownload(self.context.input, 'scheduler-%s-input.json'
                            % self.context.__name__)

    @remote_view(name='toggle', request_method='POST', require_csrf=True)
    def toggle(self):
        # The form says which state it wants: a repeated click (or a page
        # shown before someone else's change) cannot flip it back.
        active = self.request.POST.get('active') == '1'
        self.actions.setSchedulerItemActive(self.context.__name__, active)
        self.flash('%s is now %s.' % (
            shorten(self.context.title or self.context.__name__),
            'active' if active else 'inactive'))
        return self.redirect(self.scheduler)

    @remote_view(name='delete', request_method='GET',
                 renderer=template('confirm'))
    def confirmDelete(self):
        item = self.context
        name = shorten(item.title or item.__name__)
        return {'title': 'Delete a scheduler item', 'confirm': confirmation(
            'Delete the scheduler item %s for good?' % name,
            self.url(self.scheduler), action=self.itemUrl(item, 'delete'),
            button='Delete item',
            detail='No job is added for it any more; the jobs it added '
            'stay.')}

    @remote_view(name='delete', request_method='POST', require_csrf=True)
    def delete(self):
        self.actions.deleteSchedulerItem(self.context.__name__)
        self.flash('Scheduler item %s deleted.' % shorten(
            self.context.title or self.context.__name__))
        return self.redirect(self.scheduler)

    @remote_view(name='run', request_method='POST', require_csrf=True)
    def run(self):
        try:
            jobid = self.actions.runSchedulerItem(self.context.__name__)
        except ValueError as e:
            # Its job factory was removed since the item was added.
            self.flash(str(e), 'error')
            return self.redirect(self.scheduler)
        self.flash('Job %s added from %s.' % (
            jobid, shorten(self.context.title or self.context.__name__)))
        return self.redirect(self.processor.jobs, jobid)
