"""The management pages in a real browser: headless Chromium, driven by
selenium, against the demo site served by waitress on a loopback port.

Skipped (with the reason) when Chromium or its driver is not installed,
except under ``CI=true``, where that is a failure. Screenshots of each
step land in ``test-artifacts/``.
"""
import base64
import os
import re
import shutil
import tempfile
import threading
import time

import pytest

pytestmark = pytest.mark.browser

CHROMIUM = '/usr/bin/chromium'
CHROMEDRIVER = '/usr/bin/chromedriver'
CHROMIUM_FLAGS = (
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic',
    '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync',
    '--window-size=1280,900')
#: Seconds a page may take to show what the test waits for.
DEADLINE = 30.0
TIME = re.compile(r'^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$')


def _on_ci():
    return os.environ.get('CI', '').lower() in ('1', 'true', 'yes')


def _require_browser():
    missing = [path for path in (CHROMIUM, CHROMEDRIVER)
               if not (os.path.isfile(path) and os.access(path, os.X_OK))]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append('the selenium package')
    if missing:
        reason = ('browser tests need Debian chromium and chromium-driver '
                  'and selenium; missing: %s' % ', '.join(missing))
        if _on_ci():
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)


@pytest.fixture(scope='module')
def demo():
    """The demo site, worker and scheduler threads running, on a free
    loopback port: ``(url, processor)``."""
    _require_browser()
    from m01remote_demo import main
    from webtest.http import StopableWSGIServer

    from m01.remote.interfaces import IRemoteProcessor
    app = main({}, **{
        'm01.remote.uri': 'mongomock://',
        'm01.remote.start_worker': 'true',
        'm01.remote.start_scheduler': 'true',
        'm01.remote.worker.wait_time': '0.2',
        'demo.user': 'admin', 'demo.password': 'secret',
        'demo.secret': 'browser-test'})
    # Port 0: the system picks a free port when the socket is bound, so
    # no other process can take it between choosing and binding.
    httpd = StopableWSGIServer(app, host='127.0.0.1', port=0)
    httpd.runner = threading.Thread(target=httpd.run, daemon=True)
    httpd.runner.start()
    rp = app.registry.getUtility(IRemoteProcessor)
    try:
        # The socket listens already: requests wait in its backlog.
        yield 'http://127.0.0.1:%s' % httpd.effective_port, rp
    finally:
        httpd.shutdown()
        rp.stopProcessor(5)
        rp.stopScheduler(5)


@pytest.fixture(scope='module')
def server(demo):
    """The demo site's URL."""
    return demo[0]


@pytest.fixture(scope='module')
def browser():
    _require_browser()
    # Never let selenium look for (or download) a browser of its own.
    os.environ['SE_OFFLINE'] = 'true'
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    profile = tempfile.mkdtemp(prefix='m01-chromium-')
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument('--user-data-dir=%s' % profile)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER),
                              options=options)
    driver.set_page_load_timeout(DEADLINE)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope='module')
def artifacts(request):
    path = request.config.rootpath / 'test-artifacts'
    path.mkdir(exist_ok=True)
    return path


def screenshot(browser, artifacts, name):
    """Save the whole page, not only the window, as a PNG."""
    metrics = browser.execute_cdp_cmd('Page.getLayoutMetrics', {})
    size = metrics['cssContentSize']
    shot = browser.execute_cdp_cmd('Page.captureScreenshot', {
        'format': 'png', 'captureBeyondViewport': True,
        'clip': {'x': 0, 'y': 0, 'width': size['width'],
                 'height': size['height'], 'scale': 1}})
    (artifacts / ('%s.png' % name)).write_bytes(
        base64.b64decode(shot['data']))


#: The window sizes the pages are shown at: a desktop and a phone.
DESKTOP = (1366, 900)
PHONE = (390, 844)


def viewport(browser, size):
    """Show pages ``size`` CSS pixels wide and high (a phone: as a
    phone's browser would, its touch and mobile layout)."""
    width, height = size
    browser.execute_cdp_cmd('Emulation.setDeviceMetricsOverride', {
        'width': width, 'height': height, 'deviceScaleFactor': 1,
        'mobile': size == PHONE})


def find(browser, css):
    """The first element ``css`` selects, waiting (at most DEADLINE
    seconds) for it to appear: a click on a submit button returns before
    the browser has loaded the page the form answers with."""
    from selenium.webdriver.common.by import By
    elements = waitFor(lambda: browser.find_elements(By.CSS_SELECTOR, css),
                       'an element %r on %s' % (css, browser.current_url))
    return elements[0]


