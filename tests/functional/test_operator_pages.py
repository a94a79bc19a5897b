"""The pages as an operator uses them: each page says why a job is where
it is and what to do, offers one way to each action confirmed the same
way, counts one thing under one name, and points to the JSON API; on
every store, through WebTest.

The site is test_views' (a session, a policy granting the pages'
permission to REMOTE_USER), with a factory whose jobs block until the
test lets them go without ever reaching a checkpoint, as a job stuck in
a call does.
"""
import datetime
import re
import threading

import bson
import pytest
import transaction
import webtest

from m01.remote import testing
from m01.remote.interfaces import IRemoteProcessor
from m01.remote.job import Job
from m01.remote.scheduler import Cron, Delay
from m01.remote.views import formatting
from support.waiting import until
from test_views import Site, makeApp, text

#: Set to let the blocking jobs return.
released = threading.Event()
#: How long a blocking job waits at most, should a test fail first.
BLOCK_BOUND = 60.0


class BlockingJob(Job):
    """Waits until the test sets ``released``, reaching no checkpoint."""

    def __call__(self, remoteProcessor):
        released.wait(BLOCK_BOUND)
        return 'released'


@pytest.fixture
def site(store_uri, database):
    released.clear()
    wsgi = makeApp(store_uri, database.name,
                   **{'m01.remote.logout_url': '/logout'})
    site = Site(wsgi)
    site.rp.addJobFactory('block', BlockingJob({'concurrency': 1}))
    yield site
    released.set()
    rp = wsgi.registry.getUtility(IRemoteProcessor)
    rp.stopProcessor(10)
    rp.stopScheduler(5)


def reasons(page):
    """The reasons a job's page gives for its wait."""
    card = page.html.find(id='why-waiting')
    return [] if card is None else [
        text(item) for item in card.find_all('li')]


def rowOf(page, jobid):
    return page.html.find(id='job-' + jobid)


def dialogButtons(question):
    """The confirming button and the dismissing link of a confirmation."""
    form = question.html.find(id='confirm-form')
    return (text(form.find('button', type='submit')),
            text(form.find(attrs={'data-confirm-cancel': True})))


def startWorker(site):
    """The processor's job worker (one thread) with its heartbeat."""
    site.rp.startProcessor()
    until(lambda: site.rp.isProcessing, what='the worker to start')


def running(site, jobid):
    """Whether this process's lease keeper runs ``jobid``."""
    return any(entry[0] == jobid for entry in site.rp.leases.running())


def blockedJob(site):
    """A blocking job running in the worker's thread, and that thread's
    name as the heartbeat writes it."""
    jobid, = site.addJobs('block', [None])
    until(lambda: site.rp.getJobStatus(jobid) == 'processing',
          what='the blocking job to run')
    until(lambda: running(site, jobid), what='the job to be leased')
    thread = dict((entry[0], entry[2])
                  for entry in site.rp.leases.running())[jobid]
    assert thread
    # The heartbeat says so now (it would within its interval).
    site.rp.monitor.beat()
    return jobid, thread


# 1. the factories page

def test_the_factories_page_shows_state_counts_and_what_jobs_get(site):
    site.addJobs('echo', [1, 2])
    site.addJobs('error', [None])
    site.process()
    site.addJobs('echo', [3])
    site.rp.pauseJobFactory('fatal')
    page = site.app.get('/remote/factories')
    header = [text(th) for th in page.html.find(id='factories').select(
        'thead th')]
    assert header[:4] == ['Factory', 'State', 'Jobs', 'Each job gets']
    rows = {row['id']: row for row in page.html.select('#factories tbody tr')}
    echo, fatal, block = (rows['factory-echo'], rows['factory-fatal'],
                          rows['factory-block'])
    # The state, in a column of its own.
    assert text(echo.find(class_='factory-state')) == 'taking jobs'
    assert text(fatal.find(class_='factory-state')) == 'paused'
    assert text(block.find(class_='factory-state')) == \
        'taking jobs at most 1 at once, 0 running'
    # The jobs counted, each count a link to them.
    counts = echo.find(class_='factory-counts')
    assert text(counts) == '1 queued 3 in all'
    assert counts.find('a')['href'].endswith(
        '/remote/jobs?status=queued&name=echo')
    assert text(rows['factory-error'].find(class_='factory-counts')) == \
        '1 in error 1 in all'
    # What each job gets, in words; the raw defaults folded away.
    defaults = fatal.find(class_='factory-defaults')
    assert text(defaults.find('dl')) == \
        'Attempts at most 2, retried 0 s after a failure'
    assert text(echo.find(class_='factory-defaults').find('dl')) == \
        'Attempts at most 3, retried 10 s after a failure'
    folded = defaults.find('details')
    assert text(folded.find('summary')) == 'All 13 defaults'
    assert 'retryBackoff "fixed"' in text(folded)
    assert not folded.has_attr('open')


