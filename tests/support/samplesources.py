"""Sources with made-up data for the pages' tests and screenshots: what
the overview and the workers page show once a back end fills their
view-models (``m01.remote.views.sources``), and no more than that."""
import datetime

from m01.remote.views.sources import SPANS, Placeholders


class SampleSources(Placeholders):
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
                    available=True, completed=completed, failed=failed)

    def queue(self, processor, now):
        return {'available': True, 'due': 12, 'later': 40,
                'oldestDue': now - datetime.timedelta(seconds=95),
                'note': ''}

    def factoryStats(self, processor, now):
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
            {'id': 'web-1:4242:root', 'host': 'web-1', 'pid': 4242,
             'name': 'root', 'kind': 'worker', 'threads': 4, 'busy': 1,
             'started': now - 90 * minute, 'lastSeen': now - minute / 6,
             'alive': True, 'state': 'running',
             'jobs': [{'id': self.jobid, 'name': 'sleep', 'title': '',
                       'started': now - minute,
                       'leaseExpires': now + minute / 2}],
             'quietUrl': self.quietUrl, 'stopUrl': self.quietUrl},
            {'id': 'web-2:77:root', 'host': 'web-2', 'pid': 77,
             'name': 'root', 'kind': 'scheduler', 'threads': 1, 'busy': 0,
             'started': now - 300 * minute, 'lastSeen': now - minute / 3,
             'alive': True, 'state': 'quiet', 'jobs': [],
             'quietUrl': None, 'stopUrl': None},
            {'id': 'web-1:4100:root', 'host': 'web-1', 'pid': 4100,
             'name': 'root', 'kind': 'worker', 'threads': 4, 'busy': 0,
             'started': now - 900 * minute, 'lastSeen': now - 20 * minute,
             'alive': False, 'state': 'running', 'jobs': [],
             'quietUrl': self.quietUrl, 'stopUrl': None}]}

    def jobSearch(self, request):
        return {'enabled': True, 'q': request.GET.get('q', '')}

    def bulkActions(self, request, filters):
        base = request.route_url('m01.remote', traverse=('jobs',))
        return {'enabled': True, 'actions': [
            {'name': 'retry', 'label': 'Retry', 'danger': False,
             'url': base + '/bulk-retry'},
            {'name': 'delete', 'label': 'Delete', 'danger': True,
             'url': base + '/bulk-delete'}]}
