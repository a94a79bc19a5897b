"""The bad-input scenario of ``faults.py``: the Python API and the
management pages (through WebTest) given what users get wrong.

Every case must end in a clear error (a ``ValueError`` or ``KeyError``
with a message saying what is wrong) or a 4xx page, never a 500 or an
unexpected exception; names and values in any script or with HTML in
them are stored as given and shown escaped; and the documents stored
before (jobs, factories, scheduler items) are unchanged afterwards.
"""
import urllib.parse

import transaction
import webtest

from m01.remote.interfaces import IRemoteProcessor
from m01.remote.job import MAX_BSON_SIZE
from m01.remote.scheduler import Cron, Delay
from support.faults import jobs as fault_jobs
from support.faults.app import pagesApp
from support.faults.harness import Run

HTML = '<script>alert("m01")</script>'
ESCAPED = '&lt;script&gt;'
UNICODE = 'ünïcødé-名前-😀'
OVERSIZED = 'x' * (MAX_BSON_SIZE + 1)
UNKNOWN_ID = 'f' * 24
#: What a browser asks for: error pages then come as HTML, not text.
BROWSER = {'Accept': 'text/html,application/xhtml+xml,*/*;q=0.8'}


class Cases:
    """Runs the cases and keeps what went wrong."""

    def __init__(self, app):
        self.app = app
        self.count = 0
        self.failures = []

    def fail(self, label, why):
        self.failures.append('%s: %s' % (label, why))

    # the API

    def refused(self, label, call, errors=(ValueError, KeyError)):
        """``call()`` must raise one of ``errors`` with a message."""
        self.count += 1
        try:
            call()
        except errors as e:
            if not str(e).strip():
                self.fail(label, '%s without a message' % type(e).__name__)
        except Exception as e:
            self.fail(label, 'unexpected %s: %s' % (type(e).__name__, e))
        else:
            self.fail(label, 'accepted')
        finally:
            transaction.abort()

    def accepted(self, label, call):
        """``call()`` must work (names in any script, HTML as text)."""
        self.count += 1
        try:
            return call()
        except Exception as e:
            self.fail(label, 'refused: %s: %s' % (type(e).__name__, e))
            transaction.abort()

    # the pages

    def token(self):
        page = self.app.get('/remote/jobs/add')
        return page.html.find('input', {'name': 'csrf_token'})['value']

    def page(self, label, method, url, params=None, expect=(400, 404),
             csrf=True):
        """A request that must answer one of ``expect`` (a 2xx or 3xx is
        given as such), never a 500, and never echo raw HTML. The path
        is sent percent-encoded, as a browser sends it."""
        self.count += 1
        params = dict(params or {})
        if method == 'POST' and csrf:
            params['csrf_token'] = self.token()
        url = urllib.parse.quote(url, safe='/%?=&')
        try:
            if method == 'POST':
                response = self.app.post(url, params, status='*',
                                         headers=BROWSER)
            else:
                response = self.app.get(url, params, status='*',
                                        headers=BROWSER)
        except Exception as e:
            self.fail(label, 'the application raised %s: %s'
                      % (type(e).__name__, str(e)[:200]))
            return None
        if response.status_int >= 500 or response.status_int not in expect:
            self.fail(label, 'answered %s, expected %s'
                      % (response.status, expect))
        if response.content_type == 'text/html' and HTML in response.text:
            self.fail(label, 'the page shows HTML from the input unescaped')
        return response


def snapshot(processor):
    """Every stored document the cases must not change."""
    database = processor.database
    return {name: {str(doc['_id']): doc for doc in database[name].find()}
            for name in (processor.jobsCollection.name,
                         processor.factoriesCollection.name,
                         processor.schedulerCollection.name)}


def damaged(before, after):
    """Documents of ``before`` changed or gone in ``after``."""
    changes = []
    for collection, documents in before.items():
        for key, document in documents.items():
            if after[collection].get(key) != document:
                changes.append('%s %s' % (collection, key))
    return changes


