"""Prometheus metrics of the queue at ``<route prefix>/metrics``, in the
text exposition format (version 0.0.4), written without a client
library: the format is a line per sample.

``m01.remote.metrics`` says whether they are served: ``false`` (the
default), ``pages`` (behind the pages' permission) or ``public`` (no
permission, for a scraper on a private network). A scrape costs what the
stats cost without the charts: three aggregations of the jobs, the
counters' totals, the heartbeats, the queues' settings and a count of
each rate limit's slots.
"""
import math

from pyramid.response import Response
from pyramid.security import NO_PERMISSION_REQUIRED

from m01.remote import operations
from m01.remote.queue.counters import OUTCOMES
from m01.remote.settings import get_remote_settings
from m01.remote.views.routes import root_factory

ROUTE_NAME = 'm01.remote.metrics'
CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8'
WORKER_STATES = ('running', 'quiet', 'stopping', 'stopped', 'gone')

#: name -> (type, help)
METRICS = {
    'm01_remote_jobs': ('gauge', 'Jobs stored, by factory and status.'),
    'm01_remote_jobs_due': ('gauge', 'Queued jobs due now (the backlog), '
                            'by factory.'),
    'm01_remote_queue_latency_seconds': (
        'gauge', 'Age of the oldest due job, by factory (0: none due).'),
    'm01_remote_outcomes_total': (
        'counter', 'Job outcomes since counting began, by factory and '
        'outcome (up to 10 s behind).'),
    'm01_remote_run_seconds_total': (
        'counter', 'Seconds the counted attempts ran, by factory.'),
    'm01_remote_runs_total': ('counter', 'Attempts counted that ran, by '
                              'factory.'),
    'm01_remote_factory_paused': ('gauge', '1 when the factory is paused.'),
    'm01_remote_queue_jobs': ('gauge', 'Jobs stored, by queue and status.'),
    'm01_remote_queue_paused': ('gauge', '1 when the queue is paused.'),
    'm01_remote_rate_limit_starts': (
        'gauge', 'The starts a rate limit allows per period, by factory '
        'or queue.'),
    'm01_remote_rate_limit_used': (
        'gauge', 'The starts of a rate limit within the current period, '
        'by factory or queue.'),
    'm01_remote_workers': ('gauge', 'Processes running workers, by state '
                           'as their heartbeats tell.'),
}


def escape(value):
    """A label value as the text format writes it."""
    return str(value).replace('\\', '\\\\').replace('\n', '\\n').replace(
        '"', '\\"')


def number(value):
    if isinstance(value, float):
        if math.isnan(value):
            return 'NaN'
        if math.isinf(value):
            return '+Inf' if value > 0 else '-Inf'
        return repr(value)
    return str(int(value))


def samples(queries):
    """``{metric: [(labels, value)]}`` of the queue now."""
    now = queries.processor.now()
    counts = queries.countsByFactory()
    due = queries.backlog()
    factories = queries.factories()
    names = sorted({info.name for info in factories} | set(counts)
                   | set(due))
    totals = queries.outcomeTotals()
    found = {name: [] for name in METRICS}
    for name in names:
        for status, count in sorted(counts.get(name, {}).items()):
            found['m01_remote_jobs'].append(
                ({'factory': name, 'status': status}, count))
        dueCount, oldest = due.get(name, (0, None))
        found['m01_remote_jobs_due'].append(({'factory': name}, dueCount))
        found['m01_remote_queue_latency_seconds'].append((
            {'factory': name},
            max((now - oldest).total_seconds(), 0.0) if oldest else 0.0))
    for name, total in sorted(totals.items()):
        for outcome in OUTCOMES:
            found['m01_remote_outcomes_total'].append(
                ({'factory': name, 'outcome': outcome}, total[outcome]))
        found['m01_remote_run_seconds_total'].append(
            ({'factory': name}, float(total['seconds'])))
        found['m01_remote_runs_total'].append(
            ({'factory': name}, total['runs']))
    for info in factories:
        found['m01_remote_factory_paused'].append(
            ({'factory': info.name}, int(info.paused)))
        rateSamples(found, {'factory': info.name}, info)
    for info in queries.queues():
        for status, count in sorted(info.counts.items()):
            found['m01_remote_queue_jobs'].append(
                ({'queue': info.name, 'status': status}, count))
        found['m01_remote_queue_paused'].append(
            ({'queue': info.name}, int(info.paused)))
        rateSamples(found, {'queue': info.name}, info)
    states = [worker['state'] for worker in queries.workers()]
    for state in WORKER_STATES:
        found['m01_remote_workers'].append(({'state': state},
                                            states.count(state)))
    return found


def rateSamples(found, labels, info):
    if info.rateLimit:
        found['m01_remote_rate_limit_starts'].append(
            (labels, info.rateLimit[0]))
        found['m01_remote_rate_limit_used'].append((labels, info.rateUsed))


def exposition(found):
    """The text format of ``samples``."""
    lines = []
    for name, (kind, text) in METRICS.items():
        lines.append('# HELP %s %s' % (name, text))
        lines.append('# TYPE %s %s' % (name, kind))
        for labels, value in found.get(name, ()):
            label = ','.join('%s="%s"' % (key, escape(labels[key]))
                             for key in sorted(labels))
            lines.append('%s{%s} %s' % (name, label, number(value))
                         if label else '%s %s' % (name, number(value)))
    return '\n'.join(lines) + '\n'


def metricsView(request):
    queries = operations.queries(request.remote_processor)
    return Response(body=exposition(samples(queries)).encode('utf-8'),
                    content_type=CONTENT_TYPE.split(';')[0],
                    charset='utf-8',
                    headerlist=[('Content-Type', CONTENT_TYPE)])


def includeme(config):
    """Add the metrics route and view as ``m01.remote.metrics`` says;
    before the pages' traversal route, which would match it too."""
    settings = get_remote_settings(config.registry)
    if settings.metrics == 'false':
        return
    prefix = '' if settings.route_prefix == '/' else settings.route_prefix
    config.add_route(ROUTE_NAME, prefix + '/metrics', factory=root_factory)
    config.add_view(metricsView, route_name=ROUTE_NAME,
                    request_method='GET',
                    permission=settings.permission
                    if settings.metrics == 'pages'
                    else NO_PERMISSION_REQUIRED)
