"""Named queues: what is stored about a queue besides its jobs.

A job names its queue (``Job.queue``, ``default`` unless its factory or
``addJob`` says otherwise); a worker claims from the queues it serves.
A queue exists as long as a job or a factory names it. What an operator
sets for a queue is a document in ``queues`` (its ``_id`` the queue's
name), apart from the jobs and the factories: ``paused`` (no process
claims its jobs) and ``rateLimit`` (``[starts, seconds]``, see
``m01.remote.queue.rates``). Each setting is one atomic write of its
field (an upsert); claims read the documents at most every
``cacheSeconds``.
"""
import threading
import time

from m01.remote.job import checkQueueName, checkRateLimit


class QueueSettings:
    """The queues' settings in ``collection``."""

    def __init__(self, collection, cacheSeconds=2.0):
        self.collection = collection
        self.cacheSeconds = cacheSeconds
        self._read = None        # (monotonic time read, {name: document})
        self._lock = threading.Lock()

    def _set(self, name, fields):
        checkQueueName(name)
        self.collection.update_one({'_id': name}, {'$set': fields},
                                   upsert=True)
        self._read = None

    def pause(self, name):
        """No process claims jobs of the queue ``name`` until it is
        resumed."""
        self._set(name, {'paused': True})

    def resume(self, name):
        """Let the jobs of the queue ``name`` be claimed again."""
        self._set(name, {'paused': False})

    def setRateLimit(self, name, rateLimit):
        """At most ``rateLimit`` (``[starts, seconds]``, None: no limit)
        jobs of the queue ``name`` start per period."""
        self._set(name, {'rateLimit': None if rateLimit is None
                         else checkRateLimit(rateLimit)})

    def documents(self, fresh=False):
        """``{name: document}`` of the queues with settings (read at most
        every ``cacheSeconds`` unless ``fresh``)."""
        with self._lock:
            read = self._read
        if fresh or read is None or \
                time.monotonic() - read[0] >= self.cacheSeconds:
            read = (time.monotonic(),
                    {document['_id']: document
                     for document in self.collection.find()})
            with self._lock:
                self._read = read
        return read[1]

    def pausedNames(self, fresh=False):
        return frozenset(name for name, document
                         in self.documents(fresh).items()
                         if document.get('paused'))

    def isPaused(self, name):
        return name in self.pausedNames(fresh=True)

    def rateLimit(self, name, fresh=False):
        """The rate limit of the queue ``name``, or None."""
        document = self.documents(fresh).get(name) or {}
        return document.get('rateLimit')