def test_pausing_a_factory_asks_first_and_its_jobs_say_why(site):
    jobid, = site.addJobs('echo', ['waits'])
    page = site.app.get('/remote/factories')
    form = [f for f in page.forms.values()
            if f.action.endswith('/factories/echo/pause')][0]
    question = form.submit()
    assert text(question.html.find(id='confirm').find('p')) == \
        'Pause job factory echo?'
    assert dialogButtons(question) == ('Pause factory', 'Back')
    assert not site.rp.jobFactories.isPaused('echo')
    page = question.forms['confirm-form'].submit().follow()
    assert page.request.url.endswith('/remote/factories')
    assert site.rp.jobFactories.isPaused('echo')
    job = site.app.get('/remote/jobs/' + jobid)
    assert reasons(job)[0].startswith(
        'Its factory echo is paused: no process claims its jobs. Resume '
        'the factory to let them run.')
    link = job.html.find(id='why-waiting').find('a')
    assert link['href'].endswith('/remote/factories#factory-echo')
    assert 'factory paused' in text(rowOf(site.app.get('/remote/jobs'),
                                          jobid))


def test_the_factories_page_shows_the_queues_and_rate_limits(site):
    site.rp.addJobFactory('api', site.rp.getJobFactory('echo').__class__(
        {'queue': 'mail', 'rateLimit': [2, 60]}))
    site.addJobs('api', [1, 2, 3])
    site.process()
    page = site.app.get('/remote/factories')
    api = page.html.find(id='factory-api')
    assert text(api.find(class_='factory-queue')) == 'queue mail'
    assert text(api.find(class_='factory-rate')) == \
        'at most 2 starts per 1 min, 2 in the current period'
    rows = {row['id']: row for row in page.html.select('#queues tbody tr')}
    assert sorted(rows) == ['queue-default', 'queue-mail']
    mail = rows['queue-mail']
    assert text(mail.find(class_='queue-counts')) == '1 queued 3 in all'
    assert mail.find(class_='queue-counts').find('a')['href'].endswith(
        '/remote/jobs?status=queued&queue=mail')
    assert text(mail.find(class_='queue-factories')) == 'api'
    site.rp.setQueueRateLimit('mail', [5, 10])
    page = site.app.get('/remote/factories')
    assert text(page.html.find(id='queue-mail').find(
        class_='queue-rate')) == \
        'at most 5 starts per 10 s, 0 in the current period'
    listed = site.app.get('/remote/jobs', {'queue': 'mail'})
    assert len(listed.html.select('tr[id^="job-"]')) == 3


def test_pausing_a_queue_asks_first(site):
    site.rp.addJob('echo', 1, queue='mail')
    transaction.commit()
    page = site.app.get('/remote/factories')
    form = [f for f in page.forms.values()
            if f.action.endswith('/factories/pause-queue')][0]
    question = form.submit()
    assert text(question.html.find(id='confirm').find('p')) == \
        'Pause queue default?'
    form = [f for f in page.forms.values()
            if f.action.endswith('/factories/pause-queue')][1]
    question = form.submit()
    assert text(question.html.find(id='confirm').find('p')) == \
        'Pause queue mail?'
    assert dialogButtons(question) == ('Pause queue', 'Back')
    assert not site.rp.queueSettings.isPaused('mail')
    page = question.forms['confirm-form'].submit().follow()
    assert site.rp.queueSettings.isPaused('mail')
    assert text(page.html.find(id='queue-mail').find(
        class_='queue-state')) == 'paused'
    form = [f for f in page.forms.values()
            if f.action.endswith('/factories/resume-queue')][0]
    form.submit().forms['confirm-form'].submit().follow()
    assert not site.rp.queueSettings.isPaused('mail')
    site.app.get('/remote/factories/pause-queue', {'queue': 'a b'},
                 status=400)
    site.app.get('/remote/factories/pause-queue', status=400)


