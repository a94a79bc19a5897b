"""The fault scenarios about the queue's own work (``faults.py``): load
with producers, workers and schedulers at once, schedulers creating one
job per occurrence, and a poison job.
"""
import datetime
import time

import transaction

from m01.remote.scheduler import Delay, jobIdFor
from support.faults.audit import Result, audit
from support.faults.harness import (
    FAULT_WORKER,
    LATENCY,
    Run,
    ScenarioTimeout,
    addRecordJobs,
    drain,
    settingsFor,
    stopAll,
    waitFor,
    waitServing,
)


def load(env, size):
    """Producers, workers and schedulers at once: every job once."""
    result = Result('load')
    run = Run(env.uri, env.workdir, 'load', **settingsFor(size))
    try:
        processor = run.processor()
        for number in range(size['items']):
            processor.addScheduler(Delay({
                'jobName': 'record', 'delay': size['delay'],
                'retryDelay': 5, 'title': 'load item %d' % number,
                'input': {'item': number}}))
        workers = [run.start('worker') for _ in range(size['workers'])]
        schedulers = [run.start('scheduler')
                      for _ in range(size['schedulers'])]
        perProducer = size['jobs'] // size['producers']
        started = time.monotonic()
        producers = [run.startPython(
            'producer-%d' % number, *FAULT_WORKER, 'produce', run.ini(),
            str(number), str(perProducer), str(size['batch']))
            for number in range(size['producers'])]
        deadline = started + size['timeout']
        for producer in producers:
            status = producer.wait(max(deadline - time.monotonic(), 1))
            result.check(status == 0, 'producer %s exited with %s: %s' % (
                producer.label, status, producer.output()[-2000:]))
        produced = time.monotonic() - started
        # Producers can finish before a scheduler's first occurrence is
        # due: let every item create a job before the schedulers stop.
        try:
            waitFor(lambda: len(run.database.rjobs.distinct(
                'input.item')) >= size['items'],
                max(deadline - time.monotonic(), 1),
                'a scheduled job of every item', interval=0.5)
        except ScenarioTimeout as e:
            result.problems.append(str(e))
        stopAll(result, schedulers, 'scheduler')
        # Every job committed now: wait for the queue to drain.
        expected = list(audit(run.database).jobs)
        drain(result, run, expected, max(deadline - time.monotonic(), 1),
              stall=size.get('lease', 60) * 4 / 3.0 + 60, interval=5.0)
        elapsed = time.monotonic() - started
        stopAll(result, workers, 'worker')
        found = audit(run.database)
        result.counted(found, expected)
        inputs = {}
        for job in found.jobs.values():
            key = (job['input'] or {}).get('producer'), \
                (job['input'] or {}).get('number')
            if key[0] is not None:
                inputs[key] = inputs.get(key, 0) + 1
        missing = size['producers'] * perProducer - len(inputs)
        repeated = sum(count - 1 for count in inputs.values())
        result.lost += missing
        result.duplicates += repeated
        scheduled = len(expected) - sum(inputs.values())
        times = sorted(record['at'] for record in found.executions.values())
        span = (times[-1] - times[0]).total_seconds() if len(times) > 1 \
            else 0
        result.details.update(
            produced=size['producers'] * perProducer, scheduled=scheduled,
            produce_s=round(produced, 1), elapsed_s=round(elapsed, 1),
            jobs_per_s=round(len(times) / span, 1) if span else '-')
        result.check(scheduled > 0, 'the schedulers created no job')
    finally:
        run.close()
    return result


