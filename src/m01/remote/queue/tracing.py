"""Tracing with OpenTelemetry, when ``opentelemetry-api`` is installed
(the ``otel`` extra): a job added while a span is active keeps that
span's trace context (``traceContext``: the propagator's few headers,
``traceparent`` with the default one), and each attempt's run is a span
of that trace (``jobSpan``, a run wrapper ``includeme`` registers
outermost unless ``m01.remote.tracing`` is false).

Without the package, or with no span active, nothing is stored and the
wrapper is not registered. What the spans become (exported, sampled) is
the site's OpenTelemetry SDK set-up, in each process that runs jobs.
"""
import inspect
import re

from m01.remote.job import JobCancelled, JobTimedOut

try:
    from opentelemetry import context, propagate, trace
except ImportError:     # the otel extra is not installed
    context = propagate = trace = None

#: The name ``jobSpan`` is registered under as a run wrapper.
WRAPPER_NAME = 'm01.remote.tracing'
#: The attributes of a run's span.
FACTORY = 'm01.remote.job.factory'
JOB_ID = 'm01.remote.job.id'
ATTEMPT = 'm01.remote.job.attempt'
OUTCOME = 'm01.remote.job.outcome'
#: A W3C ``traceparent``: version, trace id, parent span id, flags.
TRACEPARENT = re.compile(
    r'^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$')


def available():
    """Whether ``opentelemetry-api`` is installed."""
    return trace is not None


def currentTraceContext():
    """The trace context of the active span (a dict of text), or None
    when there is none (or no ``opentelemetry-api``)."""
    if trace is None or \
            not trace.get_current_span().get_span_context().is_valid:
        return None
    carrier = {}
    propagate.inject(carrier)
    return carrier or None


def traceIdOf(stored):
    """The trace id (32 hex digits) of a stored trace context (its W3C
    ``traceparent``), or None: what to look the job's run up by in the
    tracing backend."""
    parent = stored.get('traceparent') if isinstance(stored, dict) \
        else None
    match = TRACEPARENT.match(parent) if isinstance(parent, str) else None
    return match.group(1) if match else None


def outcomeOf(error):
    """The outcome attribute of a run that raised ``error`` (None: it
    returned)."""
    if error is None:
        return 'completed'
    if isinstance(error, JobCancelled):
        return 'cancelled'
    if isinstance(error, JobTimedOut):
        return 'timed out'
    if type(error).__name__ == 'CancelledError':
        return 'stopped'
    return 'failed'


def _end(span, error):
    span.set_attribute(OUTCOME, outcomeOf(error))
    if error is not None:
        span.record_exception(error)
        span.set_status(trace.Status(trace.StatusCode.ERROR,
                                     '%s: %s' % (type(error).__name__,
                                                 error)))
    span.end()


def jobSpan(handler, registry):
    """A run wrapper making each attempt's run a span, a child of the
    span active when the job was added (or of none)."""
    tracer = trace.get_tracer('m01.remote')

    def traced(job, remoteProcessor):
        carrier = getattr(job, 'traceContext', None)
        parent = propagate.extract(carrier) if carrier else None
        span = tracer.start_span(
            'm01.remote job %s' % job.name, context=parent,
            kind=trace.SpanKind.CONSUMER, attributes={
                FACTORY: job.name or '', JOB_ID: job.__name__ or '',
                ATTEMPT: (job.retryCounter or 0) + 1})
        token = context.attach(trace.set_span_in_context(span))
        try:
            output = handler(job, remoteProcessor)
        except BaseException as error:
            _end(span, error)
            raise
        finally:
            context.detach(token)
        if inspect.isawaitable(output):
            return _awaited(span, output)
        _end(span, None)
        return output
    return traced


async def _awaited(span, awaitable):
    token = context.attach(trace.set_span_in_context(span))
    try:
        output = await awaitable
    except BaseException as error:
        _end(span, error)
        raise
    finally:
        context.detach(token)
    _end(span, None)
    return output