# 2. a cancelled job that never reaches a checkpoint

def test_a_cancelled_job_still_running_says_so_and_names_its_thread(site):
    startWorker(site)
    jobid, thread = blockedJob(site)
    page = site.app.get('/remote/jobs/' + jobid)
    assert 'Runs in thread %s of process' % thread in text(
        page.html.find(id='running-thread'))
    # Cancelled on its page, after a confirmation.
    question = page.forms['cancel'].submit()
    assert dialogButtons(question) == ('Cancel job', 'Back')
    question.forms['confirm-form'].submit().follow()
    assert site.rp.getJobStatus(jobid) == 'cancelled'
    site.rp.monitor.beat()
    page = site.app.get('/remote/jobs/' + jobid)
    still = text(page.html.find(id='still-running'))
    assert 'Cancelled, but still running: thread %s of process' % thread \
        in still
    assert 'until its code returns' in still
    assert page.html.find(id='cancelled-note') is None
    assert "Its thread still runs it" not in still
    assert 'its thread still runs it' in text(page.html.find(id='attempts'))
    # Its page keeps refreshing itself until the thread lets it go.
    assert page.html.find(attrs={'data-live': True}) is not None
    # The list, the workers page and the overview say so too.
    row = rowOf(site.app.get('/remote/jobs'), jobid)
    assert 'still running in thread %s' % thread in text(row)
    workers = site.app.get('/remote/workers')
    listed = text(workers.html.find(id='processes'))
    assert 'cancelled still running' in listed
    assert 'thread %s' % thread in listed
    assert '1 of 1 busy 1 held by a job cancelled but still running' in \
        listed
    overview = site.app.get('/remote/')
    assert text(overview.html.find(id='threads-busy')) == '1 of 1'
    assert '1 of them runs a job no longer processing' in text(
        overview.html.find(id='ended-running'))
    # A retry now would run it twice at once: the question says so.
    question = site.app.get('/remote/jobs/%s/retry' % jobid)
    assert 'still runs it: retried now, it may run twice at once' in text(
        question.html.find(id='confirm'))
    # The job behind it waits for the thread.
    behind, = site.addJobs('echo', ['behind'])
    page = site.app.get('/remote/jobs/' + behind)
    assert any(reason.startswith(
        'Every worker thread runs a job (1 of 1 busy).')
        for reason in reasons(page))
    released.set()
    until(lambda: not running(site, jobid), what='the thread to be free')
    until(lambda: site.rp.getJobStatus(behind) == 'completed',
          what='the job behind to run')
    site.rp.monitor.beat()
    page = site.app.get('/remote/jobs/' + jobid)
    assert page.html.find(id='still-running') is None
    assert text(page.html.find(id='cancelled-note')) == \
        'Cancelled: it does not run again unless it is retried.'
    assert site.rp.getJobStatus(jobid) == 'cancelled'


# 3. why a queued job waits

def test_a_job_added_in_a_trace_names_it_on_its_page_and_in_the_api(
        site):
    traced, plain = site.addJobs('echo', ['traced', 'plain'])
    traceId = '4bf92f3577b34da6a3ce929d0e0e4736'
    site.rp.jobsCollection.update_one(
        {'_id': bson.ObjectId(traced)}, {'$set': {'traceContext': {
            'traceparent': '00-%s-00f067aa0ba902b7-01' % traceId}}})
    page = site.app.get('/remote/jobs/' + traced)
    assert text(page.html.find(id='job-trace')) == traceId
    assert site.app.get('/remote/api/jobs/' + traced).json[
        'traceId'] == traceId
    assert site.app.get('/remote/jobs/' + plain).html.find(
        id='job-trace') is None
    assert site.app.get('/remote/api/jobs/' + plain).json[
        'traceId'] is None


