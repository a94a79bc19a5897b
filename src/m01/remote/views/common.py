"""What every management page shares: URLs, the layout, flash messages,
form parsing and the ``remote_view`` decorator."""
import datetime
import json
import urllib.parse

import venusian
from pyramid.httpexceptions import HTTPBadRequest, HTTPSeeOther
from pyramid.interfaces import ISessionFactory
from pyramid.renderers import get_renderer
from pyramid.traversal import lineage, quote_path_segment

from m01.remote.limits import loadJSON
from m01.remote.settings import get_remote_settings

ROUTE_NAME = 'm01.remote'
VIEW_CATEGORY = 'm01.remote'

LAYOUT = 'm01.remote.templates:layout.pt'


def template(name):
    return 'm01.remote.templates:%s.pt' % name


def getPermission(registry):
    """The permission every management page requires."""
    return get_remote_settings(registry).permission


class remote_view:
    """Like ``pyramid.view.view_config``, for the m01.remote route.

    The permission is only known once the application's settings are:
    it is read when the module is scanned, not when it is imported.
    Class-level ``view_defaults`` apply as usual.
    """

    venusian = venusian

    def __init__(self, **settings):
        self.settings = settings

    def __call__(self, wrapped):
        settings = dict(self.settings)

        def callback(context, name, ob):
            config = context.config.with_package(info.module)
            kw = dict(settings)
            kw.setdefault('permission', getPermission(config.registry))
            config.add_view(view=ob, route_name=ROUTE_NAME, **kw)

        info = self.venusian.attach(wrapped, callback,
                                    category=VIEW_CATEGORY)
        if info.scope == 'class' and settings.get('attr') is None:
            settings['attr'] = wrapped.__name__
        return wrapped


def resourceUrl(request, resource, *elements, query=None):
    """The URL of ``resource`` (or of a view of it, given elements) under
    the management route, whatever its prefix."""
    names = [loc.__name__ for loc in lineage(resource)
             if getattr(loc, '__parent__', None) is not None]
    names.reverse()
    names.extend(elements)
    base = request.route_url(ROUTE_NAME, traverse=()).rstrip('/')
    url = base + '/' + '/'.join(quote_path_segment(n) for n in names)
    if query:
        url += '?' + urllib.parse.urlencode(query, doseq=True)
    return url


def formatTime(value):
    """A stored (UTC) datetime as text; '' for none."""
    if value is None:
        return ''
    if isinstance(value, datetime.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(datetime.timezone.utc)
        return value.strftime('%Y-%m-%d %H:%M:%S UTC')
    return str(value)


def formatJSON(value):
    """Any stored value as readable JSON text (BSON types as strings)."""
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False,
                      default=str)


def formatValue(value):
    """A stored value as JSON on one line."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False,
                      default=str)


def parseJSON(text):
    """JSON text to a value; an empty text is None. ValueError with a
    message fit for the page on bad JSON."""
    if not text.strip():
        return None
    try:
        return loadJSON(text, 'The JSON text')
    except json.JSONDecodeError as e:
        raise ValueError('Not valid JSON: %s (line %d, column %d)'
                         % (e.msg, e.lineno, e.colno))


def intParam(request, name, default, minimum=None, maximum=None):
    """An integer query parameter, clamped to the given bounds.

    A value that is not an integer is a bad request; one out of bounds
    is clamped, so hand-edited URLs still show a page.
    """
    raw = request.GET.get(name, '')
    if not raw.strip():
        return default
    try:
        value = int(raw)
    except ValueError:
        raise HTTPBadRequest('%s must be a whole number, not %r'
                             % (name, raw))
    if minimum is not None:
        value = max(minimum, value)
    if maximum is not None:
        value = min(maximum, value)
    return value


def choiceParam(request, name, choices, default):
    """A query parameter that must be one of choices (or empty)."""
    value = request.GET.get(name, '')
    if not value:
        return default
    if value not in choices:
        raise HTTPBadRequest('%s must be one of %s, not %r'
                             % (name, ', '.join(choices), value))
    return value


FLASH_QUEUES = ('error', 'success', 'info')


class BaseView:
    """The base of every page: the processor, URLs, flash, the layout."""

    def __init__(self, context, request):
        self.context = context
        self.request = request

    @property
    def processor(self):
        # The route's root: scheduler items need not know their parent.
        return self.request.root

    @property
    def layout(self):
        renderer = get_renderer(LAYOUT)
        return renderer.implementation().macros['layout']

    def url(self, resource, *elements, **query):
        return resourceUrl(self.request, resource, *elements,
                           query=query or None)

    #: The navigation tab of the page.
    section = None

    def navigation(self):
        rp = self.processor
        items = [('overview', 'Overview', self.url(rp)),
                 ('jobs', 'Jobs', self.url(rp.jobs)),
                 ('add', 'Add job', self.url(rp.jobs, 'add')),
                 ('factories', 'Factories', self.url(rp.jobFactories)),
                 ('scheduler', 'Scheduler', self.url(rp.scheduler))]
        return [{'title': title, 'url': url, 'current': key == self.section}
                for key, title, url in items]

    formatTime = staticmethod(formatTime)
    formatJSON = staticmethod(formatJSON)
    formatValue = staticmethod(formatValue)

    def _session(self):
        # Flash messages need the site's session; without one the pages
        # still work, only the messages after a redirect are lost.
        if self.request.registry.queryUtility(ISessionFactory) is None:
            return None
        return self.request.session

    def flash(self, message, queue='success'):
        session = self._session()
        if session is not None:
            session.flash(message, queue)

    def flashMessages(self):
        session = self._session()
        if session is None:
            return []
        return [(queue, message) for queue in FLASH_QUEUES
                for message in session.pop_flash(queue)]

    def redirect(self, resource, *elements, **query):
        # 303: the browser follows a POST with a GET.
        return HTTPSeeOther(location=self.url(resource, *elements, **query))

    def invalid(self):
        """Mark the response of a form shown again with errors."""
        self.request.response.status = 400
