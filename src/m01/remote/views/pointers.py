"""Pages that point elsewhere: ``<prefix>/api`` leads to the JSON API's
index, and ``<prefix>/metrics``, while the metrics are off, says how to
turn them on (when they are on, their own route answers first)."""
from pyramid.httpexceptions import HTTPNotFound
from pyramid.view import view_defaults

from m01.remote import interfaces
from m01.remote.views.common import BaseView, remote_view

METRICS_OFF = ('The metrics are off. Set m01.remote.metrics = pages (behind '
               'the pages\' permission) or public (for a scraper, no '
               'permission) to serve them here, in the Prometheus text '
               'format.')


@view_defaults(context=interfaces.IRemoteProcessor, request_method='GET')
class PointerViews(BaseView):

    @remote_view(name='api')
    def api(self):
        # The API's index is <prefix>/api/, a route of its own.
        return self.redirect(self.context, 'api', '')

    @remote_view(name='metrics')
    def metrics(self):
        raise HTTPNotFound(METRICS_OFF)