def test_a_job_of_a_paused_queue_or_a_spent_rate_limit_says_so(site):
    first, second = site.addJobs('echo', ['first', 'second'])
    site.rp.pauseQueue('default')
    page = site.app.get('/remote/jobs/' + first)
    assert 'Its queue default is paused: no process claims its jobs. ' \
        'Resume the queue to let them run.' in ' '.join(reasons(page))
    assert 'queue paused' in text(rowOf(site.app.get('/remote/jobs'),
                                        first))
    site.rp.resumeQueue('default')
    assert not any('queue default' in r for r in reasons(
        site.app.get('/remote/jobs/' + first)))
    # One start an hour, taken by the first job's claim.
    site.rp.setQueueRateLimit('default', [1, 3600])
    assert site.rp.pullNextJob().__name__ == first
    transaction.commit()
    page = site.app.get('/remote/jobs/' + second)
    assert 'Its queue default starts at most 1 job per 3600 s, and 1 ' \
        'started in the last 3600 s. It starts once the window allows' \
        in ' '.join(reasons(page))
    links = [a['href'] for a in page.html.find(id='why-waiting')('a')]
    assert any(href.endswith('/remote/factories#queue-default')
               for href in links)
    site.rp.setQueueRateLimit('default', None)
    assert not any('rate' in r for r in reasons(
        site.app.get('/remote/jobs/' + second)))


def test_a_queued_job_says_why_it_waits(site):
    later = site.rp.addJob('echo', 'later', delay=3600)
    transaction.commit()
    due, = site.addJobs('echo', ['due'])
    # No process runs a worker.
    page = site.app.get('/remote/jobs/' + due)
    assert reasons(page) == [
        'No process runs a job worker: nothing claims jobs. Start one with '
        'm01remote worker, or the job worker thread of a web process on '
        'the overview. The workers']
    page = site.app.get('/remote/jobs/' + later)
    first = reasons(page)[0]
    assert first.startswith('Due in 1 h : no worker claims it before.')
    listed = site.app.get('/remote/jobs')
    assert 'waits: no worker' in text(rowOf(listed, due))
    assert 'waits: until due in 1 h · no worker' in text(
        rowOf(listed, later))
    overview = site.app.get('/remote/')
    assert 'No process runs a job worker' in text(
        overview.html.find(id='queue-holds'))
    # A worker with a free thread: nothing holds it, its place is said.
    monitor = site.rp.monitor
    monitor.acquire('worker', threads=2)
    try:
        monitor.beat()
        first, second = site.addJobs('echo', ['first', 'second'])
        page = site.app.get('/remote/jobs/' + second)
        assert reasons(page) == []
        assert text(page.html.find(id='queue-position')) == (
            'Due now: 2 due jobs are claimed before it (higher priority, '
            'or queued earlier).')
        page = site.app.get('/remote/jobs/' + due)
        assert text(page.html.find(id='queue-position')) == \
            'Due now: a free worker thread claims it next.'
        # Every worker quiet.
        monitor.controls.insert_one({'_id': monitor.processId,
                                     'action': 'quiet'})
        assert reasons(site.app.get('/remote/jobs/' + due)) == [
            'Every process running a job worker (1) was asked to take no '
            'more jobs, or is stopping. Resume one on the workers page. '
            'The workers']
    finally:
        monitor.release('worker')


def test_a_job_of_a_factory_at_its_limit_says_so(site):
    startWorker(site)
    blocked, _thread = blockedJob(site)
    waiting, = site.addJobs('block', [None])
    page = site.app.get('/remote/jobs/' + waiting)
    assert 'Its factory block runs at most 1 job at once, and 1 runs now. ' \
        'It starts once one of them ends. The running block jobs' in \
        reasons(page)
    link = [a['href'] for a in page.html.find(id='why-waiting').find_all('a')
            if 'running' in text(a)][0]
    assert link.endswith('/remote/jobs?status=processing&name=block')
    assert 'concurrency limit' in text(rowOf(site.app.get('/remote/jobs'),
                                             waiting))
    released.set()
    until(lambda: site.rp.getJobStatus(waiting) == 'completed',
          what='the second job to run')


# 4. one way to delete, on the jobs page