def textOf(browser, css):
    """The text of the first element ``css`` selects, read again if the
    script swapped it meanwhile."""
    return waitFor(lambda: find(browser, css).text or ' ',
                   'the text of %r' % css).strip()


def findAll(browser, css):
    from selenium.webdriver.common.by import By
    return browser.find_elements(By.CSS_SELECTOR, css)


def waitFor(condition, what, reload=None, seconds=DEADLINE):
    """Poll ``condition`` until it is true, at most ``seconds``. An
    element gone while it was read (a live part swapped by the script)
    is read again."""
    from selenium.common.exceptions import StaleElementReferenceException
    deadline = time.monotonic() + seconds
    while True:
        try:
            value = condition()
        except StaleElementReferenceException:
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError('after %.0f s still waiting for %s'
                                 % (seconds, what))
        time.sleep(0.25)
        if reload is not None:
            reload()


def login(browser, server):
    browser.get(server + '/remote/')
    assert '/login' in browser.current_url
    find(browser, 'input[name=login]').send_keys('admin')
    find(browser, 'input[name=password]').send_keys('secret')
    find(browser, 'button[type=submit]').click()
    waitFor(lambda: browser.current_url.rstrip('/').endswith('/remote'),
            'the overview after logging in')


def test_manage_jobs_and_the_scheduler(server, browser, artifacts):
    from selenium.webdriver.support.ui import Select

    viewport(browser, DESKTOP)
    login(browser, server)
    assert find(browser, 'h1').text == 'Remote processor'
    running = [span.text for span in findAll(
        browser, '#this-process .card .status')]
    assert running == ['running here', 'running here']
    screenshot(browser, artifacts, '01-overview')

    # A mistake first: the error is shown beside the field, the text kept.
    browser.get(server + '/remote/jobs/add')
    Select(find(browser, '#job-name')).select_by_value('echo')
    find(browser, '#job-input').send_keys('{"greeting": <b>hello</b>}')
    find(browser, '#add-job button[type=submit]').click()
    error = find(browser, '.field.has-error .error').text
    assert error.startswith('Not valid JSON')
    assert find(browser, '#job-input').get_attribute('value') == \
        '{"greeting": <b>hello</b>}'
    screenshot(browser, artifacts, '02-add-job-error')

    textarea = find(browser, '#job-input')
    textarea.clear()
    textarea.send_keys('{"greeting": "<b>hello</b>", "n": [1, 2, 3]}')
    find(browser, '#add-job button[type=submit]').click()
    waitFor(lambda: re.search(r'/remote/jobs/[0-9a-f]{24}$',
                              browser.current_url), 'the job page')
    jobid = browser.current_url.rsplit('/', 1)[1]
    assert find(browser, 'h1').text == 'echo\njob %s' % jobid

    # The worker thread picks it up; reload until it is done.
    waitFor(lambda: find(browser, '#job-status').text == 'completed',
            'job %s to complete' % jobid, reload=browser.refresh)
    output = find(browser, '#job-output').text
    assert '"greeting": "<b>hello</b>"' in output
    assert findAll(browser, '#job-output b') == []
    screenshot(browser, artifacts, '03-job-completed')

    browser.get(server + '/remote/jobs')
    links = [a.get_attribute('href').rsplit('/', 1)[1]
             for a in findAll(browser, '#jobs tbody tr a.job-title')]
    assert jobid in links
    screenshot(browser, artifacts, '04-jobs')
    browser.get(server + '/remote/jobs/' + jobid)

    # A job that fails: its error and traceback are on its page.
    browser.get(server + '/remote/jobs/add?name=sleep')
    find(browser, '#job-input').send_keys('"<i>long</i>"')
    find(browser, '#add-job button[type=submit]').click()
    waitFor(lambda: re.search(r'/remote/jobs/[0-9a-f]{24}$',
                              browser.current_url), 'the job page')
    waitFor(lambda: find(browser, '#job-status').text == 'error',
            'the sleep job to fail', reload=browser.refresh)
    error = find(browser, '#job-errors li')
    assert 'SleepJob input must be a number' in error.text
    error.find_element('css selector', 'summary').click()
    assert 'JobError' in error.find_element('css selector', 'pre').text
    assert findAll(browser, '#job-errors i') == []
    assert findAll(browser, '#retry') and not findAll(browser, '#cancel')
    screenshot(browser, artifacts, '05-job-error')

    browser.get(server + '/remote/factories')
    screenshot(browser, artifacts, '06-factories')

    # A Cron item from an expression in another time zone.
    browser.get(server + '/remote/scheduler')
    find(browser, 'a[href$="/add-cron"]').click()
    Select(find(browser, '#item-jobName')).select_by_value('echo')
    find(browser, '#item-title').send_keys('Quarter-hourly echo')
    find(browser, '#item-expression').send_keys('*/15 8-18 * * MON-FRI')
    find(browser, '#item-timezone').send_keys('Europe/Zurich')
    find(browser, '#item-input').send_keys('"tick"')
    screenshot(browser, artifacts, '07-add-cron')
    find(browser, '#scheduler-item button[type=submit]').click()
    waitFor(lambda: '/remote/scheduler?shown=' in browser.current_url,
            'the scheduler page')
    rows = [row for row in findAll(browser, '#scheduler-items tbody tr')
            if 'Quarter-hourly echo' in row.text]
    assert len(rows) == 1
    nextCall = rows[0].find_element('css selector', '.next-call time')
    assert TIME.match(nextCall.get_attribute('title')), nextCall
    assert nextCall.text.startswith('in '), nextCall.text
    assert 'Europe/Zurich' in rows[0].text
    screenshot(browser, artifacts, '08-scheduler')


