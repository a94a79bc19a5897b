"""What guards the management pages beyond the permission: security
headers, malformed requests refused early, and error pages of their own.

Everything here applies to requests under the add-on's route prefix
only; the host site's other responses are left as they are.
"""
import urllib.parse

from pyramid.httpexceptions import (
    HTTPBadRequest,
    HTTPNotFound,
    HTTPRequestEntityTooLarge,
)
from pyramid.renderers import render_to_response
from pyramid.tweens import EXCVIEW

from m01.remote.interfaces import IRemoteProcessor
from m01.remote.limits import MAX_FORM_FIELDS, MAX_REQUEST_BODY, shorten
from m01.remote.settings import get_remote_settings
from m01.remote.views.api import errorView
from m01.remote.views.common import BaseView, template
from m01.remote.views.routes import ROUTE_NAME

#: Sent with every response under the route (unless a view set its own):
#: no page may be framed (its action buttons could be), nothing is
#: sniffed into another type, cached or told where it came from. Styles
#: and scripts come from the add-on's own files only (``assets``), never
#: inline, so text a page shows cannot become either; the script may
#: fetch the site's pages (live parts, confirmations) and nothing else.
SECURITY_HEADERS = (
    ('X-Frame-Options', 'DENY'),
    ('Content-Security-Policy',
     "default-src 'none'; style-src 'self'; script-src 'self'; "
     "connect-src 'self'; img-src 'self'; form-action 'self'; "
     "base-uri 'none'; frame-ancestors 'none'"),
    ('X-Content-Type-Options', 'nosniff'),
    ('Cache-Control', 'no-store'),
    ('Referrer-Policy', 'no-referrer'),
)

#: The methods whose body is a form.
FORM_METHODS = ('POST', 'PUT', 'PATCH')

# The statuses an error page under the route is shown for; a 403 stays
# the site's (its forbidden view may ask for a login).
ERROR_PAGES = (HTTPBadRequest, HTTPNotFound, HTTPRequestEntityTooLarge,
               UnicodeDecodeError)


class ErrorView(BaseView):
    """A 400, 404 or 413 under the route, in the pages' layout."""

    section = None

    def __init__(self, context, request):
        super().__init__(context, request)
        self.status = getattr(context, 'code', 400)
        self.title = getattr(context, 'title', 'Bad Request')
        self.links = []
        if isinstance(context, UnicodeDecodeError):
            self.detail = 'The request is not valid UTF-8.'
        else:
            self.detail = getattr(context, 'detail', None) or ''
        if isinstance(context, HTTPNotFound) and \
                self.detail in ('', request.path_info):
            self.detail, self.links = self.notFound()

    def notFound(self):
        """What a 404 of a path no view answers says, and where to go:
        ``(detail, [(label, url)])``."""
        request = self.request
        traversed = tuple(getattr(request, 'traversed', None) or ())
        name = shorten(getattr(request, 'view_name', '') or '', 80)
        rp = self.processor
        if traversed == ('jobs',) and name:
            return ('There is no job %s. It may have been deleted (by hand, '
                    'or with the jobs of a filter), or the address is '
                    'mistyped.' % name,
                    [('Search the jobs for it',
                      self.url(rp.jobs, q=name)),
                     ('All jobs', self.url(rp.jobs))])
        if traversed == ('scheduler',) and name:
            return ('There is no scheduler item %s: it may have been '
                    'deleted.' % name,
                    [('The scheduler items', self.url(rp.scheduler))])
        if traversed == ('factories',) and name:
            return ('There is no job factory %s: the application registers '
                    'them as it starts.' % name,
                    [('The job factories', self.url(rp.jobFactories))])
        return ('There is no page %s here.'
                % shorten(request.path_info, 200), [])

    @property
    def processor(self):
        # The root may be missing: routing or the root factory failed.
        return self.request.registry.getUtility(IRemoteProcessor)

    def flashMessages(self):
        # Kept for the next page that works.
        return []

    def __call__(self):
        self.request.response.status = self.status
        return {'title': '%d %s' % (self.status, self.title),
                'detail': shorten(self.detail, 1000), 'links': self.links}