def test_the_jobs_page_has_one_way_to_delete(site):
    site.addJobs('echo', [1, 2])
    site.addJobs('error', [None])
    site.process()
    queued, = site.addJobs('echo', [3])
    page = site.app.get('/remote/jobs', {'status': 'completed'})
    # One delete button: the bulk form's; no other form removes jobs.
    deletes = [button for button in page.html.find_all('button')
               if 'Delete' in text(button) or 'Remove' in text(button)]
    assert [text(button) for button in deletes] == ['Delete…']
    assert deletes[0].find_parent('form')['id'] == 'bulk'
    assert [form.get('id') for form in page.html.find_all('form')] == [
        'logout', 'filters', 'bulk']
    site.app.get('/remote/jobs/remove', status=404)
    # Every job the filter shows, after the same confirmation as any.
    question = site.app.get('/remote/jobs/bulk', {
        'action': 'delete', 'status': 'completed', 'all': '1'})
    assert text(question.html.find(id='confirm').find('p')) == \
        'Delete 2 jobs?'
    assert dialogButtons(question) == ('Delete 2 jobs', 'Back')
    question.forms['confirm-form'].submit().follow()
    assert site.rp.jobs.countByStatus()['completed'] == 0
    assert site.rp.getJobStatus(queued) == 'queued'
    # No filter and no "all": nothing is chosen, nothing goes.
    question = site.app.get('/remote/jobs/bulk', {'action': 'delete'})
    assert 'Choose the jobs to delete' in text(question.html)
    assert 'confirm-form' not in question.forms
    # Every job, said as such; a processing one is never deleted.
    site.rp.jobsCollection.update_one({'status': 'queued'},
                                      {'$set': {'status': 'processing'}})
    question = site.app.get('/remote/jobs/bulk', {'action': 'delete',
                                                  'all': '1'})
    rows = [[text(cell) for cell in row.find_all(['th', 'td'])]
            for row in question.html.find(id='confirm').find_all('tr')]
    assert rows == [['Jobs', 'all that match'],
                    ['Filter', 'none: every job']]
    question.forms['confirm-form'].submit()
    assert site.rp.jobs.keys() == [queued]


# 5. confirmations: the button names the action, the other one does not

def test_every_confirmation_names_its_action_and_dismisses_with_back(site):
    echo = site.addJobs('echo', [1, 2])
    error, = site.addJobs('error', [None])
    site.process()
    queued, = site.addJobs('echo', [3])
    site.rp.addScheduler(Delay({'jobName': 'echo', 'delay': 60}))
    transaction.commit()
    item, = site.rp.scheduler.values()
    site.rp.startScheduler()
    monitor = site.rp.monitor
    monitor.beat()
    process = monitor.processId
    questions = {
        '/remote/jobs/bulk?action=cancel&job=%s' % queued: 'Cancel 1 jobs',
        '/remote/jobs/bulk?action=retry&status=error&all=1':
        'Retry 1 jobs',
        '/remote/jobs/bulk?action=delete&job=%s&job=%s' % tuple(echo):
        'Delete 2 jobs',
        '/remote/jobs/%s/cancel' % queued: 'Cancel job',
        '/remote/jobs/%s/retry' % error: 'Retry job',
        '/remote/jobs/%s/delete' % error: 'Delete job',
        '/remote/factories/echo/pause': 'Pause factory',
        '/remote/stop-scheduler': 'Stop the scheduler thread',
        '/remote/scheduler/%s/delete' % item.__name__: 'Delete item',
        '/remote/scheduler/pause-all': 'Deactivate 1 items',
        '/remote/control-worker?process=%s&action=quiet' % process:
        'Quiet process',
        '/remote/control-worker?process=%s&action=stop' % process:
        'Stop process',
    }
    for url, button in questions.items():
        question = site.app.get(url)
        assert dialogButtons(question) == (button, 'Back'), url
        # A browser sends the button pressed with the form: it has no
        # name the action's strict parsing would refuse.
        assert not question.html.find(id='confirm-form').find(
            'button').has_attr('name'), url
    # The pages open each of them from a button saying what it leads to.
    page = site.app.get('/remote/jobs')
    assert [text(b) for b in page.html.find(id='bulk').find_all('button')] \
        == ['Cancel…', 'Retry…', 'Delete…']
    page = site.app.get('/remote/scheduler')
    assert text(page.html.find(id='pause-all')) == 'Deactivate all…'


# 6. a Delay item's last run