def loggedIn(browser, server):
    """Log in unless the browser is already."""
    browser.get(server + '/remote/')
    if '/login' in browser.current_url:
        find(browser, 'input[name=login]').send_keys('admin')
        find(browser, 'input[name=password]').send_keys('secret')
        find(browser, 'button[type=submit]').click()
        waitFor(lambda: browser.current_url.rstrip('/').endswith('/remote'),
                'the overview after logging in')


def addJob(browser, server, name, input):
    browser.get(server + '/remote/jobs/add?name=' + name)
    find(browser, '#job-input').send_keys(input)
    find(browser, '#add-job button[type=submit]').click()
    waitFor(lambda: re.search(r'/remote/jobs/[0-9a-f]{24}$',
                              browser.current_url), 'the job page')
    return browser.current_url.rsplit('/', 1)[1]


def test_a_running_job_updates_its_page(server, browser, artifacts):
    loggedIn(browser, server)
    viewport(browser, DESKTOP)
    jobid = addJob(browser, server, 'steps', '16')
    # The page is not reloaded: the script swaps in its parts.
    marker = browser.execute_script(
        'document.body.dataset.marker = "kept"; return 1;')
    assert marker == 1
    waitFor(lambda: (find(browser, '#job-status').text == 'processing'
                     and findAll(browser, '#progress-percent')),
            'the job to report progress')
    percent = textOf(browser, '#progress-percent')
    waitFor(lambda: find(browser, '#progress-percent').text not in (
        percent, ''), 'the progress to move on')
    assert browser.execute_script('return document.body.dataset.marker') \
        == 'kept'
    running = textOf(browser, '#attempts li')
    assert 'running' in running and 'Attempt 1' in running
    assert textOf(browser, '#log-lines li').endswith('Step 1 of 16 done.')
    # The live line gives the server's time, in UTC as every page.
    waitFor(lambda: re.search(
        r'Updated \d\d:\d\d:\d\d UTC\.', textOf(browser, '#live-status')),
        'the page to say when it was updated')
    assert 'next checkpoint' in textOf(browser, '#cancel-help')
    screenshot(browser, artifacts, '10-job-running')
    viewport(browser, PHONE)
    screenshot(browser, artifacts, '10-job-running-phone')
    viewport(browser, DESKTOP)
    # It completes: the page says so and stops refreshing itself.
    waitFor(lambda: find(browser, '#job-status').text == 'completed',
            'job %s to complete on its page' % jobid)
    waitFor(lambda: 'no longer running' in find(
        browser, '#live-status').text, 'the updates to stop')
    assert browser.execute_script('return document.body.dataset.marker') \
        == 'kept'
    assert textOf(browser, '#attempts li .status') == 'completed'
    screenshot(browser, artifacts, '11-job-done-live')


