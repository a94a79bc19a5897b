"""The JSON API under the route prefix (``/remote/api/...``): every
listing, detail, action and the stats of the pages, through the same
layer (``m01.remote.operations``) and with the same permission.

A state change (POST, DELETE) needs the CSRF token in the
``X-CSRF-Token`` header (``GET /remote/api/csrf`` gives it); a bad
request is a 4xx whose body is ``{"error": {"status", "title",
"detail"}}``. ``openapi.json`` in this package documents it all, and is
served as ``/remote/api/openapi.json``.
"""
import importlib.resources
import json

from pyramid.csrf import check_csrf_origin, check_csrf_token, get_csrf_token
from pyramid.httpexceptions import (
    HTTPBadRequest,
    HTTPException,
    HTTPForbidden,
    HTTPNotFound,
    HTTPRequestEntityTooLarge,
)
from pyramid.response import Response

from m01.remote import operations
from m01.remote.interfaces import QUEUED
from m01.remote.job import DuplicateJobKeyError
from m01.remote.limits import MAX_JSON_TEXT, loadJSON
from m01.remote.operations import BulkRequest, JobFilter, shapes
from m01.remote.operations.actions import WORKER_ACTIONS
from m01.remote.settings import get_remote_settings
from m01.remote.views.cronwords import describe
from m01.remote.views.itemform import kindOf
from m01.remote.views.routes import root_factory

#: route name -> (pattern after the prefix, {method: view name})
ROUTES = {
    'index': ('/api/', {'GET': 'index'}),
    'overview': ('/api/overview', {'GET': 'overview'}),
    'stats': ('/api/stats', {'GET': 'stats'}),
    'csrf': ('/api/csrf', {'GET': 'csrf'}),
    'openapi': ('/api/openapi.json', {'GET': 'openapi'}),
    'jobs': ('/api/jobs', {'GET': 'jobs', 'POST': 'addJob'}),
    'bulk': ('/api/jobs/bulk', {'GET': 'countBulk', 'POST': 'bulk'}),
    'job': ('/api/jobs/{jobid}', {'GET': 'job', 'DELETE': 'deleteJob'}),
    'jobAction': ('/api/jobs/{jobid}/{action}', {'POST': 'jobAction'}),
    'factories': ('/api/factories', {'GET': 'factories'}),
    'factoryAction': ('/api/factories/{name}/{action}',
                      {'POST': 'factoryAction'}),
    'scheduler': ('/api/scheduler', {'GET': 'scheduler'}),
    'item': ('/api/scheduler/{itemid}', {'DELETE': 'deleteItem'}),
    'itemAction': ('/api/scheduler/{itemid}/{action}',
                   {'POST': 'itemAction'}),
    'workflows': ('/api/workflows', {'POST': 'addWorkflow'}),
    'workflow': ('/api/workflows/{workflowid}', {'GET': 'workflow'}),
    'queues': ('/api/queues', {'GET': 'queues'}),
    'queueAction': ('/api/queues/{name}/{action}', {'POST': 'queueAction'}),
    'workers': ('/api/workers', {'GET': 'workers'}),
    'workerAction': ('/api/workers/{processId}/{action}',
                     {'POST': 'workerAction'}),
}
ROUTE_PREFIX = 'm01.remote.api.'
#: The methods that change something: they need the CSRF token.
CHANGES = ('POST', 'DELETE')
ADD_OPTIONS = ('delay', 'priority', 'timeout', 'key', 'keyPeriod',
               'debounce', 'dependsOn', 'onFailure', 'queue')
#: The fields of a workflow to add.
WORKFLOW_FIELDS = ('kind', 'jobs', 'callback', 'onFailure')
#: The parameters of the job listing beside the filter's.
LISTING_PARAMS = ('sort', 'order', 'page', 'pageSize')


def routeName(key):
    return ROUTE_PREFIX + key


def bad(message):
    return HTTPBadRequest(str(message))


def intParam(params, name, default, low, high):
    raw = params.get(name, '')
    if not str(raw).strip():
        return default
    try:
        value = int(raw)
    except ValueError:
        raise bad('%s must be a whole number, not %r' % (name, raw))
    if not low <= value <= high:
        raise bad('%s must be from %d to %d, not %d' % (name, low, high,
                                                        value))
    return value