def apiCases(cases, rp, stored):
    jobid, itemid = stored['job'], stored['item']
    refused = cases.refused
    refused('unknown factory', lambda: rp.addJob('no-such-factory', 1))
    refused('HTML factory name unknown', lambda: rp.addJob(HTML, 1))
    refused('input with a set', lambda: rp.addJob('record', {'a': {1, 2}}))
    refused('input with an object', lambda: rp.addJob('record', object()))
    refused('input with a non-text key', lambda: rp.addJob('record', {1: 2}))
    refused('input integer over 64 bits',
            lambda: rp.addJob('record', 2 ** 70))
    refused('input with a NUL in a key',
            lambda: rp.addJob('record', {'a\0b': 1}))
    refused('input over 16 MB', lambda: rp.addJob('record', OVERSIZED))
    refused('input over 16 MB, immediate',
            lambda: rp.addJob('record', OVERSIZED, immediate=True))
    refused('empty factory name',
            lambda: rp.addJobFactory(' ', fault_jobs.RecordedJob()))
    refused('factory that is not a job',
            lambda: rp.addJobFactory('x', object()))
    refused('factory with an unknown field',
            lambda: fault_jobs.RecordedJob({'colour': 'red'}))
    refused('factory with negative retries',
            lambda: fault_jobs.RecordedJob({'maxRetries': -1}))
    refused('cron minute 61', lambda: Cron.fromExpression(
        '61 * * * *', jobName='record'))
    refused('cron with three fields', lambda: Cron.fromExpression(
        '* * *', jobName='record'))
    refused('cron step 0', lambda: Cron.fromExpression(
        '*/0 * * * *', jobName='record'))
    refused('cron field list out of range', lambda: Cron(
        {'jobName': 'record', 'hour': [24]}))
    refused('cron weekday 7', lambda: Cron(
        {'jobName': 'record', 'dayOfWeek': [7]}))
    refused('cron unknown time zone', lambda: Cron.fromExpression(
        '* * * * *', jobName='record', timezone='Mars/Olympus_Mons'))
    refused('cron HTML time zone', lambda: Cron.fromExpression(
        '* * * * *', jobName='record', timezone=HTML))
    refused('delay 0', lambda: Delay({'jobName': 'record', 'delay': 0}))
    refused('delay as text', lambda: Delay({'jobName': 'record',
                                            'delay': '5'}))
    refused('delay over 64 bits', lambda: rp.addScheduler(Delay(
        {'jobName': 'record', 'delay': 2 ** 70})))
    refused('retry delay over 64 bits', lambda: rp.addScheduler(Delay(
        {'jobName': 'record', 'delay': 5, 'retryDelay': 2 ** 70})))
    refused('factory retries over 64 bits', lambda: rp.addJobFactory(
        'huge', fault_jobs.RecordedJob({'maxRetries': 2 ** 70})))
    refused('item without a job name', lambda: Delay({'delay': 5}))
    refused('item with an unknown field', lambda: Delay(
        {'jobName': 'record', 'delay': 5, 'colour': 'red'}))
    for label, key in (('malformed job id', 'not-an-id'),
                       ('unknown job id', UNKNOWN_ID),
                       ('non-ASCII job id', UNICODE), ('HTML job id', HTML)):
        refused(label + ' (get)', lambda key=key: rp.jobs[key])
        refused(label + ' (status)', lambda key=key: rp.getJobStatus(key))
        refused(label + ' (cancel)', lambda key=key: rp.cancelJob(key))
        refused(label + ' (retry)', lambda key=key: rp.retryJob(key))
        refused(label + ' (remove)', lambda key=key: rp.removeJob(key))
        refused(label + ' (item)', lambda key=key: rp.scheduler[key])
        refused(label + ' (remove item)',
                lambda key=key: rp.scheduler.remove(key))
        refused(label + ' (update item)',
                lambda key=key: rp.scheduler.update(key, title='x'))
    refused('retry a queued job', lambda: rp.retryJob(jobid))
    refused('remove jobs of an unknown status',
            lambda: rp.removeJobs(['nonsense']))
    refused('query sorted by an unknown field',
            lambda: rp.jobs.query(sort='input'))
    refused('query with a negative skip', lambda: rp.jobs.query(skip=-1))
    refused('update an item\'s id', lambda: rp.scheduler.update(
        itemid, _id='x'))
    refused('update an item with a bad delay', lambda: rp.scheduler.update(
        itemid, delay=-5))
    # Accepted: any script, and HTML as plain text, everywhere.
    added = []
    cases.accepted('non-ASCII factory name', lambda: rp.addJobFactory(
        UNICODE, fault_jobs.RecordedJob({'title': UNICODE})))
    cases.accepted('HTML factory name', lambda: rp.addJobFactory(
        HTML, fault_jobs.RecordedJob({'title': HTML})))
    for name, input in ((UNICODE, {UNICODE: UNICODE}), (HTML, {HTML: HTML}),
                        ('record', HTML)):
        added.append(cases.accepted('job %r' % name[:12], lambda name=name,
                                    input=input: rp.addJob(
                                        name, input, immediate=True)))
    added.append(cases.accepted('HTML scheduler item', lambda: rp.addScheduler(
        Delay({'jobName': HTML, 'delay': 3600, 'title': HTML,
               'description': HTML, 'input': {HTML: HTML}}))))
    added.append(cases.accepted('non-ASCII scheduler item', lambda:
                                rp.addScheduler(Cron.fromExpression(
                                    '0 3 * * *', jobName=UNICODE,
                                    title=UNICODE, description=UNICODE,
                                    timezone='Asia/Tokyo'))))
    for jobid in added[:3]:
        if jobid and rp.jobs[jobid].input not in ({UNICODE: UNICODE},
                                                  {HTML: HTML}, HTML):
            cases.fail('stored input', 'job %s input changed' % jobid)
    return [key for key in added if key]


