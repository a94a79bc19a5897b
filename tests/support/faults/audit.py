"""Counting what became of the jobs of a fault scenario (``faults.py``).

``audit`` reads back every job and execution record once; ``Audit``
says which jobs completed exactly once, which ran twice and which were
lost, ``stuckJobs`` why unfinished jobs stopped moving, and ``Result``
is a scenario's summary line.
"""
import dataclasses

from bson import ObjectId

from m01.remote.clock import utcnow
from m01.remote.queue.updates import LOST_WORKER_MESSAGE

#: The prefix of the lost-worker message; the worker id follows it.
LOST_WORKER_PREFIX = LOST_WORKER_MESSAGE.split('%s')[0]

JOB_FIELDS = {'name': 1, 'status': 1, 'input': 1, 'output': 1, 'errors': 1,
              'retryCounter': 1, 'worker': 1, 'completed': 1, 'created': 1,
              'maxRetries': 1}


@dataclasses.dataclass
class Audit:
    """What became of the jobs of a scenario."""

    jobs: dict            # job id -> document (JOB_FIELDS)
    executions: dict      # job id -> execution record
    duplicates: list      # second execution records
    stale: list           # runs whose job was taken over meanwhile

    def completedOnce(self, jobid):
        """Whether the job completed and its execution was recorded."""
        job = self.jobs.get(jobid)
        return (job is not None and job['status'] == 'completed'
                and jobid in self.executions)

    def unexplainedStale(self):
        """Stale runs whose job was not taken over from their worker:
        without a takeover two runs held the job at once, which is a
        duplicate however it ended."""
        unexplained = []
        for run in self.stale:
            job = self.jobs.get(run['job'])
            errors = (job or {}).get('errors') or ()
            marker = LOST_WORKER_PREFIX + run['worker']
            if not any(marker in message for message in errors):
                unexplained.append(run)
        return unexplained

    def count(self, expected):
        """``(completed, duplicates, lost)`` of the expected job ids."""
        expected = set(expected)
        completed = sum(1 for jobid in expected if self.completedOnce(jobid))
        duplicates = sum(1 for run in self.duplicates
                         if run['job'] in expected)
        duplicates += sum(1 for run in self.unexplainedStale()
                          if run['job'] in expected)
        return completed, duplicates, len(expected) - completed

    def rerunsAfterLostOutcome(self, expected):
        """Second runs of jobs whose first run recorded its execution
        and then lost the job before its outcome was stored (killed, or
        cut off from the server, while committing): its lease expired
        and the job ran again. A job's effect written before its outcome
        happens at least once, not exactly once; the unique index
        refused the second record."""
        reruns = []
        for run in self.duplicates:
            first = self.executions.get(run['job'])
            job = self.jobs.get(run['job'])
            if run['job'] not in expected or first is None or job is None:
                continue
            marker = LOST_WORKER_PREFIX + first['worker']
            if any(marker in message for message in job.get('errors') or ()):
                reruns.append(run)
        return reruns

    def byStatus(self, jobids=None):
        counts = {}
        for jobid, job in self.jobs.items():
            if jobids is None or jobid in jobids:
                counts[job['status']] = counts.get(job['status'], 0) + 1
        return counts


def audit(database, prefix='r'):
    from support.faults.jobs import DUPLICATES, EXECUTIONS, STALE
    jobs = {str(job['_id']): job
            for job in database[prefix + 'jobs'].find({}, JOB_FIELDS)}
    executions = {record['_id']: record
                  for record in database[EXECUTIONS].find()}
    return Audit(jobs, executions, list(database[DUPLICATES].find()),
                 list(database[STALE].find()))


def unfinished(database, jobids, prefix='r'):
    """The jobs of ``jobids`` still queued or processing, in one query.
    """
    jobids = set(jobids)
    return [str(job['_id']) for job in database[prefix + 'jobs'].find(
        {'status': {'$in': ['queued', 'processing']}}, {'_id': 1})
        if str(job['_id']) in jobids]


def stuckJobs(database, jobids, prefix='r'):
    """Where unfinished jobs stopped: ``{jobid: reason}``. ``queued``: no
    worker claimed it (``not due`` while its retry time is ahead);
    ``processing``: a worker holds it, or its lease has not expired yet.
    """
    reasons = {}
    jobs = database[prefix + 'jobs']
    now = None
    for jobid in unfinished(database, jobids, prefix):
        job = jobs.find_one({'_id': ObjectId(jobid)},
                            {'status': 1, 'retryTime': 1})
        if job is None:
            continue
        if job['status'] == 'queued' and job.get('retryTime'):
            now = now or utcnow()
            if job['retryTime'] > now:
                reasons[jobid] = 'not due'
                continue
        reasons[jobid] = job['status']
    return reasons


def countExecutions(database):
    from support.faults.jobs import EXECUTIONS
    return database[EXECUTIONS].count_documents({})


def jobsOf(database, worker, prefix='r'):
    """The jobs ``worker`` is processing: ``{jobid: claim}``."""
    return {str(job['_id']): job.get('claim')
            for job in database[prefix + 'jobs'].find(
                {'status': 'processing', 'worker': worker},
                {'claim': 1, 'picked': 1})}


def completedAfter(database, instant):
    from support.faults.jobs import EXECUTIONS
    return database[EXECUTIONS].count_documents({'at': {'$gt': instant}})


@dataclasses.dataclass
class Result:
    """The summary of one scenario."""

    scenario: str
    jobs: int = 0
    completed: int = 0
    duplicates: int = 0
    lost: int = 0
    recovery: float = None
    details: dict = dataclasses.field(default_factory=dict)
    problems: list = dataclasses.field(default_factory=list)
    #: Jobs that stopped moving, and why (see ``stuckJobs``).
    stuck: dict = dataclasses.field(default_factory=dict)
    #: Of the duplicates, the reruns after a lost outcome (see
    #: ``Audit.rerunsAfterLostOutcome``).
    reruns: int = 0
    skipped: str = None

    def line(self):
        if self.skipped:
            return '%-9s skipped: %s' % (self.scenario, self.skipped)
        recovery = '-' if self.recovery is None else '%.1f' % self.recovery
        details = ' '.join('%s=%s' % item for item in self.details.items())
        return ('%-9s jobs=%d completed=%d duplicates=%d lost=%d '
                'recovery_s=%s %s' % (self.scenario, self.jobs,
                                      self.completed, self.duplicates,
                                      self.lost, recovery, details)).rstrip()

    def check(self, condition, problem):
        if not condition:
            self.problems.append(problem)

    def counted(self, found, expected):
        """Set jobs, completed, duplicates and lost from an audit."""
        self.jobs = len(expected)
        self.completed, self.duplicates, self.lost = found.count(expected)
        self.reruns = len(found.rerunsAfterLostOutcome(set(expected)))
        if self.reruns:
            self.details['reruns_after_lost_outcome'] = self.reruns