def dueOf(itemid, jobid, created, search=30.0):
    """The due time whose job id (see ``jobIdFor``) is ``jobid``: the
    job is created at or after its due time, so the milliseconds before
    ``created`` are tried, newest first."""
    created = created.replace(microsecond=created.microsecond // 1000 * 1000)
    for milliseconds in range(int(search * 1000) + 1):
        due = created - datetime.timedelta(milliseconds=milliseconds)
        if jobIdFor(itemid, due) == jobid:
            return due
    return None


def scheduler(env, size):
    """Schedulers racing for Delay items: one job per occurrence."""
    result = Result('scheduler')
    run = Run(env.uri, env.workdir, 'scheduler', **settingsFor(size))
    try:
        processor = run.processor()
        items = [processor.addScheduler(Delay({
            'jobName': 'record', 'delay': size['delay'], 'retryDelay': 2,
            'title': 'every second %d' % number, 'input': {'item': number}}))
            for number in range(size['items'])]
        transaction.commit()
        worker = run.start('worker')
        schedulers = [run.start('scheduler')
                      for _ in range(size['schedulers'])]
        waitServing(schedulers + [worker])
        time.sleep(size['window'])  # the scenario's length, not a race
        stopAll(result, schedulers, 'scheduler')
        found = audit(run.database)
        expected = list(found.jobs)
        drain(result, run, expected, size['timeout'], stall=LATENCY * 6)
        stopAll(result, [worker], 'worker')
        found = audit(run.database)
        result.counted(found, expected)
        chains = {}
        for number, itemid in enumerate(items):
            item = processor.scheduler[itemid]
            jobs = sorted((job['created'], jobid) for jobid, job in
                          found.jobs.items()
                          if (job['input'] or {}).get('item') == number)
            dues = []
            for created, jobid in jobs:
                due = dueOf(itemid, jobid, created)
                result.check(due is not None, 'job %s of item %s: no due '
                             'time gives its id' % (jobid, itemid))
                dues.append((due, created))
            dues = [pair for pair in dues if pair[0] is not None]
            dues.sort()
            delay = datetime.timedelta(seconds=size['delay'])
            pairs = zip(dues, dues[1:], strict=False)
            for (due, created), (nextDue, _) in pairs:
                # The next due is the call time of this one plus the
                # delay, and that call came after the due, before the job.
                result.check(due <= nextDue - delay <= created,
                             'item %s: jobs due %s and %s are not one '
                             'occurrence apart' % (itemid, due, nextDue))
            if dues and item.nextCallTime is not None:
                due, created = dues[-1]
                result.check(due <= item.nextCallTime - delay <= created,
                             'item %s was advanced past its last job'
                             % itemid)
            chains[number] = len(dues)
        occurrences = sum(chains.values())
        result.check(occurrences == len(expected), 'jobs not of an item')
        prevented = sum(p.output().count('exists already')
                        for p in schedulers)
        result.details.update(
            window_s=size['window'], items=size['items'],
            jobs_per_item=','.join(str(n) for n in chains.values()),
            prevented_duplicates=prevented)
    finally:
        run.close()
    return result


def poison(env, size):
    """A job that always fails ends in error and holds nothing up."""
    result = Result('poison')
    run = Run(env.uri, env.workdir, 'poison', **settingsFor(
        size, **{'m01.remote.worker': 'simple',
                 'faults.poison_retry_delay': size['retryDelay'],
                 'faults.max_retries': size['maxRetries']}))
    try:
        processor = run.processor()
        poisons = [processor.addJob('poison', number)
                   for number in range(size['poisons'])]
        transaction.commit()
        behind = addRecordJobs(processor, size['jobs'])
        worker = run.start('worker')
        started = time.monotonic()
        drain(result, run, poisons + behind, size['timeout'],
              stall=size['retryDelay'] + LATENCY * 3)
        elapsed = time.monotonic() - started
        stopAll(result, [worker], 'worker')
        found = audit(run.database)
        result.counted(found, behind)
        lastPoison = None
        for jobid in poisons:
            job = processor.jobs[jobid]
            result.check(job.status == 'error', 'poison %s is %s'
                         % (jobid, job.status))
            result.check(job.retryCounter == size['maxRetries'],
                         'poison %s: %s attempts' % (jobid, job.retryCounter))
            wanted = ['attempt %d' % n for n in
                      range(1, size['maxRetries'] + 1)]
            kept = [message for message, attempt in zip(
                job.errors, wanted, strict=False) if message.endswith(attempt)]
            result.check(len(kept) == len(job.errors) == len(
                job.tracebacks) == size['maxRetries'],
                'poison %s kept the messages %r' % (jobid, job.errors))
            if job.status != 'error':
                result.lost += 1
            if job.completed and (lastPoison is None or
                                  job.completed < lastPoison):
                lastPoison = job.completed
        done = [found.jobs[jobid]['completed'] for jobid in behind
                if found.jobs[jobid].get('completed')]
        before = sum(1 for when in done if lastPoison and when < lastPoison)
        result.check(done and lastPoison and min(done) < lastPoison,
                     'the jobs behind the poison waited for it')
        result.jobs += len(poisons)
        result.completed += sum(
            1 for jobid in poisons if found.jobs[jobid]['status'] == 'error')
        result.details.update(
            poison_jobs=len(poisons), behind=len(behind),
            behind_done_before_poison_error=before,
            attempts=size['maxRetries'], retry_delay_s=size['retryDelay'],
            elapsed_s=round(elapsed, 1))
    finally:
        run.close()
    return result
