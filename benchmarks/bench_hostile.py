"""The hostile requests of issues 15 and 24, sent to the demo site: what
each now answers, how long it took and how large the answer was.

Every case is sent through WebTest to the demo application (the embedded
store, logged in as its user unless the case says otherwise) and prints
one line: the case, the status, the milliseconds and the bytes of the
answer. The script exits 1 if a case did not answer as expected or took
a second or more.

How to run::

    pip install -e '.[testing]' -e examples/demo
    python benchmarks/bench_hostile.py
"""
import os
import sys
import time
import urllib.parse

import transaction
import webtest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for path in (os.path.join(ROOT, 'examples', 'demo'),):
    if path not in sys.path:
        sys.path.insert(0, path)

import m01remote_demo as demo  # noqa: E402

from m01.remote import stop_threads  # noqa: E402
from m01.remote.interfaces import IRemoteProcessor  # noqa: E402
from m01.remote.scheduler import Delay  # noqa: E402

SETTINGS = {'m01.remote.uri': 'mongomock://', 'demo.user': 'admin',
            'demo.password': 'admin', 'demo.secret': 'benchmark'}
MISSING = '0123456789abcdef01234567'


class Demo:
    def __init__(self):
        self.wsgi = demo.main({}, **SETTINGS)
        self.rp = self.wsgi.registry.getUtility(IRemoteProcessor)
        self.app = webtest.TestApp(self.wsgi)
        self.failures = 0

    def login(self, app=None):
        app = app or self.app
        form = app.get('/login', {'came_from': '/remote'}).forms[0]
        form['login'] = 'admin'
        form['password'] = 'admin'
        return form.submit(status=303)

    def token(self):
        return self.app.cookies['csrf_token']

    def case(self, title, send, expected, check=None):
        started = time.perf_counter()
        response = send()
        seconds = time.perf_counter() - started
        ok = response.status_int == expected and seconds < 1.0 and (
            check is None or check(response))
        self.failures += not ok
        print('%-58s %d %8.1f ms %10d bytes%s' % (
            title, response.status_int, 1000 * seconds, len(response.body),
            '' if ok else '  UNEXPECTED'))
        return response

    def post(self, url, params, app=None):
        params = dict(params, csrf_token=self.token())
        return (app or self.app).post(url, params, status='*')

    def close(self):
        transaction.abort()
        stop_threads(self.rp, timeout=5)


def nestedObjects(depth, leaf):
    for _level in range(depth):
        leaf = {'a': leaf}
    return leaf


def formOf(fields):
    return b'&'.join([b'a='] * fields)


