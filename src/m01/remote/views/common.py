"""What every management page shares: URLs, the layout, flash messages,
form parsing and the ``remote_view`` decorator."""
import json

import venusian
from pyramid.decorator import reify
from pyramid.httpexceptions import HTTPBadRequest, HTTPNotFound, HTTPSeeOther
from pyramid.interfaces import ISessionFactory
from pyramid.renderers import get_renderer
from pyramid.response import Response

from m01.remote import operations
from m01.remote.limits import (
    FLASH_BUDGET,
    MAX_DOCUMENT_DEPTH,
    MAX_FLASH,
    SHOWN_ERROR,
    SHOWN_VALUE,
    loadJSON,
    nestedDeeper,
    shorten,
)
from m01.remote.operations.shapes import finite
from m01.remote.settings import get_remote_settings
from m01.remote.views import formatting, waiting
from m01.remote.views.assets import asset
from m01.remote.views.routes import ROUTE_NAME, resourceUrl
from m01.remote.views.sources import QueueSources

VIEW_CATEGORY = 'm01.remote'

LAYOUT = 'm01.remote.templates:layout.pt'
MACROS = 'm01.remote.templates:macros.pt'
#: What the pages' script sends as X-Requested-With.
SCRIPT = 'm01remote'
# Characters sent at a time by a download.
DOWNLOAD_CHUNK = 64 * 1024


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


def formatTime(value):
    """A stored (UTC) datetime as text, exactly; '' for none."""
    return formatting.exact(value)


class Shown:
    """What a page shows of a stored value: its JSON text up to a limit.

    The value is formatted only as far as the limit (the encoder's
    chunks are read until then), so the work and the text are bounded
    whatever the value holds. ``truncated`` says whether ``text`` is cut,
    ``size`` how many characters were formatted (the whole text's when
    not truncated).
    """

    def __init__(self, value, limit=SHOWN_VALUE, indent=2):
        self.truncated = False
        if nestedDeeper(value, MAX_DOCUMENT_DEPTH):
            # Not stored through the API; never formatted recursively.
            self.text, self.truncated, self.size = (
                '(nested too deeply to show)', True, 0)
            return
        encoder = json.JSONEncoder(indent=indent, sort_keys=True,
                                   ensure_ascii=False, default=str)
        parts, size = [], 0
        for chunk in encoder.iterencode(value):
            parts.append(chunk)
            size += len(chunk)
            if size > limit:
                self.truncated = True
                break
        self.size = size
        self.text = ''.join(parts)[:limit]

    def __str__(self):
        return self.text


def formatJSON(value, limit=SHOWN_VALUE):
    """A stored value as readable JSON text (BSON types as strings), cut
    at ``limit`` characters."""
    return Shown(value, limit).text


def formatValue(value, limit=SHOWN_VALUE):
    """A stored value as JSON on one line, cut at ``limit`` characters."""
    return Shown(value, limit, indent=None).text


TOO_LONG_AGAIN = 'The text sent was too long to be shown again.'


def echoed(values, errors):
    """Drop from ``values`` (a form shown again) every text longer than
    a page shows, noting it beside its field in ``errors``: the form's
    page stays small whatever was sent."""
    for name, value in values.items():
        if isinstance(value, str) and len(value) > SHOWN_VALUE:
            values[name] = ''
            errors[name] = ('%s %s' % (errors.get(name, ''),
                                       TOO_LONG_AGAIN)).strip()


def jsonDownload(value, filename):
    """A response streaming the whole ``value`` as a JSON attachment."""
    # Strict JSON: a float JSON has no notation for is written as text.
    encoder = json.JSONEncoder(sort_keys=True, ensure_ascii=False,
                               default=str, allow_nan=False)

    def body():
        parts, size = [], 0
        for chunk in encoder.iterencode(value):
            parts.append(chunk)
            size += len(chunk)
            if size >= DOWNLOAD_CHUNK:
                yield ''.join(parts).encode('utf-8')
                parts, size = [], 0
        yield ''.join(parts).encode('utf-8')

    if nestedDeeper(value, MAX_DOCUMENT_DEPTH):
        raise HTTPNotFound('The value is nested too deeply to download.')
    value = finite(value)
    return Response(app_iter=body(), content_type='application/json',
                    charset='utf-8',
                    content_disposition='attachment; filename="%s"'
                    % filename)


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


def confirmation(message, back, action=None, button='Confirm',
                 danger=True, detail='', fields=(), rows=()):
    """The view-model of a confirmation page (``confirm.pt``).

    ``message`` asks the question (or, without ``action``, says why the
    action cannot be done); ``action`` is the URL the form posts to, with
    the hidden ``fields`` (``(name, value)`` pairs) and the CSRF token;
    ``button`` labels its button, red when ``danger``; ``rows`` are
    ``(label, value)`` pairs shown in a table (counts, say); ``back`` is
    where "Back" leads. The button names the action ("Delete job"), the
    one dismissing it never does. With the script, the page asking shows
    the form in a dialog; without it, the page is shown.
    """
    return {'message': message, 'back': back, 'action': action,
            'button': button, 'danger': danger, 'detail': detail,
            'fields': list(fields), 'rows': list(rows)}


#: Pages a pager links on either side of the current one.
PAGER_SPAN = 2