def test_a_delay_items_last_run_and_its_job(site):
    frozen = [formatting.utc(datetime.datetime(2030, 1, 1, 12))]
    site.rp.now.clock = site.rp.scheduler.clock = lambda: frozen[0]
    delay = site.rp.addScheduler(Delay({'jobName': 'echo', 'delay': 60,
                                        'title': 'Every minute'}))
    cron = site.rp.addScheduler(Cron.fromExpression(
        '* * * * *', jobName='echo', title='Cron beside it'))
    transaction.commit()
    due = site.rp.scheduler[delay].nextCallTime
    page = site.app.get('/remote/scheduler')
    last = page.html.find(id='item-' + delay).find(
        'td', attrs={'data-label': 'Last run'})
    assert text(last) == 'no run since it was added or changed'
    # Jobs of the same factory made otherwise at that time are not its
    # run: one by hand, one of the Cron item due then too.
    site.rp.scheduler.update(cron, nextCallTime=due)
    transaction.commit()
    ran = frozen[0] = due + datetime.timedelta(milliseconds=350)
    byHand = site.app.post('/remote/scheduler/%s/run' % delay,
                           {'csrf_token': site.token()}, status=303)
    byHand = byHand.location.rsplit('/', 1)[1]
    jobids = []
    while True:
        jobid = site.rp.scheduleNextJob()
        if jobid is None:
            break
        jobids.append(jobid)
    transaction.commit()
    assert len(jobids) == 2
    page = site.app.get('/remote/scheduler')
    last = page.html.find(id='item-' + delay).find(
        'td', attrs={'data-label': 'Last run'})
    assert text(last).startswith('ran ')
    assert last.find('time')['title'] == formatting.exact(ran)
    mine = last.find('a')['href'].rsplit('/', 1)[1]
    cronLast = page.html.find(id='item-' + cron).find(
        'td', attrs={'data-label': 'Last run'})
    theirs = cronLast.find('a')['href'].rsplit('/', 1)[1]
    assert {mine, theirs} == set(jobids) and mine != theirs
    assert byHand not in (mine, theirs)
    assert text(last.find(class_='status')) == 'queued'
    # Its own page says so too.
    page = site.app.get('/remote/scheduler/' + delay)
    schedule = page.html.find(id='item-schedule')
    assert 'The run before' in text(schedule)
    assert schedule.find('a', href=re.compile(mine))


# 7. the signed-in user and the site's logout

def test_the_pages_show_the_user_and_the_sites_logout(site):
    page = site.app.get('/remote/')
    user = page.html.find(id='user')
    assert text(user.find(class_='user-name')) == 'admin'
    logout = page.forms['logout']
    assert logout.method.lower() == 'post'
    assert logout.action == '/logout'
    assert logout['csrf_token'].value == site.token()
    # Every page, error pages too.
    missing = site.app.get('/remote/jobs/0123456789abcdef01234567',
                           status=404)
    assert text(missing.html.find(id='user')).startswith('admin')


def test_without_the_setting_there_is_no_logout(store_uri, database):
    wsgi = makeApp(store_uri, database.name)
    app = webtest.TestApp(wsgi, extra_environ={'REMOTE_USER': 'ann'})
    try:
        page = app.get('/remote/')
        assert text(page.html.find(id='user')) == 'ann'
        assert 'logout' not in page.forms
    finally:
        wsgi.registry.getUtility(IRemoteProcessor).stopProcessor(5)


# 8. the chart's legend and what its counts mean

def test_the_chart_has_a_legend_and_counts_attempts(site):
    site.addJobs('echo', [1])
    site.addJobs('fatal', [None])
    site.process()
    site.rp.counters.flush()
    page = site.app.get('/remote/')
    chart = page.html.find(id='activity-chart')
    legend = chart.find(id='activity-legend')
    items = [text(item) for item in legend.find_all('li')]
    assert items[0] == ('completed (1): attempts that completed: each one '
                        'a job completed')
    assert items[1].startswith('failed (1): attempts that failed, timed '
                               'out or lost their worker, retried or not')
    assert [' '.join(swatch['class']) for swatch in
            legend.select('.swatch')] == ['swatch bar', 'swatch bar failures']
    assert chart.find('svg').find('title').get_text() == \
        'Attempts completed and failed, last hour'
    # The jobs card counts jobs; the failed one is queued again, not in
    # error: one name for one thing.
    assert 'The jobs card above counts jobs, each once, by status.' in \
        text(chart)
    header = [text(th) for th in page.html.find(id='factory-stats').select(
        'thead th')]
    assert header[4:] == ['In error', 'Mean run, last hour']
    # The week names its days.
    week = site.app.get('/remote/', {'span': 'week'})
    desc = week.html.find(id='activity-chart').find('desc').get_text()
    assert re.match(r'Attempts from \w{3} \d{1,2} \w{3} \d\d:\d\d to \w{3} '
                    r'\d{1,2} \w{3} \d\d:\d\d UTC', desc), desc


