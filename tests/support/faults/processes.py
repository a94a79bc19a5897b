"""The fault scenarios that strike processes and the server
(``faults.py``): a worker killed, a worker paused, the server stopped,
a worker asked to stop.
"""
import json
import signal
import time

import transaction

from m01.remote.scheduler import Delay
from support.faults.audit import (
    Result,
    audit,
    completedAfter,
    countExecutions,
    jobsOf,
)
from support.faults.harness import (
    LATENCY,
    Run,
    ScenarioTimeout,
    addRecordJobs,
    drain,
    heldMidRun,
    now,
    settingsFor,
    stopAll,
    waitFor,
)


def crash(env, size):
    """A worker killed, then one paused, while they run jobs."""
    result = Result('crash')
    run = Run(env.uri, env.workdir, 'crash', **settingsFor(
        size, **{'faults.retry_delay': size['retryDelay']}))
    # A job of a dead worker waits for its lease to expire, for a lease
    # keeper to notice (every lease/3), for its retry delay, then runs.
    # With batches, the others first finish the jobs their batch holds.
    bound = size['lease'] * 4 / 3.0 + size['retryDelay'] + size['seconds'] \
        * (size.get('batch') or 1) + LATENCY
    try:
        processor = run.processor()
        workers = [run.start('worker', label='worker-%d' % number)
                   for number in range(size['workers'])]
        jobids = addRecordJobs(processor, size['workers'] * size['threads']
                               * 2, size['seconds'])
        _kill(result, run, workers[0], size, bound)
        jobids += addRecordJobs(processor, size['workers'] *
                                size['threads'], size['seconds'],
                                batch='pause')
        _pause(result, run, workers[1], size, bound)
        drain(result, run, jobids, size['timeout'], stall=bound)
        stopAll(result, workers[1:], 'worker')
        found = audit(run.database)
        result.counted(found, jobids)
        _checkPaused(result, found, workers[1],
                     run.workerId(workers[1]))
        result.details.update(bound_s=round(bound, 1),
                              stale_runs=len(found.stale),
                              lease_s=size['lease'])
    finally:
        run.close()
    return result


def _kill(result, run, victim, size, bound):
    """SIGKILL ``victim`` while it runs a job in every thread; how long
    until the others took its jobs over and completed them."""
    held = waitFor(lambda: heldMidRun(run, victim, size['seconds'],
                                      size['threads']),
                   size['timeout'], 'the victim running jobs', interval=0.1)
    victim.signal(signal.SIGKILL)
    killed = time.monotonic()
    victim.wait(10)
    # A job it claimed between the look and the kill is its too.
    held = jobsOf(run.database, run.workerId(victim)) or held
    result.details['killed_held'] = len(held)
    try:
        waitFor(lambda: not set(held) & set(
            jobsOf(run.database, run.workerId(victim))), bound,
            'the killed worker\'s jobs handed back', interval=0.2)
    except ScenarioTimeout:
        pass  # the drain below says which job is stuck, and why
    else:
        result.details['handed_back_s'] = round(
            time.monotonic() - killed, 1)
    if drain(result, run, held, size['timeout'], stall=bound,
             what='the killed worker\'s jobs completing') is not None:
        result.recovery = time.monotonic() - killed
        result.check(result.recovery <= bound, 'the killed worker\'s jobs '
                     'took %.1f s to complete, over the bound of %.1f s'
                     % (result.recovery, bound))


def _pause(result, run, paused, size, bound):
    """SIGSTOP ``paused`` while it runs jobs, SIGCONT once the others
    completed them, and wait for its runs of them to end."""
    held = waitFor(lambda: heldMidRun(run, paused, size['seconds'],
                                      size['threads']),
                   size['timeout'], 'the paused worker running jobs',
                   interval=0.1)
    paused.signal(signal.SIGSTOP)
    stopped = time.monotonic()
    held = jobsOf(run.database, run.workerId(paused)) or held
    result.details['paused_held'] = len(held)
    try:
        drain(result, run, held, size['timeout'], stall=bound,
              what='the paused worker\'s jobs completing by the others')
    finally:
        paused.signal(signal.SIGCONT)
    result.details['takeover_s'] = round(time.monotonic() - stopped, 1)
    taken = [jobid for jobid in held if jobid not in result.stuck]
    # Its runs of those jobs end now, and find them taken.
    waitFor(lambda: all(run.database.stale.count_documents({'job': jobid})
                        for jobid in taken), size['seconds'] + LATENCY * 2,
            'the paused worker\'s runs ending')
    result.details['paused_jobs'] = ','.join(taken)