def pager(page, pages, urlFor, asked=None, total=None, first=None,
          last=None, noun='jobs'):
    """The view-model of a pager (the ``pager`` macro): page ``page`` of
    ``pages``, ``urlFor(n)`` the URL of page n. ``asked`` is the page
    asked for, when it was past the last (the page then says so).
    ``links`` are the first and last pages and those around this one,
    ``{'number', 'url', 'current'}``, a gap where pages are left out
    (``number`` None)."""
    shown = sorted({1, pages} | set(range(max(1, page - PAGER_SPAN),
                                          min(pages, page + PAGER_SPAN) + 1)))
    links, before = [], 0
    for number in shown:
        if number > before + 1:
            links.append({'number': None, 'url': None, 'current': False})
        links.append({'number': number, 'current': number == page,
                      'url': urlFor(number)})
        before = number
    return {
        'page': page, 'pages': pages, 'total': total, 'first': first,
        'last': last, 'noun': noun, 'links': links if pages > 1 else [],
        'previous': urlFor(page - 1) if page > 1 else None,
        'next': urlFor(page + 1) if page < pages else None,
        'pastEnd': asked if asked is not None and asked > pages else None,
    }


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
    def queries(self):
        """What the page reads (``IQueueQueries``)."""
        return operations.queries(self.processor)

    @property
    def actions(self):
        """What the page changes (``IQueueActions``)."""
        return operations.actions(self.processor)

    @reify
    def sources(self):
        """Where the overview's figures, the workers, the search and the
        bulk actions come from: the view-models of
        ``m01.remote.views.sources``, read through the operator's layer
        once per page. A source set here in its place
        (``BaseView.sources = ...``) serves every page instead."""
        return QueueSources(self.request)

    @property
    def layout(self):
        renderer = get_renderer(LAYOUT)
        return renderer.implementation().macros['layout']

    @property
    def macros(self):
        """The macros of ``macros.pt``, pieces several pages show."""
        return get_renderer(MACROS).implementation().macros

    @reify
    def now(self):
        """The page's "now", from the processor's clock: relative times
        are counted from it (and the script counts on from it)."""
        return self.processor.now()

    def time(self, value):
        """A time as every page shows one: relative, with the exact UTC
        time in its tooltip (``formatting.timeTag``)."""
        return formatting.timeTag(value, self.now)

    def message(self, text, limit=SHOWN_ERROR):
        """A stored error or log message, cut, its stamp shown as every
        time is."""
        return formatting.stampedMessage(text, self.now, limit)

    def asset(self, name):
        """The URL of the stylesheet or the script."""
        return resourceUrl(self.request, self.processor, name,
                           query={'v': asset(name).digest})

    def url(self, resource, *elements, _anchor=None, **query):
        return resourceUrl(self.request, resource, *elements,
                           query=query or None, anchor=_anchor)

    @property
    def signedIn(self):
        """The site's signed-in user (``authenticated_userid``), or None.
        """
        userid = self.request.authenticated_userid
        return None if userid is None else shorten(str(userid), 80)

    @property
    def logoutUrl(self):
        """The site's logout (``m01.remote.logout_url``), or None."""
        return get_remote_settings(self.request.registry).logout_url

    def apiUrl(self, name):
        """The URL of the JSON API's ``name`` ('' for its index)."""
        return resourceUrl(self.request, self.processor, 'api', name)

    #: The navigation tab of the page.
    section = None

    def navigation(self):
        rp = self.processor
        items = [('overview', 'Overview', self.url(rp)),
                 ('jobs', 'Jobs', self.url(rp.jobs)),
                 ('add', 'Add job', self.url(rp.jobs, 'add')),
                 ('factories', 'Factories', self.url(rp.jobFactories)),
                 ('scheduler', 'Scheduler', self.url(rp.scheduler)),
                 ('workers', 'Workers', self.url(rp, 'workers'))]
        return [{'title': title, 'url': url, 'current': key == self.section}
                for key, title, url in items]

    formatTime = staticmethod(formatTime)
    endedButRunning = staticmethod(waiting.endedButRunning)
    duration = staticmethod(formatting.duration)
    formatJSON = staticmethod(formatJSON)
    formatValue = staticmethod(formatValue)

    @staticmethod
    def shorten(text, limit=SHOWN_ERROR):
        return shorten(text, limit)

    def _session(self):
        # Flash messages need the site's session; without one the pages
        # still work, only the messages after a redirect are lost.
        if self.request.registry.queryUtility(ISessionFactory) is None:
            return None
        return self.request.session

    @property
    def fetchedByScript(self):
        """Whether the pages' script fetched this page (to swap its live
        parts in, or to show its confirmation in a dialog): its flash
        messages are then kept for the page the reader sees next."""
        return self.request.headers.get('X-Requested-With') == SCRIPT

    def flash(self, message, queue='success'):
        session = self._session()
        if session is None:
            return
        session.flash(shorten(message, MAX_FLASH), queue)
        # The oldest unread messages go first when they would not fit.
        queues = [(name, session.pop_flash(name)) for name in FLASH_QUEUES]
        while sum(len(json.dumps(text)) for _name, texts in queues
                  for text in texts) > FLASH_BUDGET:
            max(queues, key=lambda item: len(item[1]))[1].pop(0)
        for name, texts in queues:
            for text in texts:
                session.flash(text, name)

    def flashMessages(self):
        session = self._session()
        if session is None or self.fetchedByScript:
            return []
        return [(queue, message) for queue in FLASH_QUEUES
                for message in session.pop_flash(queue)]

    def redirect(self, resource, *elements, **query):
        # 303: the browser follows a POST with a GET.
        return HTTPSeeOther(location=self.url(resource, *elements, **query))

    def invalid(self):
        """Mark the response of a form shown again with errors."""
        self.request.response.status = 400