# 9. the forms

def test_the_add_job_form_takes_what_the_api_takes(site):
    page = site.app.get('/remote/jobs/add', {'name': 'fatal'})
    form = page.forms['add-job']
    for name in ('name', 'input', 'delay', 'at', 'priority', 'timeout',
                 'key'):
        assert name in form.fields, name
    hints = {hint['data-factory-hint']: text(hint) for hint in
             page.html.find(id='factory-hints').find_all('div')}
    assert hints['fatal'] == 'fatal Fails with an unexpected error, so ' \
        'it is retried.'
    form['input'] = '{"to": "ann"}'
    form['delay'] = '90'
    form['priority'] = '5'
    form['timeout'] = '30'
    form['key'] = 'mail:ann'
    page = form.submit().follow()
    jobid = page.request.path.rsplit('/', 1)[1]
    document = site.rp.getJobDocument(jobid)
    assert (document['priority'], document['timeout'], document['key']) \
        == (5, 30, 'mail:ann')
    assert (document['retryTime'] - document['created']).total_seconds() \
        == 90
    assert 'priority +5' in text(page.html.find(id='job-summary'))
    # A time in UTC.
    form = site.app.get('/remote/jobs/add').forms['add-job']
    form['name'] = 'echo'
    form['at'] = '2099-12-01 14:30'
    page = form.submit().follow()
    document = site.rp.getJobDocument(page.request.path.rsplit('/', 1)[1])
    assert formatting.exact(document['retryTime']) == \
        '2099-12-01 14:30:00 UTC'


@pytest.mark.parametrize('fields, field, message', [
    ({'delay': 'soon'}, 'delay', 'Enter a number.'),
    ({'delay': '-1'}, 'delay', 'Enter a number from 0 to'),
    ({'at': 'tomorrow'}, 'at', 'Enter a time in UTC as YYYY-MM-DD HH:MM'),
    ({'delay': '5', 'at': '2099-01-01 00:00'}, 'at',
     'Give a delay or a time, not both.'),
    ({'priority': '1.5'}, 'priority', 'Enter a whole number.'),
    ({'priority': str(10 ** 7)}, 'priority', 'Enter a number from'),
    ({'timeout': '0'}, 'timeout', 'from 0 (excluded)'),
    ({'key': 'k' * 201}, 'key', 'at most 200 are accepted'),
])
def test_the_add_job_forms_errors_are_beside_their_field(site, fields,
                                                         field, message):
    form = site.app.get('/remote/jobs/add').forms['add-job']
    form['name'] = 'echo'
    for name, value in fields.items():
        form[name] = value
    page = form.submit(status=400)
    error = page.html.find(attrs={'name': field}).find_parent(
        class_='field').find(class_='error')
    assert message in text(error)
    assert len(site.rp.jobs) == 0


def test_a_key_held_by_a_live_job_is_said_beside_the_key(site):
    holder = site.rp.addJob('echo', 1, key='only-one')
    transaction.commit()
    form = site.app.get('/remote/jobs/add').forms['add-job']
    form['name'] = 'echo'
    form['key'] = 'only-one'
    page = form.submit(status=400)
    error = page.html.find(id='job-key').find_parent(
        class_='field').find(class_='error')
    assert text(error).startswith('Job %s holds this key' % holder)
    assert len(site.rp.jobs) == 1


def test_the_scheduler_forms_say_what_their_fields_are(site):
    for kind in ('delay', 'cron'):
        page = site.app.get('/remote/scheduler/add-' + kind)
        label = page.html.find('label', attrs={'for': 'item-retryDelay'})
        assert text(label) == 'Lock time (seconds)'
        help = text(label.find_next_sibling(class_='help'))
        assert help.startswith('How long a scheduler that took the item '
                               'holds it')
        assert 'Retry delay' not in text(page.html)
    # One weekday numbering: the expression's; the fields tick names.
    assert 'Monday is 0' not in text(page.html)
    form = page.forms['scheduler-item']
    form['jobName'] = 'echo'
    form['hour'] = '9'
    for box in form.fields['dayOfWeek']:
        box.checked = box._value in ('Sat', 'Sun')
    form.submit().follow()
    item, = site.rp.scheduler.values()
    assert item.dayOfWeek == [5, 6]
    edit = site.app.get('/remote/scheduler/%s/edit' % item.__name__)
    assert [box['value'] for box in edit.html.find(
        id='item-dayOfWeek').find_all('input', checked=True)] == [
        'Sat', 'Sun']
    # A value that is no weekday's name is refused beside the field.
    page = site.post('/remote/scheduler/add-cron', {
        'jobName': 'echo', 'dayOfWeek': '7'}, status=400)
    assert 'Tick weekdays among Mon, Tue' in text(
        page.html.find(id='item-dayOfWeek'))


