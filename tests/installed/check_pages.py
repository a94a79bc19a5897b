"""Renders every page of the management UI of the host site
(``hostsite.py``) with WebTest, and checks a job handed over by a view
of the site's own is stored under pyramid_tm's explicit manager.

"Every page" is read from the application's registry: each GET view of
the add-on's route, on an example of its context. A page whose context
has no example here fails the check, so a new page cannot be missed.

    python check_pages.py [--installed]

``--installed`` also asserts that m01.remote and its templates were
loaded from site-packages, not from a source tree.
"""
import importlib
import os
import sys
import sysconfig

import webtest
from pyramid.interfaces import IRouteRequest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import hostsite  # noqa: E402

import m01.remote  # noqa: E402
from m01.remote import interfaces  # noqa: E402

USER = {'X-Site-User': 'operator'}
#: Pages that need parameters to show themselves rather than redirect.
QUERIES = {(interfaces.IJobContainer, 'bulk'): 'action=cancel&all=1',
           (interfaces.IRemoteProcessor, 'control-worker'):
           'process=nobody&action=quiet',
           (interfaces.IJobFactoryContainer, 'pause-queue'): 'queue=default',
           (interfaces.IJobFactoryContainer, 'resume-queue'):
           'queue=default'}
#: Pages that answer otherwise than with themselves: the API's address
#: leads to its index, the metrics' (off here) says how to turn them on.
STATUSES = {(interfaces.IRemoteProcessor, 'api'): 303,
            (interfaces.IRemoteProcessor, 'metrics'): 404}


def site_packages_check():
    site_packages = os.path.realpath(sysconfig.get_paths()['purelib'])
    for name in ('m01.remote', 'm01.remote.views', 'm01.remote.templates'):
        module = importlib.import_module(name)
        path = os.path.realpath(module.__file__)
        assert path.startswith(site_packages + os.sep), (
            '%s was loaded from %s, not from %s'
            % (module.__name__, path, site_packages))
    print('m01.remote loaded from %s' % site_packages)


def page_views(registry):
    """``(context interface, view name)`` of every GET view of the
    add-on's route."""
    route = registry.queryUtility(IRouteRequest, name=m01.remote.ROUTE_NAME)
    assert route is not None, 'the m01.remote route has no views'
    pages = set()
    for intr in registry.introspector.get_category('views'):
        view = intr['introspectable']
        if view['route_name'] != m01.remote.ROUTE_NAME:
            continue
        methods = view['request_methods']
        if methods is not None and 'GET' not in methods:
            continue
        context = view['context']
        if view.get('exception_only') or (
                isinstance(context, type) and
                issubclass(context, BaseException)):
            continue   # an error page, not a page of its own
        # A factory is a job in the factories' container.
        if view.get('containment') is interfaces.IJobFactoryContainer:
            context = interfaces.IJobFactoryContainer, 'factory'
        pages.add((context, view['name']))
    return pages


def examples(app, rp):
    """An example URL path of each context a page may have, the job the
    site's view added, and the id of a workflow (a chain of two)."""
    jobid = app.post('/greet', {'name': 'pages'}).json['jobid']
    workflow = rp.addChain([('greet', {'name': 'first'}),
                            ('greet', {'name': 'second'})])['workflow']
    rp.transactionManager.commit()
    item = rp.scheduler.values()[0]
    prefix = '/queue'
    return {
        interfaces.IRemoteProcessor: prefix + '/',
        interfaces.IJobContainer: prefix + '/jobs',
        interfaces.IJob: prefix + '/jobs/' + jobid,
        interfaces.IJobFactoryContainer: prefix + '/factories',
        (interfaces.IJobFactoryContainer, 'factory'):
        prefix + '/factories/greet',
        interfaces.IScheduler: prefix + '/scheduler',
        interfaces.ISchedulerItem: prefix + '/scheduler/' + item.__name__,
    }, jobid, workflow


def check(installed=False):
    if installed:
        site_packages_check()
    wsgi = hostsite.main()
    app = webtest.TestApp(wsgi)
    rp = wsgi.registry.getUtility(interfaces.IRemoteProcessor)
    paths, jobid, workflow = examples(app, rp)
    queries = dict(QUERIES)
    queries[interfaces.IJobContainer, 'workflow'] = 'id=' + workflow
    # The site's view handed the job over in the request's transaction,
    # under the explicit manager: it is stored.
    assert rp.getJobStatus(jobid) == 'queued', rp.getJobStatus(jobid)
    rendered = []
    for context, name in sorted(page_views(wsgi.registry),
                                key=lambda page: (str(page[0]), page[1])):
        base = paths.get(context)
        assert base is not None, (
            'no example of %r for the page %r: add one to this check'
            % (context, name))
        path = base.rstrip('/') + ('/' + name if name else
                                   ('/' if base.endswith('/') else ''))
        if (context, name) in queries:
            path += '?' + queries[context, name]
        response = app.get(path, headers=USER, expect_errors=True)
        assert response.status_int == STATUSES.get((context, name), 200), (
            path, response.status)
        if response.content_type == 'text/html':
            assert '</html>' in response.text, path
        rendered.append(path)
    # The JSON API answers, its OpenAPI document read from the package.
    document = app.get('/queue/api/openapi.json', headers=USER).json
    assert document['openapi'].startswith('3.'), document['openapi']
    assert app.get('/queue/api/overview', headers=USER).json['total'] >= 1
    rendered += ['/queue/api/openapi.json', '/queue/api/overview']
    # Anonymous visitors are refused, by the site's policy.
    app.get('/queue/jobs', status=403)
    # The jobs run (the chain's second waits for the first's commit),
    # and the site's job's page shows its outcome.
    assert rp.processJobs() == 2
    rp.transactionManager.commit()
    assert rp.getJobStatus(jobid) == 'completed'

    page = app.get('/queue/jobs/' + jobid, headers=USER)
    assert 'Hello, pages' in page.text
    print('rendered %d pages: %s' % (len(rendered), ' '.join(rendered)))
    return rendered


if __name__ == '__main__':
    check(installed='--installed' in sys.argv[1:])
