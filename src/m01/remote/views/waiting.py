"""What the pages say of a job besides its status: why a queued job
waits and what to do about it, and which thread runs a job, a job no
longer processing (cancelled before it reached a checkpoint) too.

The reasons come from the operator's layer (``operations.waits``); this
module words them. Each note is ``{'code', 'short', 'text', 'hint',
'link'}``: ``short`` for a row of the jobs list, ``text`` and ``hint``
(what to do) for the job's page, ``link`` ``(label, url)`` or None.
Times are ``formatting.timeTag`` markup, as every page shows them.
"""
from m01.remote import interfaces
from m01.remote.operations import waits
from m01.remote.views.formatting import HTML, timeTag


def _link(label, url):
    return (label, url)


def waitNotes(view, job, reasons):
    """The notes of the ``reasons`` the queued ``job`` waits
    (``IQueueQueries.waitReasons``), in their order."""
    rp = view.processor
    notes = []
    for found in reasons or ():
        code = found['reason']
        if code == waits.INACTIVE:
            notes.append(_note(
                code, 'inactive',
                'Inactive: no worker claims it while it is.',
                'The application that added it makes it active '
                '(job.active = True).'))
        elif code == waits.LATER:
            when = timeTag(found['due'], view.now)
            if found['retry']:
                text = HTML('An attempt failed: it is retried %s.' % when)
            else:
                text = HTML('Due %s: no worker claims it before.' % when)
            notes.append(_note(code, HTML('until due %s' % when), text,
                               'It is claimed once due.'))
        elif code == waits.PAUSED:
            name = found['factory']
            notes.append(_note(
                code, 'factory paused',
                'Its factory %s is paused: no process claims its jobs.'
                % name, 'Resume the factory to let them run.',
                _link('Resume %s on the factories page' % name,
                      view.url(rp.jobFactories,
                               _anchor='factory-' + name))))
        elif code == waits.CAPPED:
            name = found['factory']
            notes.append(_note(
                code, 'concurrency limit',
                'Its factory %s runs at most %d job%s at once, and %d '
                'run%s now.' % (name, found['limit'],
                                's' if found['limit'] != 1 else '',
                                found['running'],
                                's' if found['running'] == 1 else ''),
                'It starts once one of them ends.',
                _link('The running %s jobs' % name,
                      view.url(rp.jobs, status=interfaces.PROCESSING,
                               name=name))))
        elif code == waits.QUEUE_PAUSED:
            name = found['queue']
            notes.append(_note(
                code, 'queue paused',
                'Its queue %s is paused: no process claims its jobs.'
                % name, 'Resume the queue to let them run.',
                _link('Resume %s on the factories page' % name,
                      view.url(rp.jobFactories, _anchor='queue-' + name))))
        elif code == waits.RATE:
            what = '%s %s' % (found['kind'], found['name'])
            notes.append(_note(
                code, 'rate limit',
                'Its %s starts at most %d job%s per %s, and %d started '
                'in the last %s.' % (
                    what, found['starts'],
                    's' if found['starts'] != 1 else '',
                    _period(found['seconds']), found['used'],
                    _period(found['seconds'])),
                'It starts once the window allows; it is not failed or '
                'retried meanwhile.',
                _link('The rate limits on the factories page',
                      view.url(rp.jobFactories,
                               _anchor='%s-%s' % (found['kind'],
                                                  found['name'])))))
        elif code == waits.NO_WORKER:
            notes.append(_note(
                code, 'no worker',
                'No process runs a job worker: nothing claims jobs.',
                'Start one with m01remote worker, or the job worker '
                'thread of a web process on the overview.',
                _link('The workers', view.url(rp, 'workers'))))
        elif code == waits.QUIET:
            count = found['quiet']
            notes.append(_note(
                code, 'workers quiet',
                'Every process running a job worker (%d) was asked to take '
                'no more jobs, or is stopping.' % count,
                'Resume one on the workers page.',
                _link('The workers', view.url(rp, 'workers'))))
        elif code == waits.BUSY:
            notes.append(_note(
                code, 'every thread busy',
                'Every worker thread runs a job (%d of %d busy).'
                % (found['busy'], found['threads']),
                'It starts once a thread is free; more worker threads or '
                'processes run more at once.',
                _link('The workers', view.url(rp, 'workers'))))
    return notes


def _period(seconds):
    """A rate limit's period in words: "60 s", "2.5 s"."""
    return '%g s' % seconds


def _note(code, short, text, hint='', link=None):
    return {'code': code, 'short': short, 'text': text, 'hint': hint,
            'link': link}


def positionText(position):
    """What the page says of a due job nothing holds."""
    if position is None:
        return ''
    if position == 0:
        return 'Due now: a free worker thread claims it next.'
    if position >= waits.MAX_POSITION:
        return ('Due now: more than {:,} due jobs are claimed before it.'
                .format(waits.MAX_POSITION - 1))
    return ('Due now: {:,} due job{} claimed before it (higher priority, '
            'or queued earlier).'.format(
                position, 's are' if position != 1 else ' is'))


def holderOf(job, capacity):
    """``{'process', 'host', 'pid', 'thread', 'state'}`` of the process
    (alive) whose heartbeat lists ``job`` as running, or None."""
    if capacity is None:
        return None
    return capacity.holders.get(job.__name__)


def threadName(holder):
    """How the pages name the thread of a holder."""
    where = '%s:%s' % (holder.get('host'), holder.get('pid'))
    if holder.get('thread'):
        return 'thread %s of process %s' % (holder['thread'], where)
    return 'a thread of process %s' % where


def endedButRunning(entry):
    """Whether a job a process lists as running (an entry of the
    ``workers`` view-model's ``jobs``) has a status saying it no longer
    runs: cancelled before it reached a checkpoint, say."""
    status = entry.get('status')
    return status is not None and status != interfaces.PROCESSING


def stillRunning(view, job, holder):
    """The note of a job whose status says it no longer runs (cancelled,
    say) while a thread still runs it; None otherwise."""
    if holder is None or job.status == interfaces.PROCESSING:
        return None
    return {
        'short': 'still running',
        'thread': threadName(holder),
        'text': '%s, but still running: %s runs it until its code '
                'returns. It has not reached a checkpoint since (a call to '
                'checkpoint, progress or log), where it would stop; its '
                'outcome will not be stored, and the thread takes no other '
                'job meanwhile.' % (job.status.capitalize(),
                                    threadName(holder)),
        'hint': 'A job that never returns holds the thread until its '
                'process is restarted: stopping the process waits for its '
                'running jobs.',
        'link': _link('The process on the workers page',
                      view.url(view.processor, 'workers',
                               _anchor='process-%s' % holder['process'])),
    }