# 10. rough edges

def test_every_page_links_the_api_and_says_its_time_zone(site):
    for url in ('/remote/', '/remote/jobs', '/remote/factories',
                '/remote/scheduler', '/remote/workers', '/remote/jobs/add'):
        page = site.app.get(url)
        links = {text(a): a['href'] for a in
                 page.html.find(id='api-links').find_all('a')}
        assert links == {'JSON API': 'http://localhost/remote/api/',
                         'OpenAPI document':
                         'http://localhost/remote/api/openapi.json'}, url
        assert 'in UTC' in text(page.html.find(id='time-convention'))


def test_the_api_answers_its_own_address_with_an_index(site):
    assert site.app.get('/remote/api').location == \
        'http://localhost/remote/api/'
    index = site.app.get('/remote/api/').json
    assert index['openapi'] == 'http://localhost/remote/api/openapi.json'
    assert index['pages'] == 'http://localhost/remote/'
    paths = {endpoint['path']: endpoint for endpoint in index['endpoints']}
    assert paths['/api/jobs']['methods'] == ['GET', 'POST']
    assert paths['/api/jobs']['url'] == 'http://localhost/remote/api/jobs'
    assert 'url' not in paths['/api/jobs/{jobid}']
    assert paths['/api/jobs/{jobid}']['summary'].startswith('A job')
    site.anonymous.get('/remote/api/', status=403)


def test_the_404s_say_why_and_where_to_go(site):
    missing = '0123456789abcdef01234567'
    page = site.app.get('/remote/jobs/' + missing, status=404)
    assert text(page.html.find(id='error-detail')).startswith(
        'There is no job %s. It may have been deleted' % missing)
    links = {text(a): a['href'] for a in
             page.html.find(id='error-links').find_all('a')}
    assert links['Search the jobs for it'] == \
        'http://localhost/remote/jobs?q=' + missing
    page = site.app.get('/remote/metrics', status=404)
    assert 'The metrics are off. Set m01.remote.metrics = pages' in text(
        page.html.find(id='error-detail'))
    page = site.app.get('/remote/scheduler/' + missing, status=404)
    assert 'There is no scheduler item %s' % missing in text(
        page.html.find(id='error-detail'))


def test_the_metrics_when_on_are_not_the_pages_404(store_uri, database):
    wsgi = makeApp(store_uri, database.name,
                   **{'m01.remote.metrics': 'pages'})
    app = webtest.TestApp(wsgi, extra_environ={'REMOTE_USER': 'ann'})
    try:
        assert 'm01_remote_jobs' in app.get('/remote/metrics').text
    finally:
        wsgi.registry.getUtility(IRemoteProcessor).stopProcessor(5)


def test_the_mean_run_time_has_a_short_label_on_a_phone(site):
    page = site.app.get('/remote/')
    cells = page.html.find(id='factory-stats').select('tbody td')
    labels = {cell['data-label'] for cell in cells}
    assert max(len(label) for label in labels) <= 12
    assert 'Mean run' in labels


def test_the_factories_page_shows_how_long_finished_jobs_are_kept(site):
    site.rp.retention.periods = {'completed': 3600, 'error': None,
                                 'cancelled': 7 * 86400}
    site.rp.addJobFactory('audit', testing.EchoJob(
        {'retention': {'completed': None, 'error': 600}}))
    page = site.app.get('/remote/factories')
    rows = {row['id']: row for row in page.html.select('#factories tbody tr')}
    assert text(rows['factory-echo'].find(class_='factory-kept')) == \
        'Kept once ended: completed for 1 h, error for ever, ' \
        'cancelled for 7 days'
    assert text(rows['factory-audit'].find(class_='factory-kept')) == \
        'Kept once ended: completed for ever, error for 10 min, ' \
        'cancelled for 7 days'