def errorResponse(exception, request):
    view = ErrorView(exception, request)
    response = render_to_response(template('error'),
                                  dict(view(), view=view), request)
    response.status = view.status
    return response


def _utf8(data):
    try:
        data.decode('utf-8')
    except UnicodeError:
        return False
    return True


def formFields(request):
    """How many fields the form body of ``request`` holds, counted in its
    bytes (without parsing it); 0 for a body that is no form."""
    body = request.body
    if request.content_type == 'application/x-www-form-urlencoded':
        return body.count(b'&') + 1 if body else 0
    if request.content_type == 'multipart/form-data':
        boundary = request.headers.get('Content-Type', '').partition(
            'boundary=')[2].strip('"; ').encode('latin-1', 'replace')
        return body.count(b'--' + boundary) if boundary else 0
    return 0


def check_request(request, permission):
    """The error a request under the route is refused with before any
    work, or None: a path or query that is not UTF-8 (which no handler
    could read), a body over MAX_REQUEST_BODY bytes (refused unread), a
    form of more than MAX_FORM_FIELDS fields or that cannot be parsed.

    The form of a request lacking ``permission`` is never parsed: its
    view refuses it first, whatever its body holds."""
    environ = request.environ
    # WSGI hands the path decoded from its escapes, as latin-1 text, and
    # the query as sent.
    path = environ.get('PATH_INFO', '').encode('latin-1', 'replace')
    query = urllib.parse.unquote_to_bytes(environ.get('QUERY_STRING', ''))
    if not (_utf8(path) and _utf8(query)):
        return HTTPBadRequest('The URL is not valid UTF-8.')
    if (request.content_length or 0) > MAX_REQUEST_BODY:
        return HTTPRequestEntityTooLarge(
            'The request has %d bytes; at most %d are read.'
            % (request.content_length, MAX_REQUEST_BODY))
    if not request.content_length or request.method not in FORM_METHODS \
            or not request.has_permission(permission,
                                          request.remote_processor):
        return None
    fields = formFields(request)
    if fields > MAX_FORM_FIELDS:
        return HTTPRequestEntityTooLarge(
            'The form has %d fields; at most %d are read.'
            % (fields, MAX_FORM_FIELDS))
    try:
        # Read here, as the CSRF check or the view would: a form that
        # cannot be read (a multipart body without its boundary, say)
        # is the client's error, not a view's.
        request.POST  # noqa: B018 (parsed for its errors)
    except (ValueError, UnicodeDecodeError):
        return HTTPBadRequest('The form cannot be read.')
    return None


def security_tween_factory(handler, registry):
    """Check requests under the route and add the security headers to
    every response there, error pages included."""
    settings = get_remote_settings(registry)
    prefix = settings.route_prefix
    api = ('' if prefix == '/' else prefix) + '/api/'

    def under_route(request):
        # What the route pattern ('/remote*traverse') matches.
        path = request.environ.get('PATH_INFO', '')
        return prefix == '/' or path.startswith(prefix)

    def security_tween(request):
        if not under_route(request):
            return handler(request)
        refusal = check_request(request, settings.permission)
        if refusal is None:
            response = handler(request)
        elif request.environ.get('PATH_INFO', '').startswith(api):
            response = errorView(refusal, request)   # JSON, as the API's
        else:
            response = errorResponse(refusal, request)
        for name, value in SECURITY_HEADERS:
            response.headers.setdefault(name, value)
        return response

    return security_tween


def includeme(config):
    config.add_tween('m01.remote.views.security.security_tween_factory',
                     over=EXCVIEW)
    for context in ERROR_PAGES:
        config.add_exception_view(
            ErrorView, context=context, route_name=ROUTE_NAME,
            renderer=template('error'))
