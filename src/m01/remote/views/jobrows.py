"""What the pages show of a job at a glance: a row of the jobs list, a
line of the latest failures.

Pure presentation of a loaded job (``m01.remote.job.Job``): nothing here
reads the store. Every value is bounded (previews and messages are cut),
so a page of rows stays small whatever the jobs hold.
"""
from m01.remote import interfaces
from m01.remote.limits import shorten
from m01.remote.views.common import Shown
from m01.remote.views.formatting import between, percent, splitStamp

#: Characters of a job's input a row shows, and of its last error.
PREVIEW = 80
ROW_ERROR = 160
#: How many characters of the id a row shows (ObjectIds made one after
#: another differ in their last ones).
SHORT_ID = 6

#: What each sort field's column is called.
TIME_LABELS = {'created': 'Created', 'queued': 'Queued',
               'completed': 'Completed'}

ENDED = (interfaces.COMPLETED, interfaces.ERROR, interfaces.CANCELLED)


def shortId(jobid):
    return '…' + str(jobid)[-SHORT_ID:]


def label(job):
    """A job's name on the pages: its title, or its factory's name."""
    return job.title or job.name or 'job'


def lastError(job):
    """``(time or None, message)`` of the job's latest error, or None."""
    errors = job.errors or ()
    if not errors:
        return None
    return splitStamp(errors[-1])


def runSeconds(job, now):
    """How long the job ran: its last attempt's seconds once ended, the
    time since it was picked while it runs; None when it never ran."""
    if job.status == interfaces.PROCESSING:
        return between(job.picked, now)
    attempts = job.attempts or ()
    if attempts and attempts[-1].get('seconds') is not None:
        return attempts[-1]['seconds']
    if job.status in ENDED:
        return between(job.picked, job.completed)
    return None


def tags(job, now):
    """Small facts worth a glance, only where set: ``(text, title)``."""
    found = []
    if job.priority:
        found.append(('priority %+d' % job.priority,
                      'Claimed before jobs of lower priority'))
    if job.key:
        found.append(('key %s' % shorten(str(job.key), 40),
                      'Unique while queued or running'))
    if job.timeout:
        found.append(('timeout %g s' % job.timeout,
                      'Stopped as a failed attempt past this'))
    if not job.active:
        found.append(('inactive', 'Never claimed while inactive'))
    return found


def progress(job):
    """``{'percent', 'message'}`` of a job that reported progress, while
    it runs or once it stopped there; None otherwise."""
    reported = job.reportedProgress
    if not isinstance(reported, dict) or job.status == interfaces.COMPLETED:
        return None
    message = reported.get('message')
    return {'percent': percent(reported.get('fraction')),
            'message': '' if message is None else shorten(message, PREVIEW),
            'at': reported.get('at')}


def jobRow(job, now, timeField='created'):
    """The view-model of one row of the jobs list."""
    error = lastError(job)
    due = job.retryTime
    waiting = (job.status == interfaces.QUEUED and due is not None
               and due > now)
    return {
        'job': job,
        'id': job.__name__,
        'shortId': shortId(job.__name__),
        'label': label(job),
        'factory': job.name,
        'titled': bool(job.title),
        'preview': '' if job.input is None
        else Shown(job.input, PREVIEW, indent=None).text,
        'status': job.status,
        'attempts': job.retryCounter or 0,
        'maxRetries': job.maxRetries,
        'error': None if error is None or job.status == interfaces.COMPLETED
        else {'at': error[0], 'text': shorten(error[1], ROW_ERROR)},
        'due': due if waiting else None,
        'tags': tags(job, now),
        'progress': progress(job)
        if job.status == interfaces.PROCESSING else None,
        'time': getattr(job, timeField, None),
        'seconds': runSeconds(job, now),
    }
