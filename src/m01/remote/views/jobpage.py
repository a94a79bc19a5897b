"""The presentation of a job's page: its latest failure first, the
timeline of its attempts, its progress and log, its errors newest first.

Pure functions of a loaded job (and the page's "now"); every text is cut
to the page's limits (``m01.remote.limits``), so the page stays small
whatever the job holds.
"""
import itertools

from m01.remote import interfaces
from m01.remote.limits import (
    MAX_ERRORS_SHOWN,
    SHOWN_ERROR,
    SHOWN_TRACEBACK,
    shorten,
)
from m01.remote.views.formatting import between, splitStamp
from m01.remote.views.jobrows import progress

#: Seconds between two refreshes of the page by the script: of a running
#: job or one due to run, and of one due later (in a day, maybe).
LIVE_RUNNING = 3
LIVE_QUEUED = 10
#: Log lines a page shows, the newest (a job keeps 200).
SHOWN_LOG_LINES = 200
#: The outcome a running attempt is shown with.
RUNNING = 'running'

CANCEL_HELP = {
    interfaces.PROCESSING: (
        'Cancel stops the running job at its next checkpoint (a call to '
        'checkpoint, progress or log). A job that never reaches one runs '
        'on until it returns, and its outcome is refused.'),
    interfaces.QUEUED: 'Cancel: the job is not run.',
    interfaces.WAITING: (
        'Cancel: the job is not run, and the jobs waiting for it are '
        'cancelled too (but those that run anyway).'),
}


def errorPairs(job):
    """``[(message, traceback)]`` of every stored error, oldest first."""
    return list(itertools.zip_longest(
        job.errors or (), job.tracebacks or (), fillvalue=''))


def shownErrors(job):
    """The latest errors, newest first, each cut: ``{'number', 'at',
    'message', 'traceback'}`` (numbered as stored, from 1)."""
    pairs = errorPairs(job)
    first = max(0, len(pairs) - MAX_ERRORS_SHOWN)
    shown = []
    for number, (message, traceback) in enumerate(pairs[first:], first + 1):
        at, text = splitStamp(message)
        shown.append({'number': number, 'at': at,
                      'message': shorten(text, SHOWN_ERROR),
                      'traceback': shorten(traceback, SHOWN_TRACEBACK)})
    shown.reverse()
    return shown, len(pairs)


def _attempt(number, record):
    at, message = splitStamp(record.get('error'))
    return {
        'number': number,
        'outcome': record.get('outcome') or 'unknown',
        'worker': record.get('worker'),
        'thread': record.get('thread'),
        'started': record.get('started'),
        'ended': record.get('ended'),
        'seconds': record.get('seconds'),
        'error': shorten(message, SHOWN_ERROR) if record.get('error')
        else '',
        'traceback': shorten(record.get('traceback') or '',
                             SHOWN_TRACEBACK),
        'leaseExpires': None,
    }


def attempts(job, now, holder=None):
    """The attempts of the job, newest first, a running one on top (its
    thread named when ``holder``, the process running it, is known)."""
    records = [record for record in (job.attempts or ())
               if isinstance(record, dict)]
    shown = [_attempt(number, record)
             for number, record in enumerate(records, 1)]
    if job.status == interfaces.PROCESSING:
        shown.append({
            'number': len(records) + 1, 'outcome': RUNNING,
            'worker': job.worker,
            'thread': holder.get('thread') if holder else None,
            'started': job.picked,
            'ended': None, 'seconds': between(job.picked, now),
            'error': '', 'traceback': '',
            'leaseExpires': job.leaseExpires})
    shown.reverse()
    return shown


def failure(job, shownAttempts, errors):
    """What a failed job's page leads with: its latest error, the
    attempt it ended (when recorded) and whether it is retried; None
    unless the job is in error or queued again after a failure."""
    if job.status not in (interfaces.ERROR, interfaces.QUEUED):
        return None
    if not errors or (job.status == interfaces.QUEUED
                      and not job.retryCounter):
        return None
    latest = errors[0]
    attempt = next((a for a in shownAttempts if a['error']), None)
    return {
        'message': latest['message'],
        'at': latest['at'] or (attempt and attempt['ended']),
        'traceback': latest['traceback'] or (attempt and
                                            attempt['traceback']) or '',
        'attempt': attempt,
        'final': job.status == interfaces.ERROR,
        # A JobError ends a job at once, its retries unused.
        'spent': (job.retryCounter or 0) >= (job.maxRetries or 0),
        'retryTime': job.retryTime if job.status == interfaces.QUEUED
        else None,
    }


def logLines(job):
    """The newest log lines, oldest of them first: ``(time, text)``."""
    lines = [line for line in (job.logLines or ()) if line is not None]
    return [splitStamp(line) for line in lines[-SHOWN_LOG_LINES:]]


def liveSeconds(job, now, holder=None):
    """How often the script refreshes the page: while the job may still
    change by itself (it runs, or it is queued, or a thread still runs it
    though it ended: ``holder``); None once it ended."""
    if job.status == interfaces.PROCESSING or holder is not None:
        return LIVE_RUNNING
    if job.status == interfaces.QUEUED and job.active:
        due = job.retryTime is None or job.retryTime <= now
        return LIVE_RUNNING if due else LIVE_QUEUED
    return None


def jobProgress(job):
    """The progress bar's view-model while the job runs or after it
    stopped short (cancelled, failed); None when it reported none."""
    return progress(job)


def attemptsText(job):
    """How many attempts failed of those the job may make (its
    ``maxRetries`` counts every attempt, the first too)."""
    failed = job.retryCounter or 0
    allowed = job.maxRetries or 0
    return '%d failed, of at most %d attempt%s' % (
        failed, allowed, '' if allowed == 1 else 's')