def _checkPaused(result, found, paused, pausedWorker):
    """The paused worker's runs changed no outcome, and each of them was
    refused by the queue."""
    taken = [jobid for jobid in
             result.details.pop('paused_jobs', '').split(',') if jobid]
    for jobid in taken:
        job = found.jobs[jobid]
        output = job.get('output') or {}
        result.check(job['status'] == 'completed' and
                     output.get('worker') != pausedWorker,
                     'the paused worker changed the outcome of %s' % jobid)
        result.check(found.executions.get(jobid, {}).get('claim') ==
                     output.get('claim'), 'job %s: the outcome stored is '
                     'not the one of its recorded run' % jobid)
    refused = paused.output().count('was not stored')
    result.details['refused_outcomes'] = refused
    result.check(refused >= len(taken), 'the paused worker logged %d '
                 'refused outcomes for %d taken jobs' % (refused,
                                                         len(taken)))


#: What each loop logs when the database goes away, and when it is back.
#: Seconds a worker may take past its stop timeout to exit: its threads
#: end, its connections close, its process is reaped (under a loaded
#: machine's scheduling).
EXIT_ALLOWANCE = 5.0

OUTAGE_LINES = {
    'worker': (('MultiJobWorker: the database cannot be reached',
                'MultiJobWorker: the database is reachable again'),
               ('Renewing job leases failed',
                'Renewing job leases works again')),
    'scheduler': (('SchedulerWorker: the database cannot be reached',
                   'SchedulerWorker: the database is reachable again'),),
}


def outageLogged(result, process, kind):
    """How often each loop of ``process`` logged the outage; a loop that
    polls all the time must log it exactly once (and its end once), the
    lease keeper (a tick every lease/3) at most once."""
    text = process.output()
    counts = {}
    for failed, back in OUTAGE_LINES[kind]:
        loop = failed.split(':')[0].split()[0]
        # A call that timed out says the database does not answer.
        count = sum(text.count(line) for line in {
            failed, failed.replace('cannot be reached', 'does not answer')})
        counts['%s:%s' % (process.label, loop)] = count
        wanted = (0, 1) if loop == 'Renewing' else (1,)
        result.check(count in wanted and text.count(back) == count,
                     '%s logged "%s" %d times and "%s" %d times for one '
                     'outage' % (process.label, failed, count, back,
                                 text.count(back)))
    if kind == 'worker':
        # Jobs whose outcome could not be stored: one line each, and
        # they run again after their lease.
        counts['%s:outcomes-not-stored' % process.label] = text.count(
            'was not stored (the database cannot be reached)')
        counts['%s:tracebacks' % process.label] = text.count(
            'Traceback (most recent call last)')
    return counts


def outage(env, size):
    """The server stopped and started again while jobs run."""
    result = Result('outage')
    if env.server is None:
        result.skipped = 'needs the server this run started (no --uri)'
        return result
    run = Run(env.uri, env.workdir, 'outage', **settingsFor(size))
    try:
        processor = run.processor()
        processor.addScheduler(Delay({'jobName': 'record', 'delay': 1,
                                      'retryDelay': 2,
                                      'input': {'item': 'outage'}}))
        transaction.commit()
        jobids = addRecordJobs(processor, size['jobs'], size['seconds'])
        workers = [run.start('worker') for _ in range(size['workers'])]
        schedulers = [run.start('scheduler')
                      for _ in range(size['schedulers'])]
        waitFor(lambda: countExecutions(run.database) >= size['jobs'] // 4,
                size['timeout'], 'a quarter of the jobs completing',
                interval=0.5)
        env.server.stop()
        down = time.monotonic()
        time.sleep(size['outage'])  # the outage itself, not a race
        env.server.start()
        restarted = time.monotonic()
        back = now()
        waitFor(lambda: completedAfter(run.database, back), size['timeout'],
                'a job completing after the restart', interval=0.2)
        result.recovery = time.monotonic() - restarted
        dead = [p.label for p in workers + schedulers if not p.alive]
        result.check(not dead, 'did not survive the outage: %s' % dead)
        # A scheduler's next try may be seconds away (its back-off): let
        # each one reach the database again before it is stopped.
        reached = OUTAGE_LINES['scheduler'][0][1]
        waitFor(lambda: all(reached in p.output() for p in schedulers),
                size['timeout'], 'the schedulers reaching the database',
                interval=0.2)
        stopAll(result, schedulers, 'scheduler')
        scheduled = list(audit(run.database).jobs.keys() - set(jobids))
        expected = jobids + scheduled
        drained = drain(result, run, expected, size['timeout'],
                        stall=size['lease'] * 4 / 3.0 + 1 + LATENCY * 2)
        # So may a lease keeper's next sweep (a third of a lease): let
        # each one that said it failed reach the database again too.
        failed, works = OUTAGE_LINES['worker'][1]
        waitFor(lambda: all(works in p.output() for p in workers
                            if failed in p.output()),
                size['timeout'], 'the lease keepers reaching the database',
                interval=0.2)
        stopAll(result, workers, 'worker')
        found = audit(run.database)
        result.counted(found, expected)
        logged = {}
        for process in workers:
            logged.update(outageLogged(result, process, 'worker'))
        for process in schedulers:
            logged.update(outageLogged(result, process, 'scheduler'))
        result.details.update(
            outage_s=size['outage'], down_s=round(restarted - down, 1),
            scheduled=len(scheduled), drained_s=round(drained, 1)
            if drained is not None else '-',
            stale_runs=len(found.stale), lease_s=size['lease'],
            log_lines=json.dumps(logged, separators=(',', ':')))
    finally:
        run.close()
    return result


