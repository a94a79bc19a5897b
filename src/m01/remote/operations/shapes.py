"""What the JSON API answers: jobs, factories, scheduler items, workers
and stats as JSON objects, the renderer, and errors as JSON bodies.

A job's input and output are included whole while their JSON text is at
most ``SHOWN_VALUE`` (64 KB) long; a larger one is left out
(``inputOmitted``/``outputOmitted``: download it from the job's page),
so a job's answer stays small whatever it holds. Errors and tracebacks
are cut as the job page cuts them.
"""
import datetime
import itertools
import json
import math

from m01.remote.limits import (
    MAX_DOCUMENT_DEPTH,
    MAX_ERRORS_SHOWN,
    SHOWN_ERROR,
    SHOWN_TRACEBACK,
    SHOWN_VALUE,
    nestedDeeper,
    shorten,
)
from m01.remote.queue.tracing import traceIdOf

RENDERER = 'm01_remote_json'


def jsonDefault(value):
    """BSON's types as JSON: times in ISO 8601 (UTC), ids as text."""
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=datetime.timezone.utc)
        return value.astimezone(datetime.timezone.utc).isoformat()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return str(value)


#: How a number JSON has no notation for is answered: as text.
NON_FINITE = {math.inf: 'Infinity', -math.inf: '-Infinity'}


def _nonFinite(item):
    return isinstance(item, float) and not math.isfinite(item)


def _children(container):
    return container.values() if isinstance(container, dict) else container


def _walk(value):
    """Every list, tuple and dict in ``value``, without recursion."""
    stack = [value] if isinstance(value, (dict, list, tuple)) else []
    while stack:
        container = stack.pop()
        yield container
        stack.extend(child for child in _children(container)
                     if isinstance(child, (dict, list, tuple)))


def finite(value):
    """``value`` with every float JSON cannot write (a job's Python code
    may return ``nan`` or ``inf``) as the text Python prints for it;
    ``value`` itself when it holds none."""
    if _nonFinite(value):
        return 'NaN' if math.isnan(value) else NON_FINITE[value]
    if not any(_nonFinite(child) for container in _walk(value)
               for child in _children(container)):
        return value
    def convert(item):
        if _nonFinite(item):
            return finite(item)
        if isinstance(item, (dict, list, tuple)):
            copy = dict(item) if isinstance(item, dict) else list(item)
            pending.append(copy)
            return copy
        return item
    pending = []
    top = convert(value)
    while pending:
        container = pending.pop()
        keys = list(container) if isinstance(container, dict) \
            else range(len(container))
        for key in keys:
            container[key] = convert(container[key])
    return top


def dumps(value):
    """Strict JSON text of ``value``: never ``NaN`` or ``Infinity``."""
    try:
        return json.dumps(value, default=jsonDefault, ensure_ascii=False,
                          sort_keys=True, allow_nan=False)
    except ValueError:
        return json.dumps(finite(value), default=jsonDefault,
                          ensure_ascii=False, sort_keys=True,
                          allow_nan=False)


def rendererFactory(info):
    def render(value, system):
        request = system.get('request')
        if request is not None:
            request.response.content_type = 'application/json'
            request.response.charset = 'utf-8'
        return dumps(value)
    return render


def boundedValue(value):
    """``(value, omitted)``: the value if its JSON text stays within
    ``SHOWN_VALUE`` characters, else ``(None, True)``."""
    if nestedDeeper(value, MAX_DOCUMENT_DEPTH):
        return None, True
    encoder = json.JSONEncoder(default=jsonDefault, ensure_ascii=False)
    size = 0
    for chunk in encoder.iterencode(value):
        size += len(chunk)
        if size > SHOWN_VALUE:
            return None, True
    return value, False


def jobSummary(job):
    """A job as a listing shows it."""
    return {'id': job.__name__, 'name': job.name, 'status': job.status,
            'title': job.title or '', 'priority': job.priority,
            'key': job.key, 'created': job.created, 'queued': job.queued,
            'picked': job.picked, 'completed': job.completed,
            'retryTime': job.retryTime, 'retryCounter': job.retryCounter,
            'maxRetries': job.maxRetries, 'worker': job.worker,
            'progress': job.reportedProgress, 'queue': job.queue}


def jobDetail(job):
    """A job with its input, output, latest errors, attempts and log."""
    detail = jobSummary(job)
    for name in ('input', 'output'):
        value, omitted = boundedValue(getattr(job, name))
        detail[name] = value
        detail[name + 'Omitted'] = omitted
    errors = list(itertools.zip_longest(job.errors or (),
                                        job.tracebacks or (), fillvalue=''))
    detail['errorCount'] = len(errors)
    detail['errors'] = [
        {'message': shorten(message, SHOWN_ERROR),
         'traceback': shorten(traceback, SHOWN_TRACEBACK)}
        for message, traceback in errors[-MAX_ERRORS_SHOWN:]]
    detail['attempts'] = [
        dict(attempt, traceback=shorten(attempt.get('traceback') or '',
                                        SHOWN_TRACEBACK),
             error=shorten(attempt.get('error') or '', SHOWN_ERROR))
        for attempt in job.attempts or ()]
    detail['log'] = list(job.logLines or ())
    detail.update(active=job.active, timeout=job.timeout,
                  retryDelay=job.retryDelay,
                  leaseExpires=job.leaseExpires,
                  traceId=traceIdOf(job.traceContext))
    return detail


def relatedJSON(row):
    """A job another depends on, or depending on it: ``(jobid, name,
    status)``; name and status None for one removed."""
    jobid, name, status = row
    return {'id': jobid, 'name': name, 'status': status}


def relationsJSON(relations):
    """A job's dependencies, dependents and workflow
    (``IQueueQueries.relations``)."""
    return {'dependsOn': [relatedJSON(row)
                          for row in relations['dependsOn']],
            'dependsOnTotal': relations['dependsOnTotal'],
            'dependents': [relatedJSON(row)
                           for row in relations['dependents']],
            'workflow': relations['workflow'],
            'onFailure': relations['onFailure']}


def factoryJSON(info):
    return {'name': info.name, 'className': info.className,
            'doc': info.doc, 'paused': info.paused,
            'concurrency': info.concurrency, 'queue': info.queue,
            'rateLimit': info.rateLimit, 'rateUsed': info.rateUsed,
            'retention': dict(info.retention or {}),
            'defaults': {key: boundedValue(value)[0]
                         for key, value in info.defaults}}


def queueJSON(info):
    return {'name': info.name, 'paused': info.paused,
            'rateLimit': info.rateLimit, 'rateUsed': info.rateUsed,
            'counts': info.counts, 'factories': info.factories}


def schedulerItemJSON(item, kind, schedule):
    return {'id': item.__name__, 'kind': kind, 'title': item.title or '',
            'jobName': item.jobName, 'active': item.active,
            'schedule': schedule, 'nextCallTime': item.nextCallTime,
            'retryTime': item.retryTime}


def workerJSON(worker):
    return {key: worker.get(key) for key in (
        'id', 'state', 'control', 'host', 'pid', 'processor', 'origin',
        'kinds', 'threads', 'jobs', 'started', 'seen', 'stopped', 'quiet')}


def errorBody(status, title, detail):
    return {'error': {'status': status, 'title': title,
                      'detail': shorten(detail or '', 1000)}}