def pageCases(cases, rp, stored):
    # added: the non-ASCII job, the HTML job, the job with HTML input,
    # the HTML item, the non-ASCII item (fewer if some were refused).
    added = stored['added'] + [stored['job']] * 5
    jobid, itemid, htmlJob, htmlItem = (
        stored['job'], stored['item'], added[1], added[3])
    page = cases.page
    for label, key in (('malformed', 'not-an-id'), ('unknown', UNKNOWN_ID),
                       ('non-ASCII', UNICODE), ('HTML', HTML),
                       ('dot-dot', '..%2F..%2Fetc')):
        page('job page, %s id' % label, 'GET', '/remote/jobs/' + key,
             expect=(404,))
        page('cancel, %s id' % label, 'POST', '/remote/jobs/%s/cancel' % key,
             expect=(404,))
        page('scheduler item, %s id' % label, 'GET',
             '/remote/scheduler/' + key, expect=(404,))
        page('edit item, %s id' % label, 'POST',
             '/remote/scheduler/%s/edit' % key, {'jobName': 'record',
                                                 'delay': '5'},
             expect=(404,))
    page('unknown factory page', 'GET', '/remote/factories/' + HTML,
         expect=(404,))
    page('unknown view of a job', 'GET', '/remote/jobs/%s/nonsense' % jobid,
         expect=(404,))
    for value, expect in (('abc', (400,)), ('1.5', (400,)), ('1e3', (400,)),
                          ('-5', (200,)), ('0', (200,)),
                          (str(10 ** 40), (200,)), ('9' * 400, (200, 400)),
                          (UNICODE, (400,)), (HTML, (400,))):
        page('jobs page=%s' % value[:12], 'GET', '/remote/jobs',
             {'page': value}, expect=expect)
    for name, value in (('status', HTML), ('sort', 'input'),
                        ('order', UNICODE)):
        page('jobs %s=%s' % (name, value[:12]), 'GET', '/remote/jobs',
             {name: value}, expect=(400,))
    page('jobs filtered by a non-ASCII name', 'GET', '/remote/jobs',
         {'name': UNICODE}, expect=(200,))
    page('jobs filtered by an HTML name', 'GET', '/remote/jobs',
         {'name': HTML}, expect=(200,))
    add = '/remote/jobs/add'
    page('add: unknown factory', 'POST', add, {'name': 'nope'})
    page('add: HTML factory name', 'POST', add, {'name': HTML + 'x'})
    page('add: no factory', 'POST', add, {'name': ''})
    page('add: bad JSON', 'POST', add, {'name': 'record', 'input': '{'})
    page('add: HTML as JSON', 'POST', add, {'name': 'record', 'input': HTML})
    page('add: integer over 64 bits', 'POST', add,
         {'name': 'record', 'input': str(2 ** 70)})
    page('add: input over 16 MB', 'POST', add,
         {'name': 'record', 'input': '"%s"' % OVERSIZED})
    page('add: no CSRF token', 'POST', add, {'name': 'record', 'input': '1'},
         csrf=False)
    page('add: non-ASCII input', 'POST', add,
         {'name': UNICODE, 'input': '"%s"' % UNICODE}, expect=(303,))
    page('add: HTML input', 'POST', add,
         {'name': HTML, 'input': '"%s"' % HTML.replace('"', '\\"')},
         expect=(303,))
    page('bulk delete: processing jobs', 'POST', '/remote/jobs/bulk',
         {'action': 'delete', 'status': 'processing', 'all': '1'},
         expect=(303,))
    page('bulk delete: HTML status', 'GET', '/remote/jobs/bulk',
         {'action': 'delete', 'status': HTML, 'all': '1'}, expect=(400,))
    cron = '/remote/scheduler/add-cron'
    for label, fields in (
            ('minute 61', {'minute': '61'}),
            ('minute range 5-1', {'minute': '5-1'}),
            ('minute text', {'minute': 'abc'}),
            ('HTML minute', {'minute': HTML}),
            ('weekday 7', {'dayOfWeek': '7'}),
            ('expression out of range', {'expression': '61 * * * *'}),
            ('expression of three fields', {'expression': '* * *'}),
            ('HTML expression', {'expression': HTML}),
            ('unknown time zone', {'timezone': 'Mars/Olympus_Mons'}),
            ('HTML time zone', {'timezone': HTML}),
            ('HTML job name', {'jobName': HTML + 'x'}),
            ('bad input JSON', {'input': '{'}),
            ('retry delay 0', {'retryDelay': '0'}),
            ('retry delay text', {'retryDelay': UNICODE})):
        params = dict({'jobName': 'record', 'title': HTML,
                       'description': HTML}, **fields)
        page('add cron: ' + label, 'POST', cron, params, expect=(400,))
    delay = '/remote/scheduler/add-delay'
    for label, fields in (('delay -1', {'delay': '-1'}),
                          ('delay 0', {'delay': '0'}),
                          ('delay text', {'delay': 'soon'}),
                          ('delay empty', {'delay': ''}),
                          ('HTML delay', {'delay': HTML}),
                          ('delay over 64 bits', {'delay': str(2 ** 70)})):
        params = dict({'jobName': 'record', 'title': HTML}, **fields)
        page('add delay: ' + label, 'POST', delay, params, expect=(400,))
    page('edit item: bad delay', 'POST', '/remote/scheduler/%s/edit'
         % itemid, {'jobName': 'record', 'delay': '-3', 'title': HTML},
         expect=(400,))
    page('edit item: unknown HTML job name', 'POST',
         '/remote/scheduler/%s/edit' % itemid,
         {'jobName': HTML + 'x', 'delay': '5'}, expect=(400,))
    # Pages showing the stored HTML and non-ASCII values, escaped.
    for label, url in (('overview', '/remote/'), ('jobs', '/remote/jobs'),
                       ('factories', '/remote/factories'),
                       ('scheduler', '/remote/scheduler'),
                       ('job with HTML', '/remote/jobs/%s' % htmlJob),
                       ('HTML item', '/remote/scheduler/%s' % htmlItem),
                       ('add form', '/remote/jobs/add?name=' + HTML)):
        response = page('show ' + label, 'GET', url, expect=(200,))
        if response is not None and label in (
                'factories', 'scheduler', 'job with HTML', 'HTML item') \
                and ESCAPED not in response.text:
            cases.fail('show ' + label, 'the stored HTML is not shown')