def graceful(env, size):
    """A worker asked to stop (SIGTERM) while it runs jobs."""
    result = Result('graceful')
    stopTimeout, lease = size['stopTimeout'], size['lease']
    run = Run(env.uri, env.workdir, 'graceful', **settingsFor(
        size, **{'faults.retry_delay': 0.5}))
    try:
        processor = run.processor()
        # The long job outlasts the stop timeout by more than a loaded
        # machine's slowest exit (``EXIT_ALLOWANCE``), so a worker that
        # waited for it is told from one that kept its timeout.
        longSeconds = stopTimeout + lease + EXIT_ALLOWANCE + 2
        victim = run.start('worker', '--stop-timeout', str(stopTimeout),
                           label='victim')
        longJob, = addRecordJobs(processor, 1, longSeconds, kind='long')
        waitFor(lambda: longJob in jobsOf(run.database,
                                          run.workerId(victim)),
                size['timeout'], 'the long job starting', interval=0.1)
        short = addRecordJobs(processor, size['threads'] - 1,
                              size['seconds'], kind='short')
        held = waitFor(lambda: heldMidRun(run, victim, size['seconds'],
                                          size['threads'], {longJob}),
                       size['timeout'], 'the victim running every thread',
                       interval=0.1)
        queued = addRecordJobs(processor, size['queued'], 0, kind='queued')
        victim.signal(signal.SIGTERM)
        signalled = time.monotonic()
        status = victim.wait(stopTimeout + LATENCY)
        exited = time.monotonic() - signalled
        result.check(status == 0, 'the victim exited with %s' % status)
        result.check(exited <= stopTimeout + EXIT_ALLOWANCE,
                     'the victim took %.1f s '
                     'to exit, stop timeout %s s' % (exited, stopTimeout))
        helper = run.start('worker', label='helper')
        victimId = run.workerId(victim)
        # Handed back: its lease expires, a keeper notices (every lease/3).
        bound = stopTimeout + lease * 4 / 3.0 + LATENCY
        handedBack = None
        try:
            waitFor(lambda: longJob not in jobsOf(run.database, victimId),
                    bound * 2, 'the long job handed back', interval=0.2)
        except ScenarioTimeout:
            pass  # the drain below says why it is stuck
        else:
            handedBack = time.monotonic() - signalled
            result.check(handedBack <= bound, 'the long job was handed '
                         'back after %.1f s, over the bound of %.1f s'
                         % (handedBack, bound))
        jobids = [longJob] + short + queued
        drain(result, run, jobids, size['timeout'], stall=bound + longSeconds)
        stopAll(result, [helper], 'helper')
        found = audit(run.database)
        result.counted(found, jobids)
        finished = [jobid for jobid in held if jobid != longJob and
                    (found.jobs[jobid].get('output') or {}).get('worker')
                    == victimId]
        result.check(len(finished) == len(held) - 1,
                     'the victim finished %d of its %d short jobs'
                     % (len(finished), len(held) - 1))
        result.recovery = handedBack
        result.details.update(
            stop_timeout_s=stopTimeout, exit_s=round(exited, 1),
            finished_by_victim=len(finished),
            long_job_handed_back_s=round(handedBack, 1)
            if handedBack is not None else '-',
            bound_s=round(bound, 1), lease_s=lease)
    finally:
        run.close()
    return result
