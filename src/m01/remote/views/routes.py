"""The ``m01.remote`` route: its name, its root factories and the URLs of
the resources under it."""
import urllib.parse

from pyramid.httpexceptions import HTTPForbidden
from pyramid.traversal import lineage, quote_path_segment

from m01.remote.settings import get_remote_settings

ROUTE_NAME = 'm01.remote'


def root_factory(request):
    """A root factory making the processor the traversal root.

    Used by the ``m01.remote`` route; a site whose whole purpose is the
    queue may also pass it to its ``Configurator(root_factory=...)``.
    """
    return request.remote_processor


def pages_root_factory(request):
    """The root factory of the route when the pages are registered: the
    processor, but a request lacking the pages' permission is refused
    (the site's forbidden handling) before any id in its path is looked
    up, so an anonymous answer never tells which jobs or items exist.

    Paths of one segment (``/remote/jobs``) name no id and are left to
    the views' own permission check, which the site's policy then makes
    once, as for any view.
    """
    processor = request.remote_processor
    traverse = (request.matchdict or {}).get('traverse') or ()
    if len(traverse) > 1:
        permission = get_remote_settings(request.registry).permission
        if not request.has_permission(permission, processor):
            raise HTTPForbidden()
    return processor


def resourceUrl(request, resource, *elements, query=None, anchor=None):
    """The URL of ``resource`` (or of a view of it, given elements) under
    the management route, whatever its prefix; ``anchor`` the id of an
    element of its page."""
    names = [loc.__name__ for loc in lineage(resource)
             if getattr(loc, '__parent__', None) is not None]
    names.reverse()
    names.extend(elements)
    base = request.route_url(ROUTE_NAME, traverse=()).rstrip('/')
    url = base + '/' + '/'.join(quote_path_segment(n) for n in names)
    if query:
        url += '?' + urllib.parse.urlencode(query, doseq=True)
    if anchor:
        url += '#' + urllib.parse.quote(anchor, safe=':')
    return url