def parsed(parse, *args):
    """What ``parse`` reads of a request; a 400 naming what it refused."""
    try:
        return parse(*args)
    except ValueError as e:
        raise bad(e)


def jsonBody(request):
    """The request's JSON object; 400 for anything else."""
    if request.content_length and request.content_length > MAX_JSON_TEXT:
        raise HTTPRequestEntityTooLarge('The body has more than %d bytes'
                                        % MAX_JSON_TEXT)
    try:
        body = loadJSON(request.body.decode('utf-8') or '{}', 'The body')
    except (ValueError, UnicodeDecodeError) as e:
        raise bad(e)
    if not isinstance(body, dict):
        raise bad('The body must be a JSON object')
    return body


class ApiViews:
    """The views of the API routes; the context is the processor bound
    to the request's transaction manager."""

    def __init__(self, context, request):
        self.request = request
        self.processor = request.remote_processor
        self.queries = operations.queries(self.processor)
        self.actions = operations.actions(self.processor)
        if request.method in CHANGES:
            # The token in the header, as the pages' forms post it.
            check_csrf_origin(request)
            check_csrf_token(request, token='csrf_token',
                             header='X-CSRF-Token')

    def _do(self, change, *args, **kw):
        try:
            return change(*args, **kw)
        except KeyError as e:
            raise HTTPNotFound('Not found: %s' % (e.args[0] if e.args
                                                  else e))
        except ValueError as e:
            raise bad(e)

    # reads

    def index(self):
        """What the API offers: each path with its methods and what it
        does (as the OpenAPI document says), and where that document and
        the pages are."""
        base = self.request.route_url(routeName('index')).rstrip('/')
        base = base[:-len('/api')]
        endpoints = []
        for path, methods in spec()['paths'].items():
            endpoint = {'path': path,
                        'methods': sorted(method.upper()
                                          for method in methods),
                        'summary': '; '.join(
                            operation.get('summary', '')
                            for operation in methods.values())}
            if '{' not in path and 'get' in methods:
                endpoint['url'] = base + path
            endpoints.append(endpoint)
        return {'title': 'The JSON API of m01.remote',
                'openapi': self.request.route_url(routeName('openapi')),
                'pages': base + '/',
                'csrf': self.request.route_url(routeName('csrf')),
                'endpoints': endpoints}

    def overview(self):
        data = self.queries.overview()
        return {'counts': data['counts'], 'total': data['total'],
                'threads': data['threads'],
                'workersAlive': data['workersAlive'],
                'latestFailures': [shapes.jobSummary(job)
                                   for job in data['latestFailures']]}

    def stats(self):
        window = self.request.GET.get('window', 'hour')
        data = self._do(self.queries.stats, window)
        data['latestFailures'] = [shapes.jobSummary(job)
                                  for job in data['latestFailures']]
        return data

    def csrf(self):
        return {'token': get_csrf_token(self.request),
                'header': 'X-CSRF-Token'}

    def openapi(self):
        return Response(body=specText().encode('utf-8'),
                        content_type='application/json', charset='utf-8')

    def jobs(self):
        params = self.request.GET
        selected = parsed(JobFilter.fromParams, params, LISTING_PARAMS)
        sort = params.get('sort', 'created')
        order = params.get('order', 'desc')
        try:
            sort, descending = operations.checkSort(sort, order)
        except ValueError as e:
            raise bad(e)
        page = intParam(params, 'page', 1, 1, operations.filters.MAX_PAGE)
        size = intParam(params, 'pageSize', 50, 1, operations.MAX_PAGE_SIZE)
        shown = self._do(self.queries.jobs, selected, sort, descending,
                         page, size)
        return {'jobs': [shapes.jobSummary(job) for job in shown.jobs],
                'page': shown.page, 'pages': shown.pages,
                'total': shown.total, 'pageSize': shown.pageSize,
                'filter': selected.params(), 'sort': sort, 'order': order}

    def job(self):
        jobid = self.request.matchdict['jobid']
        job = self._do(self.queries.job, jobid)
        detail = shapes.jobDetail(job)
        detail.update(shapes.relationsJSON(
            self._do(self.queries.relations, jobid)))
        return detail

    def workflow(self):
        params = self.request.GET
        page = intParam(params, 'page', 1, 1, operations.filters.MAX_PAGE)
        size = intParam(params, 'pageSize', 50, 1, operations.MAX_PAGE_SIZE)
        data = self._do(self.queries.workflow,
                        self.request.matchdict['workflowid'], page, size)
        data['jobs'] = [shapes.relatedJSON(row) for row in data['jobs']]
        return data

    def factories(self):
        return {'factories': [shapes.factoryJSON(info)
                              for info in self.queries.factories()]}

    def queues(self):
        return {'queues': [shapes.queueJSON(info)
                           for info in self.queries.queues()]}

    def scheduler(self):
        page = intParam(self.request.GET, 'page', 1, 1,
                        operations.filters.MAX_PAGE)
        total, items = self._do(self.queries.schedulerItems, page, 100)
        return {'total': total, 'page': page,
                'items': [shapes.schedulerItemJSON(item, kindOf(item),
                                                    describe(item))
                          for item in items]}

    def workers(self):
        return {'workers': [shapes.workerJSON(worker)
                            for worker in self.queries.workers()]}

    # changes

    def addJob(self):
        body = jsonBody(self.request)
        unknown = sorted(set(body) - {'name', 'input'} - set(ADD_OPTIONS))
        if unknown:
            raise bad('Unknown field%s %s; a job takes name, input, %s' % (
                's' if len(unknown) > 1 else '', ', '.join(unknown),
                ', '.join(ADD_OPTIONS)))
        if not isinstance(body.get('name'), str):
            raise bad('name must be the name of a job factory')
        options = {key: body[key] for key in ADD_OPTIONS if key in body}
        try:
            jobid = self.actions.addJob(body['name'], body.get('input'),
                                        onDuplicateKey='raise', **options)
        except DuplicateJobKeyError as e:
            # A live job holds the key: it is the job asked for, not a new
            # one (queued while the request adding it has not committed).
            return {'id': e.jobid, 'existing': True,
                    'status': self.processor.getJobStatus(e.jobid) or
                    QUEUED}
        except ValueError as e:
            raise bad(e)
        if body.get('debounce') is not None and jobid not in {
                str(document['_id'])
                for document in self.processor.pendingJobDocuments()}:
            # The queued job holding the key was moved, not a new one.
            return {'id': jobid, 'existing': True, 'status': QUEUED}
        self.request.response.status = 201
        return {'id': jobid, 'existing': False,
                'status': self.processor.getJobStatus(jobid)}

    def addWorkflow(self):
        body = jsonBody(self.request)
        unknown = sorted(set(body) - set(WORKFLOW_FIELDS))
        if unknown:
            raise bad('Unknown field %s; a workflow takes %s'
                      % (', '.join(unknown), ', '.join(WORKFLOW_FIELDS)))
        added = self._do(self.actions.addWorkflow, body.get('kind'),
                         body.get('jobs'), body.get('callback'),
                         body.get('onFailure'))
        self.request.response.status = 201
        return added

    def jobAction(self):
        action = self.request.matchdict['action']
        changes = {'cancel': self.actions.cancelJob,
                   'retry': self.actions.retryJob}
        if action not in changes:
            raise HTTPNotFound('A job is cancelled or retried, not %r'
                               % action)
        jobid = self.request.matchdict['jobid']
        self._do(changes[action], jobid)
        return {'id': jobid, 'status': self.processor.getJobStatus(jobid)}

    def deleteJob(self):
        jobid = self.request.matchdict['jobid']
        self._do(self.actions.deleteJob, jobid)
        return {'id': jobid, 'deleted': True}

    def countBulk(self):
        request = parsed(BulkRequest.fromParams, self.request.GET)
        count = self._do(self.actions.countBulk, request.action,
                         request.jobFilter, request.jobids, all=request.all)
        return {'action': request.action, 'count': count,
                'limit': operations.BULK_LIMITS[request.action]}

    def bulk(self):
        request = parsed(BulkRequest.fromJSON, jsonBody(self.request))
        result = self._do(self.actions.bulk, request.action,
                          request.jobFilter, request.jobids, all=request.all)
        return {'action': result.action, 'done': result.done,
                'refused': result.refused, 'more': result.more}

    def factoryAction(self):
        action = self.request.matchdict['action']
        changes = {'pause': self.actions.pauseFactory,
                   'resume': self.actions.resumeFactory}
        if action not in changes:
            raise HTTPNotFound('A factory is paused or resumed, not %r'
                               % action)
        name = self.request.matchdict['name']
        self._do(changes[action], name)
        return {'name': name, 'paused': action == 'pause'}

    def queueAction(self):
        action = self.request.matchdict['action']
        name = self.request.matchdict['name']
        if action in ('pause', 'resume'):
            change = self.actions.pauseQueue if action == 'pause' \
                else self.actions.resumeQueue
            self._do(change, name)
            return {'name': name, 'paused': action == 'pause'}
        if action == 'limit':
            body = jsonBody(self.request)
            if not isinstance(body, dict) or set(body) != {'rateLimit'}:
                raise bad('The body is {"rateLimit": [starts, seconds]} '
                          '(or null for no limit)')
            self._do(self.actions.setQueueRateLimit, name,
                     body['rateLimit'])
            return {'name': name,
                    'rateLimit': self.processor.queueSettings.rateLimit(
                        name, fresh=True)}
        raise HTTPNotFound('A queue is paused, resumed or limited, not %r'
                           % action)

    def itemAction(self):
        action = self.request.matchdict['action']
        itemid = self.request.matchdict['itemid']
        if action in ('activate', 'deactivate'):
            self._do(self.actions.setSchedulerItemActive, itemid,
                     action == 'activate')
            return {'id': itemid, 'active': action == 'activate'}
        if action == 'run':
            jobid = self._do(self.actions.runSchedulerItem, itemid)
            return {'id': itemid, 'job': jobid}
        raise HTTPNotFound('A scheduler item is activated, deactivated or '
                           'run, not %r' % action)

    def deleteItem(self):
        itemid = self.request.matchdict['itemid']
        self._do(self.actions.deleteSchedulerItem, itemid)
        return {'id': itemid, 'deleted': True}

    def workerAction(self):
        action = self.request.matchdict['action']
        if action not in WORKER_ACTIONS:
            raise HTTPNotFound('A process is asked to %s, not %r'
                               % (', '.join(WORKER_ACTIONS), action))
        processId = self.request.matchdict['processId']
        self._do(self.actions.controlWorker, processId, action)
        return {'id': processId, 'control': action}


