"""How a worker sizes its batches, and which queues it serves."""
import threading

from m01.remote.job import checkQueueName

#: The claim round of a worker sizing its batches itself (no
#: ``batchSize``): a thread takes as many jobs as it runs in half this
#: time (a margin for jobs slower than the mean), and hands back those
#: it has not started once it is over.
ROUND_SECONDS = 0.25
#: The most jobs such a worker claims for one thread at once.
MAX_AUTO_BATCH = 100


def checkBatchSize(batchSize):
    if batchSize is None:
        return None          # sized by the worker (``BatchSizer``)
    if isinstance(batchSize, bool) or not isinstance(batchSize, int) or \
            not 1 <= batchSize <= 1000:
        raise ValueError('batchSize must be a whole number from 1 to 1000, '
                         'not %r' % (batchSize,))
    return batchSize


def queueGroups(queues, maxThreads):
    """The queues a worker serves, as ``[(names, threads)]``: each queue
    with a concurrency of its own (``{name: threads}``) apart, the others
    (``None`` as their count, or a list of names) together with
    ``maxThreads``; ``[(None, maxThreads)]`` for every queue."""
    if queues is None:
        return [(None, maxThreads)]
    if isinstance(queues, str):
        queues = [queues]
    if not isinstance(queues, dict):
        queues = dict.fromkeys(queues)
    if not queues:
        raise ValueError('queues names no queue')
    groups, shared = [], []
    for name, threads in queues.items():
        checkQueueName(name)
        if threads is None:
            shared.append(name)
        elif isinstance(threads, bool) or not isinstance(threads, int) or \
                threads < 1:
            raise ValueError('The concurrency of queue %r must be a whole '
                             'number >= 1, not %r' % (name, threads))
        else:
            groups.append(([name], threads))
    if shared:
        groups.append((shared, maxThreads))
    return groups


class BatchSizer:
    """How many jobs a worker with no ``batchSize`` claims for one thread:
    as many as the thread runs in half ``ROUND_SECONDS``, by the recent mean
    of the time the jobs ran (the claim and the commit are no part of
    what a held job waits for: they come before the first job and after
    the last); one until a job ran, at most ``MAX_AUTO_BATCH``."""

    def __init__(self):
        self.mean = None
        self._lock = threading.Lock()

    def size(self):
        mean = self.mean
        if mean is None:
            return 1
        return max(1, min(MAX_AUTO_BATCH, int(ROUND_SECONDS / 2 /
                                              max(mean, 1e-6))))

    def ran(self, each):
        """A job ran for ``each`` seconds. The mean follows faster jobs
        at once (a process's first job, importing what it needs, is no
        measure of the others) and slower ones gradually (one slow job
        does not make the next batches small); what it gets wrong, the
        hand-back at the end of a round bounds."""
        with self._lock:
            mean = self.mean
            if mean is None:
                self.mean = each
            elif each < mean:
                self.mean = 0.5 * mean + 0.5 * each
            else:
                self.mean = 0.8 * mean + 0.2 * each


def queueNames(queues):
    """The names of ``queues`` (a name, names, or a dictionary of names
    and their threads), None for every queue."""
    if queues is None:
        return None
    return [name for group, _ in queueGroups(queues, 1) for name in group]


def runRound(runBatch, jobs, claimed, sizer):
    """Run ``jobs`` of an automatic batch claimed at ``claimed``
    (``time.monotonic``, as the claim returned) with ``runBatch``: those
    not started one claim round later go back to the queue, and ``sizer``
    learns how long the others ran."""
    handBackAt = claimed + ROUND_SECONDS if len(jobs) > 1 else None
    return runBatch(jobs, handBackAt, sizer)


def runParts(parts, stopped, name, stopTimeout):
    """Run the workers ``parts`` (one per group of queues), each in a
    thread of its own, until the event ``stopped`` is set; then wait up
    to ``stopTimeout()`` seconds for each."""
    threads = [threading.Thread(target=part, daemon=True,
                                name='%s-queues-%d' % (name, number))
               for number, part in enumerate(parts)]
    for thread in threads:
        thread.start()
    try:
        stopped.wait()
    finally:
        for thread in threads:
            thread.join(stopTimeout())