def test_a_delete_asks_in_a_dialog(server, browser, artifacts):
    loggedIn(browser, server)
    viewport(browser, DESKTOP)
    jobid = addJob(browser, server, 'echo', '"to delete"')
    waitFor(lambda: find(browser, '#job-status').text == 'completed',
            'the echo job to complete', reload=browser.refresh)
    find(browser, '#delete button').click()
    dialog = find(browser, 'dialog.confirm[open]')
    assert 'Delete job echo (%s) for good?' % jobid in dialog.text
    assert browser.current_url.endswith(jobid)
    screenshot(browser, artifacts, '12-confirm-dialog')
    # Cancel closes it; nothing is deleted.
    dialog.find_element('css selector', '[data-confirm-cancel]').click()
    waitFor(lambda: not findAll(browser, 'dialog.confirm'),
            'the dialog to close')
    browser.refresh()
    assert find(browser, '#job-status').text == 'completed'
    find(browser, '#delete button').click()
    find(browser, 'dialog.confirm[open] button[type=submit]').click()
    waitFor(lambda: browser.current_url.endswith('/remote/jobs'),
            'the jobs page after deleting')
    assert 'Job %s deleted.' % jobid in find(browser, '.flash').text


def fitsThePhone(browser):
    """Whether the page needs no sideways scrolling at the phone's
    width (the tables stack, the forms wrap)."""
    return browser.execute_script(
        'return document.documentElement.scrollWidth') <= PHONE[0]


def addCronItem(browser, server, title, expression, timezone):
    from selenium.webdriver.support.ui import Select
    browser.get(server + '/remote/scheduler/add-cron')
    Select(find(browser, '#item-jobName')).select_by_value('echo')
    find(browser, '#item-title').send_keys(title)
    find(browser, '#item-expression').send_keys(expression)
    find(browser, '#item-timezone').send_keys(timezone)
    find(browser, '#scheduler-item button[type=submit]').click()
    waitFor(lambda: '/remote/scheduler?shown=' in browser.current_url,
            'the scheduler page')
    return browser.current_url.rsplit('=', 1)[1]


def dialogButtons(dialog):
    """The labels of a confirmation dialog's buttons, in order."""
    return [button.text for button in dialog.find_elements(
        'css selector', 'button, a.button')]


def confirmInDialog(browser, opener, question, buttons):
    """Open a confirmation in a dialog with the button ``opener`` (CSS),
    check its question and its buttons' labels, and confirm."""
    find(browser, opener).click()
    dialog = find(browser, 'dialog.confirm[open]')
    assert question in dialog.text, dialog.text
    assert dialogButtons(dialog) == buttons
    return dialog


def flashes(browser):
    return ' '.join(flash.text for flash in findAll(browser, '.flash'))