def networkCases(site):
    """The cases of issue 24: bodies, strict JSON, the demo's login."""
    form = 'application/x-www-form-urlencoded'
    for megabytes in (4, 16):
        # Built before the clock starts.
        body = formOf(megabytes * 1024 * 1024 // 3)
        anonymous = webtest.TestApp(site.wsgi)
        site.case('anonymous %d MB form of empty fields' % megabytes,
                  lambda body=body, anonymous=anonymous: anonymous.post(
                      '/remote/jobs/add', body, status='*',
                      content_type=form), 303)
    body = formOf(100000)
    site.case('signed-in form of 100,000 empty fields',
              lambda: site.app.post('/remote/jobs/add', body, status='*',
                                    content_type=form), 413)
    body = formOf(16 * 1024 * 1024 // 3)
    site.case('16 MB body to the demo\'s /login',
              lambda: webtest.TestApp(site.wsgi).post(
                  '/login', body, status='*', content_type=form), 413)
    headers = {'X-CSRF-Token': site.app.get('/remote/api/csrf').json[
        'token'], 'Content-Type': 'application/json'}
    for label, text in (('NaN', b'{"name": "echo", "input": NaN}'),
                        ('Infinity', b'{"name": "echo", "input": Infinity}'),
                        ('a duplicate key',
                         b'{"name": "echo", "name": "fail", "input": 1}')):
        site.case('API job input with %s' % label,
                  lambda text=text: site.app.post(
                      '/remote/api/jobs', text, headers=headers,
                      status='*'), 400)
    thrower = webtest.TestApp(site.wsgi, extra_environ={
        'REMOTE_ADDR': '192.0.2.50'})
    for _attempt in range(demo.FAILURES_PER_ADDRESS):
        thrower.get('/login')
        thrower.post('/login', {'login': 'admin', 'password': 'wrong',
                                'csrf_token': thrower.cookies['csrf_token']},
                     status=400)
    site.case('login after %d wrong passwords' % demo.FAILURES_PER_ADDRESS,
              lambda: thrower.post(
                  '/login', {'login': 'admin', 'password': 'admin',
                             'csrf_token': thrower.cookies['csrf_token']},
                  status='*'), 429)
    site.case('login page framed or cached',
              lambda: webtest.TestApp(site.wsgi).get('/login'), 200,
              lambda r: r.headers.get('X-Frame-Options') == 'DENY'
              and r.headers.get('Cache-Control') == 'no-store')
    configured = demo.main({}, **dict(
        SETTINGS, **{'demo.url': 'https://queue.example.com'}))
    forged = webtest.TestApp(configured, extra_environ={
        'HTTP_HOST': 'evil.example.net'})
    site.case('redirect with a forged Host header (demo.url set)',
              lambda: forged.get('/remote/jobs', status='*'), 303,
              lambda r: r.location.startswith('https://queue.example.com/'))
    stop_threads(configured.registry.getUtility(IRemoteProcessor),
                 timeout=5)


def main():
    site = Demo()
    site.rp.stopProcessor(5)    # jobs stay as they are while measured
    site.login()
    # Each template is compiled at its first use: not timed.
    warm = site.rp.addJob('echo', None, immediate=True)
    for url in ('/remote/', '/remote/jobs', '/remote/jobs/add',
                '/remote/jobs/%s' % warm, '/remote/scheduler',
                '/remote/scheduler/add-delay', '/remote/scheduler/add-cron',
                '/remote/nothing'):
        site.app.get(url, status='*')
    jobs = '/remote/jobs/add'
    issue_input = '[' * 300 + ','.join(['0'] * 200000) + ']' * 300
    site.case('job input of the issue (400 KB, 300 deep)',
              lambda: site.post(jobs, {'name': 'echo',
                                       'input': issue_input}), 400)
    big = site.rp.addJob('echo', nestedObjects(60, [0] * 200000),
                         immediate=True)
    site.rp.processJob(big)
    transaction.commit()
    site.case('page of a job as large (60 deep, 200,000 zeros)',
              lambda: site.app.get('/remote/jobs/%s' % big), 200,
              lambda r: len(r.body) < 2 * 1024 * 1024)
    site.case('its input, downloaded whole',
              lambda: site.app.get('/remote/jobs/%s/input.json' % big), 200)
    for bound in ('10000000', '30000000', str(10 ** 12)):
        site.case('add-cron minute=0-%s' % bound,
                  lambda bound=bound: site.post(
                      '/remote/scheduler/add-cron',
                      {'jobName': 'echo', 'minute': '0-' + bound}), 400)
    for depth in (500, 5000):
        site.case('job input nested %d deep' % depth,
                  lambda depth=depth: site.post(jobs, {
                      'name': 'echo',
                      'input': '[' * depth + ']' * depth}), 400)
        site.case('scheduler input nested %d deep' % depth,
                  lambda depth=depth: site.post(
                      '/remote/scheduler/add-delay', {
                          'jobName': 'echo', 'delay': '60',
                          'input': '[' * depth + ']' * depth}), 400)
    # Encoded before the clock starts: the client's work is not timed.
    body = urllib.parse.urlencode({
        'jobName': 'echo', 'delay': '60', 'csrf_token': site.token(),
        'input': '"%s"' % ('x' * 16 * 1024 * 1024)}).encode()
    site.case('scheduler input over 16 MB',
              lambda: site.app.post(
                  '/remote/scheduler/add-delay', body, status='*',
                  content_type='application/x-www-form-urlencoded'), 400)
    for zone in ('America', 'x' * 5000):
        site.case('time zone %s' % (zone[:20] + ('…' if len(zone) > 20
                                                 else '')),
                  lambda zone=zone: site.post(
                      '/remote/scheduler/add-cron',
                      {'jobName': 'echo', 'timezone': zone}), 400)
    cookieless = webtest.TestApp(site.wsgi)
    site.case('/remote/jobs/%ff', lambda: cookieless.get(
        '/remote/jobs/%ff', status='*'), 400)
    site.case('/%ff (the demo\'s own page)', lambda: cookieless.get(
        '/%ff', status='*'), 400)
    title = 't' * 5000
    for kind, fields in (('delay', {'delay': '60'}),
                         ('cron', {'expression': '* * * * *'})):
        site.case('add-%s with a 5,000 character title' % kind,
                  lambda kind=kind, fields=fields: site.post(
                      '/remote/scheduler/add-' + kind,
                      dict(fields, jobName='echo', title=title)), 400)
    itemid = site.rp.addScheduler(Delay({'jobName': 'echo', 'delay': 60,
                                         'title': 'é' * 200}))
    site.case('edit with a 5,000 character title',
              lambda: site.post('/remote/scheduler/%s/edit' % itemid, {
                  'jobName': 'echo', 'delay': '60', 'title': title}), 400)
    for action in ('toggle', 'run', 'delete'):
        site.case('%s an item titled with 200 "é"' % action,
                  lambda action=action: site.post(
                      '/remote/scheduler/%s/%s' % (itemid, action),
                      {'active': '0'}), 303,
                  lambda r: len(site.app.cookies.get('session', '')) < 4000)
    processing = site.rp.addJob('echo', None, immediate=True)
    while site.rp.getJobStatus(processing) != 'processing':
        site.rp.pullNextJob()
    transaction.commit()
    site.case('delete a processing job',
              lambda: site.post('/remote/jobs/%s/delete' % processing, {}),
              303, lambda r: site.rp.getJobStatus(processing) ==
              'processing')
    site.case('security headers on a page',
              lambda: site.app.get('/remote/'), 200,
              lambda r: r.headers.get('X-Frame-Options') == 'DENY'
              and "frame-ancestors 'none'" in r.headers.get(
                  'Content-Security-Policy', '')
              and r.headers.get('Cache-Control') == 'no-store')
    anonymous = webtest.TestApp(site.wsgi)
    for label, url in (('that exists', '/remote/jobs/%s' % big),
                       ('that does not', '/remote/jobs/%s' % MISSING)):
        site.case('anonymous GET of a job %s' % label,
                  lambda url=url: anonymous.get(url, status='*'), 303,
                  lambda r: '/login' in r.location)
    for label, came_from in (('CR/LF', '/remote\r\nX: 1'),
                             ('NUL', '/remote\x00')):
        fresh = webtest.TestApp(site.wsgi)
        fresh.get('/login')
        site.case('login with came_from holding %s' % label,
                  lambda fresh=fresh, came_from=came_from: fresh.post(
                      '/login', {'login': 'admin', 'password': 'admin',
                                 'came_from': came_from,
                                 'csrf_token': fresh.cookies['csrf_token']},
                      status='*'), 303,
                  lambda r: r.location == 'http://localhost/remote')
    before = site.token()
    site.app.get('/').forms[0].submit(status=303)
    site.login()
    saved = site.app.cookies['auth_tkt']
    renewed = site.token()
    site.app.get('/').forms[0].submit(status=303)
    site.app.set_cookie('auth_tkt', saved)
    site.case('saved auth_tkt cookie after logout',
              lambda: site.app.get('/remote/', status='*'), 303,
              lambda r: '/login' in r.location)
    print('CSRF token renewed at login and logout: %s' % (
        len({before, renewed, site.token()}) == 3))
    site.login()
    networkCases(site)
    site.close()
    return 1 if site.failures else 0


if __name__ == '__main__':
    sys.exit(main())
