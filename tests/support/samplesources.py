"""Sources of the pages' view-models (``m01.remote.views.sources``) for
their tests and screenshots: ``SampleSources`` fills the overview's and
the workers page's view-models with made-up data, so that the pages show
busy workers, charts and a backlog without a queue doing the work;
``NoDataSources`` has none of it,
as a source of a site's own that lacks the data may say, so that the
pages' notes for that are shown."""
import datetime

from m01.remote.views.sources import SPANS, QueueSources

NO_DATA = 'No data yet: this source does not have %s.'


class NoDataSources:
    """Every view-model unavailable, with the note a page shows."""

    def activity(self, processor, now, span='hour'):
        _label, bucketSeconds, _count = SPANS[span]
        return {'available': False, 'span': span,
                'bucketSeconds': bucketSeconds, 'end': now,
                'completed': [], 'failed': [],
                'note': NO_DATA % 'how many jobs complete and fail a minute'}

    def queue(self, processor, now):
        return {'available': False, 'due': None, 'later': None,
                'oldestDue': None,
                'note': NO_DATA % 'how long due jobs have waited'}

    def factoryStats(self, processor, now, span='hour'):
        return {'available': False, 'rows': [],
                'note': NO_DATA % 'job counts and run times per factory'}

    def workers(self, processor, now):
        return {'available': False, 'processes': [],
                'note': NO_DATA % 'worker heartbeats'}

    def jobSearch(self, request):
        return {'enabled': False, 'q': ''}

    def bulkActions(self, request, filters):
        return {'enabled': False, 'actions': []}


class SampleSources(NoDataSources):
    """Every view-model filled in, from fixed patterns."""

    def __init__(self, jobid=None, quietUrl=None):
        self.jobid = jobid or '6b0ed8ff8fe38db6b0c02e3c'
        self.quietUrl = quietUrl

    def activity(self, processor, now, span='hour'):
        _label, bucketSeconds, count = SPANS[span]
        completed = [(index * 7) % 23 + (10 if index % 10 < 6 else 0)
                     for index in range(count)]
        failed = [2 if index % 13 == 5 else 0 for index in range(count)]
        return dict(super().activity(processor, now, span),
                    available=True, completed=completed, failed=failed,
                    note='')

    def queue(self, processor, now):
        return {'available': True, 'due': 12, 'later': 40,
                'oldestDue': now - datetime.timedelta(seconds=95),
                'note': ''}

    def factoryStats(self, processor, now, span='hour'):
        return {'available': True, 'note': '', 'rows': [
            {'name': 'echo', 'queued': 3, 'processing': 1,
             'completed': 1204, 'error': 2, 'meanSeconds': 0.042,
             'paused': False, 'concurrency': None},
            {'name': 'sleep', 'queued': 9, 'processing': 2,
             'completed': 77, 'error': 0, 'meanSeconds': 5.3,
             'paused': True, 'concurrency': 2}]}

    def workers(self, processor, now):
        minute = datetime.timedelta(minutes=1)
        return {'available': True, 'note': '', 'processes': [
            {'id': 'web-1:4242:root:1f2e3d4c', 'host': 'web-1',
             'pid': 4242, 'name': 'root', 'kinds': ['worker'],
             'origin': 'm01remote worker', 'threads': 4, 'busy': 1,
             'started': now - 90 * minute, 'lastSeen': now - minute / 6,
             'alive': True, 'state': 'running',
             'jobs': [{'id': self.jobid, 'name': 'sleep', 'title': '',
                       'started': now - minute,
                       'leaseExpires': now + minute / 2}],
             'quietUrl': self.quietUrl, 'resumeUrl': None,
             'stopUrl': self.quietUrl},
            {'id': 'web-2:77:root:5a6b7c8d', 'host': 'web-2', 'pid': 77,
             'name': 'root', 'kinds': ['scheduler'],
             'origin': 'm01remote scheduler', 'threads': 0, 'busy': 0,
             'started': now - 300 * minute, 'lastSeen': now - minute / 3,
             'alive': True, 'state': 'quiet', 'jobs': [],
             'quietUrl': None, 'resumeUrl': None, 'stopUrl': None},
            {'id': 'web-1:4100:root:9e8f7a6b', 'host': 'web-1',
             'pid': 4100, 'name': 'root', 'kinds': ['worker'],
             'origin': 'threads', 'threads': 4, 'busy': 0,
             'started': now - 900 * minute, 'lastSeen': now - 20 * minute,
             'alive': False, 'state': 'gone', 'jobs': [],
             # The page offers no action on a process that is gone.
             'quietUrl': self.quietUrl, 'resumeUrl': None,
             'stopUrl': None}]}

    # The jobs page's search and bulk actions are the queue's own: they
    # need no made-up data.

    def jobSearch(self, request):
        return QueueSources(request).jobSearch(request)

    def bulkActions(self, request, filters):
        return QueueSources(request).bulkActions(request, filters)