def test_every_page_on_a_desktop_and_a_phone(demo, browser, artifacts):
    server, rp = demo
    loggedIn(browser, server)
    viewport(browser, DESKTOP)
    done = addJob(browser, server, 'echo', '{"to": "ann@example.org"}')
    failed = addJob(browser, server, 'sleep', '"<i>never</i>"')
    waitFor(lambda: find(browser, '#job-status').text == 'error',
            'the sleep job to fail', reload=browser.refresh)
    itemid = addCronItem(browser, server, 'Office hours',
                         '*/15 9-17 * * MON-FRI', 'Europe/Zurich')
    # The item just added shows its next runs, in words too.
    row = find(browser, '#item-' + itemid)
    assert 'every 15 minutes from 09:00 to 17:59, Monday to Friday, in ' \
        'Europe/Zurich' in row.text
    assert find(browser, '#runs-%s[open]' % itemid)

    # A paused factory's job says why it waits.
    browser.get(server + '/remote/factories')
    dialog = confirmInDialog(
        browser, '#factory-steps form[data-confirm] button',
        'Pause job factory steps?', ['Pause factory', 'Back'])
    screenshot(browser, artifacts, '19-confirm-pause-desktop')
    dialog.find_element('css selector', 'button[type=submit]').click()
    waitFor(lambda: 'Job factory steps paused' in flashes(browser),
            'the factory to be paused')
    try:
        paused = addJob(browser, server, 'steps', '3')
        assert 'Its factory steps is paused' in textOf(browser,
                                                       '#why-waiting')
        # A job cancelled while it sleeps, which never reaches a
        # checkpoint, holds the only worker thread until it returns; the
        # jobs behind it wait for a thread.
        stuck = addJob(browser, server, 'sleep', '45')
        waitFor(lambda: find(browser, '#job-status').text == 'processing',
                'the sleep job to run', reload=browser.refresh)
        dialog = confirmInDialog(browser, '#cancel button',
                                 'Cancel job sleep (%s)?' % stuck,
                                 ['Cancel job', 'Back'])
        screenshot(browser, artifacts, '19-confirm-cancel-desktop')
        dialog.find_element('css selector', 'button[type=submit]').click()
        waitFor(lambda: find(browser, '#job-status').text == 'cancelled',
                'the job to be cancelled', reload=browser.refresh)
        # Its page says so once the process's heartbeat lists it.
        waitFor(lambda: findAll(browser, '#still-running'),
                'the cancelled job shown still running',
                reload=browser.refresh)
        assert 'Cancelled, but still running' in textOf(browser,
                                                        '#still-running')
        behind = addJob(browser, server, 'echo', '"behind the sleep"')
        assert 'Every worker thread runs a job (1 of 1 busy)' in textOf(
            browser, '#why-waiting')
        pages = [
            ('job-still-running', 'jobs/' + stuck),
            ('job-waiting-thread', 'jobs/' + behind),
            ('workers', 'workers'), ('overview', ''), ('jobs', 'jobs'),
            ('job-paused', 'jobs/' + paused), ('job', 'jobs/' + done),
            ('job-failed', 'jobs/' + failed), ('job-add', 'jobs/add'),
            ('factories', 'factories'), ('scheduler', 'scheduler'),
            ('scheduler-item', 'scheduler/' + itemid),
            ('scheduler-add-cron', 'scheduler/add-cron'),
            ('scheduler-add-delay', 'scheduler/add-delay'),
            ('confirm-delete', 'jobs/%s/delete' % done),
            ('confirm-retry', 'jobs/%s/retry' % failed),
            ('not-found', 'jobs/0123456789abcdef01234567'),
            ('page-past-the-end', 'jobs?page=40'),
        ]
        for size, label in ((DESKTOP, 'desktop'), (PHONE, 'phone')):
            viewport(browser, size)
            for number, (name, path) in enumerate(pages, 20):
                browser.get(server + '/remote/' + path)
                find(browser, 'h1')
                screenshot(browser, artifacts,
                           '%d-%s-%s' % (number, name, label))
                if size == PHONE:
                    assert fitsThePhone(browser), name
        viewport(browser, DESKTOP)
        # The workers page and the list name the thread it holds.
        browser.get(server + '/remote/workers')
        assert 'still running' in textOf(browser, '#processes')
        browser.get(server + '/remote/jobs')
        assert 'still running' in textOf(browser, '#job-%s' % stuck)
    finally:
        rp.jobFactories.resume('steps')
    # The thread is free once the sleep returns; the jobs behind run.
    waitFor(lambda: rp.getJobStatus(behind) == 'completed',
            'the job behind the sleep to run', seconds=90)
    # Its page says so at the process's next heartbeat.
    browser.get(server + '/remote/jobs/' + stuck)
    waitFor(lambda: not findAll(browser, '#still-running'),
            'the sleep job no longer shown running', reload=browser.refresh)

    # The demo's own pages, in the add-on's look, signed in and out.
    for size, label in ((DESKTOP, 'desktop'), (PHONE, 'phone')):
        viewport(browser, size)
        browser.get(server + '/')
        assert find(browser, '#user .user-name').text == 'admin'
        screenshot(browser, artifacts, '45-demo-welcome-%s' % label)
        if size == PHONE:
            assert fitsThePhone(browser), 'welcome'
    viewport(browser, DESKTOP)
    browser.get(server + '/remote/')
    assert find(browser, '#user .user-name').text == 'admin'
    find(browser, '#logout button').click()
    waitFor(lambda: browser.current_url.rstrip('/') == server,
            'the welcome page after logging out')
    for size, label in ((DESKTOP, 'desktop'), (PHONE, 'phone')):
        viewport(browser, size)
        browser.get(server + '/')
        screenshot(browser, artifacts, '46-demo-logged-out-%s' % label)
        browser.get(server + '/login')
        assert 'admin' in textOf(browser, '#login-hint')
        screenshot(browser, artifacts, '47-demo-login-%s' % label)
        if size == PHONE:
            assert fitsThePhone(browser), 'login'
    loggedIn(browser, server)
    viewport(browser, DESKTOP)
    # The failed job leads with its failure, its traceback open.
    browser.get(server + '/remote/jobs/' + failed)
    failure = find(browser, '#job-failure .failure')
    assert 'SleepJob input must be a number' in failure.text
    assert find(browser, '#failure-traceback[open] pre').is_displayed()
    # A job's time shows the exact UTC time in its tooltip, and the
    # script keeps the relative one up to date without a reload.
    created = find(browser, '#job-summary time')
    assert TIME.match(created.get_attribute('title'))
    before = created.text
    waitFor(lambda: find(browser, '#job-summary time').text != before,
            'the relative time to move on from %r' % before)


