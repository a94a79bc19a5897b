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
def server():
    """The demo site, worker and scheduler threads running, on a free
    loopback port."""
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
    try:
        # The socket listens already: requests wait in its backlog.
        yield 'http://127.0.0.1:%s' % httpd.effective_port
    finally:
        httpd.shutdown()
        rp = app.registry.getUtility(IRemoteProcessor)
        rp.stopProcessor(5)
        rp.stopScheduler(5)


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


def find(browser, css):
    """The first element ``css`` selects, waiting (at most DEADLINE
    seconds) for it to appear: a click on a submit button returns before
    the browser has loaded the page the form answers with."""
    from selenium.webdriver.common.by import By
    elements = waitFor(lambda: browser.find_elements(By.CSS_SELECTOR, css),
                       'an element %r on %s' % (css, browser.current_url))
    return elements[0]


def findAll(browser, css):
    from selenium.webdriver.common.by import By
    return browser.find_elements(By.CSS_SELECTOR, css)


def waitFor(condition, what, reload=None):
    """Poll ``condition`` until it is true, at most DEADLINE seconds."""
    deadline = time.monotonic() + DEADLINE
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError('after %.0f s still waiting for %s'
                                 % (DEADLINE, what))
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

    login(browser, server)
    assert find(browser, 'h1').text == 'Remote processor'
    running = [span.text for span in findAll(browser, '.card .status')]
    assert running[:2] == ['running', 'running']
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
    assert find(browser, 'h1').text == 'Job %s' % jobid

    # The worker thread picks it up; reload until it is done.
    waitFor(lambda: find(browser, '#job-status').text == 'completed',
            'job %s to complete' % jobid, reload=browser.refresh)
    output = find(browser, '#job-output').text
    assert '"greeting": "<b>hello</b>"' in output
    assert findAll(browser, '#job-output b') == []
    screenshot(browser, artifacts, '03-job-completed')

    browser.get(server + '/remote/jobs')
    links = [a.get_attribute('href').rsplit('/', 1)[1]
             for a in findAll(browser, '#jobs tbody tr td.mono a')]
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
    waitFor(lambda: browser.current_url.endswith('/remote/scheduler'),
            'the scheduler page')
    rows = [row for row in findAll(browser, '#scheduler-items tbody tr')
            if 'Quarter-hourly echo' in row.text]
    assert len(rows) == 1
    nextCall = rows[0].find_element('css selector', '.next-call').text
    assert TIME.match(nextCall), nextCall
    assert 'Europe/Zurich' in rows[0].text
    screenshot(browser, artifacts, '08-scheduler')
