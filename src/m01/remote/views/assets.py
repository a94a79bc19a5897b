"""The pages' stylesheet and script, served by the add-on itself.

They ship in the wheel with the templates (``templates/static``) and
are read once. No page loads anything from elsewhere: the pages'
Content-Security-Policy allows styles and scripts from the site only,
and no inline ones.

Both are public (no permission): they hold nothing of the queue, and an
error page shown to a visitor without the permission keeps its layout.
Their URLs carry a digest of the content, so a browser may keep them
until the add-on changes them.
"""
import hashlib
import importlib.resources

from pyramid.response import Response
from pyramid.security import NO_PERMISSION_REQUIRED

from m01.remote.interfaces import IRemoteProcessor
from m01.remote.views.routes import ROUTE_NAME

#: The files, by the view name they are served under.
ASSETS = {
    'm01remote.css': 'text/css',
    'm01remote.js': 'text/javascript',
}
CACHE_CONTROL = 'public, max-age=31536000, immutable'


class Asset:
    """One of the files, read from the installed templates package."""

    def __init__(self, name, contentType):
        self.name = name
        self.contentType = contentType
        files = importlib.resources.files('m01.remote.templates')
        self.body = (files / 'static' / name).read_bytes()
        self.digest = hashlib.sha256(self.body).hexdigest()[:12]


_assets = {}


def asset(name):
    """The ``Asset`` named ``name``, read on first use."""
    found = _assets.get(name)
    if found is None:
        found = _assets[name] = Asset(name, ASSETS[name])
    return found


def serve(context, request):
    found = asset(request.view_name)
    response = Response(body=found.body, content_type=found.contentType,
                        charset='utf-8')
    if request.GET.get('v') == found.digest:
        response.headers['Cache-Control'] = CACHE_CONTROL
    return response


def includeme(config):
    # Registered here rather than scanned: every other view of the route
    # requires the pages' permission.
    for name in ASSETS:
        config.add_view(serve, route_name=ROUTE_NAME, name=name,
                        context=IRemoteProcessor, request_method='GET',
                        permission=NO_PERMISSION_REQUIRED)