def errorView(context, request):
    """A 4xx of an API route as a JSON body."""
    status = getattr(context, 'code', 400)
    title = getattr(context, 'title', 'Bad Request')
    detail = getattr(context, 'detail', None) or (
        'Permission denied' if isinstance(context, HTTPForbidden) else '')
    response = Response(
        body=shapes.dumps(shapes.errorBody(status, title,
                                             str(detail))).encode('utf-8'),
        status=status, content_type='application/json', charset='utf-8')
    return response


_spec = None


def specText():
    """The OpenAPI document shipped with the package."""
    global _spec
    if _spec is None:
        _spec = importlib.resources.files('m01.remote').joinpath(
            'openapi.json').read_text(encoding='utf-8')
    return _spec


def spec():
    return json.loads(specText())


def includeme(config):
    """Add the API's routes (before the pages' traversal route, which
    would match their paths too) and views."""
    settings = get_remote_settings(config.registry)
    prefix = '' if settings.route_prefix == '/' else settings.route_prefix
    config.add_renderer(shapes.RENDERER, shapes.rendererFactory)
    for key, (pattern, methods) in ROUTES.items():
        config.add_route(routeName(key), prefix + pattern,
                         factory=root_factory)
        for method, attr in methods.items():
            config.add_view(ApiViews, attr=attr, route_name=routeName(key),
                            request_method=method,
                            renderer=shapes.RENDERER,
                            permission=settings.permission)
        for error in (HTTPException, UnicodeDecodeError):
            config.add_exception_view(errorView, context=error,
                                      route_name=routeName(key))