def test_the_pages_with_sample_data(server, browser, artifacts,
                                    monkeypatch):
    # Busy workers, a backlog and a day's charts, which the demo's queue
    # does not have.
    from m01.remote.views.common import BaseView
    from support.samplesources import SampleSources
    monkeypatch.setattr(BaseView, 'sources', SampleSources(
        quietUrl=server + '/remote/stop-scheduler'))
    loggedIn(browser, server)
    for size, label in ((DESKTOP, 'desktop'), (PHONE, 'phone')):
        viewport(browser, size)
        for name, path in (('overview', ''), ('overview-week', '?span=week'),
                           ('workers', 'workers'), ('jobs', 'jobs')):
            browser.get(server + '/remote/' + path)
            find(browser, 'h1')
            screenshot(browser, artifacts, '40-%s-data-%s' % (name, label))
            if size == PHONE:
                assert fitsThePhone(browser), name
    viewport(browser, DESKTOP)
    browser.get(server + '/remote/')
    chart = find(browser, '#activity-chart svg')
    assert chart.get_attribute('role') == 'img'
    assert len(findAll(browser, '#activity-chart rect')) > 60
    # The bulk selection: the script selects a page's rows at once.
    browser.get(server + '/remote/jobs')
    find(browser, '[data-select-all]').click()
    boxes = findAll(browser, 'input[data-row]')
    assert boxes and all(box.is_selected() for box in boxes)
    assert find(browser, '[data-selected-count]').text == \
        '%d selected' % len(boxes)
    # A process's quiet button asks in a dialog first.
    browser.get(server + '/remote/workers')
    find(browser, '#processes a[data-confirm]').click()
    assert find(browser, 'dialog.confirm[open]').is_displayed()
    screenshot(browser, artifacts, '41-workers-confirm-desktop')


def test_bulk_actions_and_a_processs_quiet_ask_in_a_dialog(
        server, browser, artifacts):
    loggedIn(browser, server)
    viewport(browser, DESKTOP)
    jobids = [addJob(browser, server, 'echo', '"bulk %d"' % number)
              for number in range(3)]
    for jobid in jobids:
        browser.get(server + '/remote/jobs/' + jobid)
        waitFor(lambda: find(browser, '#job-status').text == 'completed',
                'job %s to complete' % jobid, reload=browser.refresh)
    # Two rows chosen, deleted after the dialog says how many.
    browser.get(server + '/remote/jobs?name=echo&status=completed')
    for jobid in jobids[:2]:
        find(browser, '#job-%s input[data-row]' % jobid).click()
    assert find(browser, '[data-selected-count]').text == '2 selected'
    find(browser, '#bulk button[value=delete]').click()
    dialog = find(browser, 'dialog.confirm[open]')
    assert 'Delete 2 jobs?' in dialog.text
    screenshot(browser, artifacts, '42-bulk-confirm-desktop')
    dialog.find_element('css selector', 'button[type=submit]').click()
    waitFor(lambda: 'Deleted: 2 jobs.' in ' '.join(
        flash.text for flash in findAll(browser, '.flash')),
        'the bulk delete to be done')
    assert 'status=completed' in browser.current_url
    shown = [a.get_attribute('href').rsplit('/', 1)[1]
             for a in findAll(browser, '#jobs tbody tr a.job-title')]
    assert jobids[2] in shown and not set(jobids[:2]) & set(shown)
    # This web process beats as it runs its worker and scheduler threads:
    # quieted, and resumed, each after a dialog.
    browser.get(server + '/remote/workers')
    row = find(browser, '#processes tbody tr')
    assert 'worker' in row.text and 'scheduler' in row.text
    assert row.find_element('css selector', '.status').text == 'running'
    row.find_element('css selector', 'a[href*="action=quiet"]').click()
    dialog = find(browser, 'dialog.confirm[open]')
    assert 'take no more jobs?' in dialog.text
    screenshot(browser, artifacts, '43-workers-quiet-desktop')
    dialog.find_element('css selector', 'button[type=submit]').click()
    waitFor(lambda: 'takes no more jobs' in ' '.join(
        flash.text for flash in findAll(browser, '.flash')),
        'the process to be asked to take no jobs')
    waitFor(lambda: find(browser, '#processes tbody tr .status').text ==
            'quiet', 'the process to be quiet', reload=browser.refresh)
    find(browser, '#processes a[href*="action=resume"]').click()
    find(browser, 'dialog.confirm[open] button[type=submit]').click()
    waitFor(lambda: find(browser, '#processes tbody tr .status').text ==
            'running', 'the process to take jobs again',
            reload=browser.refresh)