def run(env, result):
    """The scenario; ``result`` is a ``faults.Result``."""
    scenario = Run(env.uri, env.workdir, 'badinput')
    try:
        wsgi = pagesApp(env.uri, scenario.databaseName)
        rp = wsgi.registry.getUtility(IRemoteProcessor)
        app = webtest.TestApp(wsgi, extra_environ={'REMOTE_USER': 'admin'})
        stored = {'job': rp.addJob('record', {'kept': True}, immediate=True),
                  'item': rp.addScheduler(Delay({
                      'jobName': 'record', 'delay': 3600,
                      'title': 'kept'}))}
        before = snapshot(rp)
        cases = Cases(app)
        stored['added'] = apiCases(cases, rp, stored)
        pageCases(cases, rp, stored)
        after = snapshot(rp)
        changes = damaged(before, after)
        # Bad input stores nothing: new documents are those accepted.
        new = sum(len(after[c]) - len(before[c]) for c in before)
        accepted = len(stored['added']) + 2 + 2  # + 2 factories, 2 pages
        result.jobs = cases.count
        result.completed = cases.count - len(cases.failures)
        result.lost = len(changes)
        result.problems.extend(cases.failures)
        result.check(not changes, 'stored documents changed: %s'
                     % ', '.join(changes))
        result.check(new == accepted, '%d documents stored, %d accepted'
                     % (new, accepted))
        result.details.update(cases=cases.count,
                              failures=len(cases.failures),
                              stored_before=sum(map(len, before.values())),
                              stored_after=sum(map(len, after.values())))
    finally:
        transaction.abort()
        scenario.close()
    return result