# Live pages with worker processes of their own, on a real server.

@pytest.fixture
def workerSite(tmp_path, mongojava_uri):
    """The demo site on mongo-java-server, running no threads of its own,
    on a free loopback port; ``start()`` starts an ``m01remote worker``
    process on its database (stopped, or killed, at the end)."""
    _require_browser()
    import subprocess
    import sys

    import transaction
    from pyramid.paster import get_app
    from webtest.http import StopableWSGIServer

    from m01.remote.interfaces import IRemoteProcessor
    from support.inifile import pasteIni
    from support.testserver import unique_database_name
    database = unique_database_name()
    ini = tmp_path / 'site.ini'
    # The first server's secret: the browser's login holds for both.
    ini.write_text(pasteIni('call:m01remote_demo:main', {
        'm01.remote.uri': mongojava_uri, 'm01.remote.database': database,
        'm01.remote.worker.wait_time': '0.2', 'demo.user': 'admin',
        'demo.password': 'secret', 'demo.secret': 'browser-test'}))
    app = get_app(str(ini))
    rp = app.registry.getUtility(IRemoteProcessor)
    httpd = StopableWSGIServer(app, host='127.0.0.1', port=0)
    httpd.runner = threading.Thread(target=httpd.run, daemon=True)
    httpd.runner.start()
    processes = []

    def start():
        log = open(tmp_path / ('worker-%d.log' % len(processes)), 'w+')
        process = subprocess.Popen(
            [sys.executable, '-m', 'm01.remote.console', 'worker', str(ini)],
            stdout=log, stderr=subprocess.STDOUT,
            env=dict(os.environ, PYTHONUNBUFFERED='1'))
        processes.append((process, log))
        return process
    try:
        yield 'http://127.0.0.1:%s' % httpd.effective_port, rp, start
    finally:
        for process, log in processes:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            log.close()
        httpd.shutdown()
        transaction.abort()
        rp.database.client.drop_database(database)


def addJobs(rp, name, inputs, maxRetries=None):
    """Jobs stored at once (``maxRetries`` set on them: a failing job
    ends in error after its first attempt with 0)."""
    import transaction
    jobids = [rp.addJob(name, input) for input in inputs]
    if maxRetries is not None:
        for document in rp.pendingJobDocuments():
            document['maxRetries'] = maxRetries
    transaction.commit()
    return jobids


def statusCount(browser, status):
    for row in findAll(browser, '#job-counts tr'):
        cells = row.find_elements('css selector', 'td')
        if cells and cells[0].text == status:
            return cells[1].text
    raise AssertionError('no count of %s on the overview' % status)


def markPage(browser):
    """Mark the page: the mark goes if the page is loaded again."""
    browser.execute_script('document.body.dataset.marker = "kept";')


def pageKept(browser):
    return browser.execute_script(
        'return document.body.dataset.marker') == 'kept'


def processRow(browser, pid):
    for row in findAll(browser, '#processes tbody tr'):
        if ':%d' % pid in row.find_element('css selector', 'strong').text:
            return row
    return None


def rowState(browser, pid):
    row = processRow(browser, pid)
    return row.find_element('css selector', '.status').text if row else None


@pytest.mark.mongojava
def test_live_pages_search_bulk_retry_and_two_worker_processes(
        workerSite, browser, artifacts):
    url, rp, start = workerSite
    # Failed jobs to retry later: two about "alpha", one about "beta".
    alpha = addJobs(rp, 'fail', ['alpha one', 'alpha two'], maxRetries=0)
    beta, = addJobs(rp, 'fail', ['beta one'], maxRetries=0)
    first, second = start(), start()
    loggedIn(browser, url)
    viewport(browser, DESKTOP)

    # The overview counts the jobs as the workers end them, and its chart
    # shows them once their counters are written (every 10 s), without
    # the page being loaded again.
    browser.get(url + '/remote/')
    waitFor(lambda: statusCount(browser, 'error') == '3',
            'the failed jobs counted on the overview', reload=browser.refresh)
    markPage(browser)
    completed = statusCount(browser, 'completed')
    chart = find(browser, '#activity-chart').text
    screenshot(browser, artifacts, '50-overview-live-before')
    addJobs(rp, 'echo', ['finch %d' % number for number in range(20)])
    waitFor(lambda: statusCount(browser, 'completed') != completed,
            'the completed count to change on its own')

    def chartSays():
        return browser.execute_script(
            'var desc = document.querySelector("#activity-chart desc");'
            'return desc ? desc.textContent : "";')
    # Each process writes its own counters (10 s after its first outcome
    # at most), the page refreshes every 10 s: the chart adds them up.
    waitFor(lambda: ': 20 completed, 3 failed;' in chartSays(),
            'the chart to show every job completed and failed', seconds=60)
    assert find(browser, '#activity-chart').text != chart
    assert statusCount(browser, 'completed') == '20'
    assert pageKept(browser)
    assert 'Updated' in textOf(browser, '#live-status')
    screenshot(browser, artifacts, '51-overview-live-after')

    # Search by a word of a job's input.
    wanted, = addJobs(rp, 'echo', [{'customer': 'Zebrafinch-42'}])
    waitFor(lambda: rp.getJobStatus(wanted) == 'completed',
            'the job searched for to complete')
    browser.get(url + '/remote/jobs')
    find(browser, '#filter-q').send_keys('zebrafinch')
    find(browser, '#filters button[type=submit]').click()
    waitFor(lambda: 'q=zebrafinch' in browser.current_url, 'the search')
    shown = [a.get_attribute('href').rsplit('/', 1)[1]
             for a in findAll(browser, '#jobs tbody tr a.job-title')]
    assert shown == [wanted]
    assert 'Zebrafinch-42' in textOf(browser, '#jobs .preview')
    screenshot(browser, artifacts, '52-search')

    # Every failed job about alpha retried at once, after a dialog that
    # counts them; the list waits meanwhile instead of undoing the tick.
    browser.get(url + '/remote/jobs?status=error&q=alpha')
    assert len(findAll(browser, '#jobs tbody tr')) == 2
    browser.execute_script(
        'document.getElementById("jobs-list").dataset.marker = "kept";')
    find(browser, '#bulk input[name=all]').click()
    browser.execute_script('document.activeElement.blur();')
    waitFor(lambda: 'Waiting while you select' in find(
        browser, '#live-status').text, 'the list to wait while ticked')
    assert browser.execute_script(
        'return document.getElementById("jobs-list").dataset.marker') \
        == 'kept'
    assert find(browser, '#bulk input[name=all]').is_selected()
    screenshot(browser, artifacts, '53-bulk-retry-waiting')
    find(browser, '#bulk button[value=retry]').click()
    dialog = find(browser, 'dialog.confirm[open]')
    assert 'Retry 2 jobs?' in dialog.text
    assert 'alpha' in dialog.text
    screenshot(browser, artifacts, '54-bulk-retry-confirm')
    dialog.find_element('css selector', 'button[type=submit]').click()
    waitFor(lambda: 'Queued again: 2 jobs.' in ' '.join(
        flash.text for flash in findAll(browser, '.flash')),
        'the bulk retry to be done')
    screenshot(browser, artifacts, '55-bulk-retry-done')
    # Each alpha job ran again (and failed again); beta was left alone.
    waitFor(lambda: all(len(rp.getJobErrors(jobid)) == 2 and
                        rp.getJobStatus(jobid) == 'error'
                        for jobid in alpha), 'the alpha jobs to run again')
    assert len(rp.getJobErrors(beta)) == 1
    browser.refresh()
    screenshot(browser, artifacts, '56-bulk-retried-ran-again')

    # The workers page lists both processes as they beat, and one stops
    # when told to, the page showing it without being loaded again.
    browser.get(url + '/remote/workers')
    markPage(browser)
    waitFor(lambda: [rowState(browser, process.pid)
                     for process in (first, second)] == ['running'] * 2,
            'both processes running on the workers page')
    assert len(findAll(browser, '#processes tbody tr')) == 2
    assert 'm01remote worker' in processRow(browser, first.pid).text
    screenshot(browser, artifacts, '57-workers-two-processes')
    processRow(browser, first.pid).find_element(
        'css selector', 'a[href*="action=stop"]').click()
    dialog = find(browser, 'dialog.confirm[open]')
    assert 'Stop process' in dialog.text
    dialog.find_element('css selector', 'button[type=submit]').click()
    assert first.wait(DEADLINE) == 0
    markPage(browser)
    waitFor(lambda: rowState(browser, first.pid) == 'stopped',
            'the stopped process shown as stopped')
    assert pageKept(browser)
    assert second.poll() is None
    assert rowState(browser, second.pid) == 'running'
    assert textOf(browser, '#processes-summary') == '1 alive, 1 stopped.'
    screenshot(browser, artifacts, '58-workers-one-stopped')
