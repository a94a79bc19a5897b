"""A demo site: the management pages behind a login, with a few jobs.

An example of a site using m01.remote, not a part of it: ``pip install
-e examples/demo`` installs it beside the add-on.

``pserve development.ini`` serves it. Everything here is the *site's*
business, not the add-on's: the security policy (one user from the
``demo.user`` / ``demo.password`` settings, granted the pages'
permission), the CSRF storage policy the pages' forms need, the job
factories and the scheduler items.
"""
import hmac
import html
import logging
import re
import secrets
import threading
import time
import urllib.parse

from pyramid.authentication import AuthTktCookieHelper
from pyramid.config import Configurator
from pyramid.csrf import (
    CookieCSRFStoragePolicy,
    get_csrf_token,
    new_csrf_token,
)
from pyramid.exceptions import ConfigurationError
from pyramid.httpexceptions import HTTPForbidden, HTTPSeeOther
from pyramid.response import Response
from pyramid.security import Allowed, Denied, forget, remember
from pyramid.session import SignedCookieSessionFactory
from pyramid.tweens import INGRESS

from m01.remote import ROUTE_NAME
from m01.remote.settings import get_remote_settings
from m01remote_demo.jobs import EchoJob, FailingJob, SleepJob, StepsJob

logger = logging.getLogger('m01remote_demo')

DEMO_KEYS = ('demo.user', 'demo.password', 'demo.secret', 'demo.url')


def demo_url(settings):
    """The site's own URL (``demo.url``, scheme and host, no path), or
    None: every URL the site builds (redirects included) starts with it,
    whatever Host header a request carries."""
    url = (settings.get('demo.url') or '').strip().rstrip('/')
    if not url:
        return None
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ('http', 'https') or not parts.netloc \
            or parts.path or parts.query or parts.fragment:
        raise ConfigurationError(
            'demo.url must be a scheme and a host, such as '
            'https://queue.example.com, not %r' % url)
    return parts


def demo_settings(settings):
    """``(user, password, secret)`` from the ``demo.*`` settings."""
    unknown = sorted(k for k in settings
                     if k.startswith('demo.') and k not in DEMO_KEYS)
    if unknown:
        raise ConfigurationError('Unknown setting(s) %s; the demo knows %s'
                                 % (', '.join(unknown), ', '.join(DEMO_KEYS)))
    user = (settings.get('demo.user') or '').strip()
    password = settings.get('demo.password') or ''
    if not user or not password:
        raise ConfigurationError('The demo needs demo.user and '
                                 'demo.password settings to log in with.')
    secret = settings.get('demo.secret')
    if not secret:
        # Fine for a demo: a restart only logs everybody out.
        logger.warning('demo.secret is not set: using a random one')
        secret = secrets.token_hex(32)
    return user, password, secret


#: Seconds a login ticket lasts without a request, and after how many
#: seconds a request renews it.
LOGIN_TIMEOUT = 30 * 60
LOGIN_REISSUE = 60


class DemoSecurityPolicy:
    """One user, who is granted the management permission and no other.

    A login ticket expires after LOGIN_TIMEOUT seconds without a request
    and holds the user's current login nonce; logging out draws a new
    one, so every ticket issued before (a saved cookie too) stops
    working. The nonces live in this process, which is all the demo's
    embedded store allows anyway; a restart logs everybody out.
    """

    def __init__(self, secret, user):
        # A ticket sent over HTTPS is marked Secure, so the browser never
        # sends it over plain HTTP; one over HTTP (the development
        # server) could not be.
        self.helpers = {
            secure: AuthTktCookieHelper(
                secret, hashalg='sha512', http_only=True, samesite='Lax',
                secure=secure, timeout=LOGIN_TIMEOUT,
                reissue_time=LOGIN_REISSUE)
            for secure in (False, True)}
        self.user = user
        self._nonces = {}
        self._lock = threading.Lock()

    def _nonce(self, userid):
        with self._lock:
            # A token of an auth ticket starts with a letter.
            return self._nonces.setdefault(
                userid, 'n' + secrets.token_hex(16))

    def revoke(self, userid):
        """Make every ticket issued to ``userid`` so far invalid."""
        with self._lock:
            self._nonces.pop(userid, None)

    def helperFor(self, request):
        return self.helpers[request.scheme == 'https']

    def identity(self, request):
        identity = self.helperFor(request).identify(request)
        if identity is None or identity['userid'] != self.user:
            return None
        if not hmac.compare_digest(
                ''.join(identity['tokens'][:1]), self._nonce(self.user)):
            return None
        return identity['userid']

    def authenticated_userid(self, request):
        return self.identity(request)

    def permits(self, request, context, permission):
        if self.identity(request) is None:
            return Denied('Not logged in')
        if permission != get_remote_settings(request.registry).permission:
            return Denied('%s is not granted %r' % (self.user, permission))
        return Allowed('%s is granted %r' % (self.user, permission))

    def remember(self, request, userid, **kw):
        return self.helperFor(request).remember(request, userid,
                                    tokens=(self._nonce(userid),), **kw)

    def forget(self, request, **kw):
        userid = self.identity(request)
        if userid is not None:
            self.revoke(userid)
        return self.helperFor(request).forget(request, **kw)


PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>{title} – m01.remote demo</title>
  <link rel="stylesheet" href="{stylesheet}">
</head>
<body>
<header><nav aria-label="Sections"><a class="brand" href="{home}">m01.remote
demo</a><a class="tab" href="{pages}">Management pages</a>{user}</nav>
</header>
<main>
<h1>{title}</h1>
{body}
</main>
</body>
</html>
"""

USER = (
    '<div class="user" id="user"><span class="user-name">{user}</span>'
    '<form method="post" action="{logout}" class="inline" id="logout">'
    '<input type="hidden" name="csrf_token" value="{token}">'
    '<button type="submit" class="link">Log out</button></form></div>')
LOGIN_LINK = '<div class="user" id="user"><a class="tab" href="{login}">' \
    'Log in</a></div>'


def render_page(request, title, body, status=200):
    """A page of the demo in the add-on's look: its stylesheet, its
    header with the signed-in user and the logout (or a login link)."""
    user = request.authenticated_userid
    if user is None:
        corner = LOGIN_LINK.format(
            login=html.escape(request.route_url('login')))
    else:
        corner = USER.format(
            user=html.escape(user),
            logout=html.escape(request.route_url('logout')),
            token=html.escape(get_csrf_token(request)))
    page = PAGE.format(
        title=html.escape(title), body=body,
        home=html.escape(request.route_url('home')),
        pages=html.escape(pages_url(request)), user=corner,
        stylesheet=html.escape(request.route_url(
            ROUTE_NAME, traverse='/m01remote.css')))
    return Response(page, status=status, content_type='text/html',
                    charset='utf-8')


def pages_url(request):
    return request.route_url(ROUTE_NAME, traverse=())


def welcome_view(request):
    user = request.authenticated_userid
    if user is None:
        state = ('<p>Log in to manage the queue: <a class="button" '
                 'href="%s">Log in</a></p>'
                 % html.escape(request.route_url('login')))
    else:
        state = ('<p>Logged in as %s: <a class="button" '
                 'href="%s">Open the management pages</a></p>'
                 % (html.escape(user), html.escape(pages_url(request))))
    body = (
        '<div class="card"><p class="nomargin-top">A remote processing '
        'queue stored in MongoDB. This demo has an <code>echo</code>, a '
        '<code>sleep</code>, a <code>steps</code> and an always failing '
        '<code>fail</code> job, an echo every minute and a sleep every '
        'five minutes.</p>%s'
        '<p class="help">The management pages: <a href="%s">%s</a></p>'
        '</div>' % (state, html.escape(pages_url(request)),
                    html.escape(pages_url(request))))
    return render_page(request, 'm01.remote', body)


# A local path (not '//host', nor '/\\host', which browsers read as
# '//host') of printable ASCII: no header splitting, no other site.
LOCAL_PATH = re.compile(r'/(?![/\\])[!-~]*\Z')
MAX_CAME_FROM = 2000


def safe_came_from(request, came_from):
    # Never redirect a login to another site, or into a broken header.
    if came_from and len(came_from) <= MAX_CAME_FROM \
            and LOCAL_PATH.match(came_from) and '\\' not in came_from:
        return request.application_url + came_from
    return pages_url(request)


LOGIN_HINT = (
    '<p class="help" id="login-hint">The demo has one user, named by the '
    '<code>demo.user</code> and <code>demo.password</code> settings: '
    '<code>admin</code> / <code>admin</code> with '
    '<code>development.ini</code>.</p>')


def login_form(request, came_from, message='', status=200):
    body = (
        '%s<form method="post" action="%s" class="card" id="login">'
        '<input type="hidden" name="csrf_token" value="%s">'
        '<input type="hidden" name="came_from" value="%s">'
        '%s'
        '<div class="field"><label for="login-user">User</label>'
        '<input type="text" id="login-user" name="login" '
        'autocomplete="username" autocapitalize="none" spellcheck="false">'
        '</div>'
        '<div class="field"><label for="login-password">Password</label>'
        '<input type="password" id="login-password" name="password" '
        'autocomplete="current-password"></div>'
        '<p class="actions"><button type="submit">Log in</button></p>'
        '</form>' % (
            '<p role="alert" class="flash flash-error">%s</p>'
            % html.escape(message) if message else '',
            html.escape(request.route_url('login')),
            html.escape(get_csrf_token(request)), html.escape(came_from),
            LOGIN_HINT))
    return render_page(request, 'Log in', body, status)


#: Failed logins a client address may make in THROTTLE_WINDOW seconds,
#: and those made for one user name from all addresses together; past
#: either, a login is refused unchecked until the window has passed.
FAILURES_PER_ADDRESS = 5
FAILURES_PER_USER = 20
THROTTLE_WINDOW = 300
#: The most addresses and names remembered at once (the oldest go first):
#: a flood of made-up names costs bounded memory.
THROTTLE_KEYS = 10000


class LoginThrottle:
    """Counts failed logins per client address and per user name."""

    def __init__(self, clock=time.monotonic):
        self.clock = clock
        self._failures = {}
        self._lock = threading.Lock()

    def _recent(self, key):
        since = self.clock() - THROTTLE_WINDOW
        times = [t for t in self._failures.get(key, ()) if t > since]
        if times:
            self._failures[key] = times
        else:
            self._failures.pop(key, None)
        return times

    def retryAfter(self, address, login):
        """Seconds until a login from ``address`` for ``login`` is
        checked again; 0 when it is checked now."""
        with self._lock:
            waits = [
                times[0] + THROTTLE_WINDOW - self.clock()
                for times, limit in (
                    (self._recent(('address', address)),
                     FAILURES_PER_ADDRESS),
                    (self._recent(('user', login)), FAILURES_PER_USER))
                if len(times) >= limit]
        return max([int(wait) + 1 for wait in waits], default=0)

    def failed(self, address, login):
        with self._lock:
            now = self.clock()
            for key in (('address', address), ('user', login)):
                times = self._recent(key) + [now]
                # Moved to the end: the oldest keys go first.
                self._failures.pop(key, None)
                self._failures[key] = times
            while len(self._failures) > THROTTLE_KEYS:
                del self._failures[next(iter(self._failures))]


def login_view(request):
    came_from = request.params.get('came_from', '')
    if request.method != 'POST':
        return login_form(request, came_from)
    policy = request.registry.demo_login
    login = request.POST.get('login', '')
    password = request.POST.get('password', '')
    address = request.remote_addr or ''
    wait = policy['throttle'].retryAfter(address, login)
    if wait:
        response = login_form(
            request, came_from, 'Too many failed logins: try again in %d '
            'seconds.' % wait, 429)
        response.headers['Retry-After'] = str(wait)
        return response
    if hmac.compare_digest(login.encode(), policy['user'].encode()) and \
            hmac.compare_digest(password.encode(),
                                policy['password'].encode()):
        # A token a page showed before the login must not stay valid.
        new_csrf_token(request)
        return HTTPSeeOther(safe_came_from(request, came_from),
                            headers=remember(request, login))
    policy['throttle'].failed(address, login)
    return login_form(request, came_from, 'Wrong user or password.', 400)


def logout_view(request):
    new_csrf_token(request)
    return HTTPSeeOther(request.route_url('home'), headers=forget(request))


def bad_url_view(request):
    # The site's pages only; the add-on answers for its own route.
    return render_page(request, 'Bad request', '<p>The request is not valid '
                       'UTF-8.</p>', status=400)


def bad_form_view(request):
    # A form the CSRF check cannot parse (a multipart body without its
    # boundary): the client's error.
    return render_page(request, 'Bad request',
                       '<p>The form cannot be read.</p>',
                       status=400)


def forbidden_view(request):
    if request.authenticated_userid is None:
        # Back to the page after the login, if its URL is one to keep.
        came_from = next((url for url in (request.path_qs, request.path)
                          if len(url) <= MAX_CAME_FROM), None)
        return HTTPSeeOther(request.route_url(
            'login', _query={'came_from': came_from} if came_from else {}))
    return render_page(request, 'Forbidden', '<p>%s may not do this.</p>'
                       % html.escape(request.authenticated_userid),
                       status=HTTPForbidden.code)


#: The largest request body the demo's own pages read (its login form
#: is a few hundred bytes); a larger one is refused unread. The add-on
#: bounds the bodies under its route itself.
MAX_DEMO_BODY = 16 * 1024

#: What the demo's own pages are sent with, as the add-on's pages are:
#: never framed (the login form could be), never cached, nothing sniffed,
#: styles from the site only, no inline script.
DEMO_HEADERS = (
    ('X-Frame-Options', 'DENY'),
    ('Content-Security-Policy',
     "default-src 'none'; style-src 'self'; img-src 'self'; "
     "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"),
    ('X-Content-Type-Options', 'nosniff'),
    ('Cache-Control', 'no-store'),
    ('Referrer-Policy', 'no-referrer'),
)


def demo_tween_factory(handler, registry):
    """The outermost tween: the site's URL from ``demo.url`` (when set)
    in place of the request's Host header, so that no redirect follows a
    forged one; and on the demo's own pages (outside the add-on's route)
    a body cap and the security headers."""
    url = demo_url(registry.settings)
    prefix = get_remote_settings(registry).route_prefix

    def demo_tween(request):
        if url is not None:
            request.environ['wsgi.url_scheme'] = url.scheme
            request.environ['HTTP_HOST'] = url.netloc
        path = request.environ.get('PATH_INFO', '')
        if prefix != '/' and (path == prefix
                              or path.startswith(prefix + '/')):
            return handler(request)
        if (request.content_length or 0) > MAX_DEMO_BODY:
            response = render_page(
                request, 'Request too large',
                '<p>The demo\'s pages read at most %d bytes.</p>'
                % MAX_DEMO_BODY, status=413)
        else:
            response = handler(request)
        for name, value in DEMO_HEADERS:
            response.headers.setdefault(name, value)
        return response
    return demo_tween


def add_demo_jobs(config):
    """The demo's job factories and scheduler items."""
    from m01.remote.scheduler import Cron, Delay
    config.add_remote_job_factory('echo', EchoJob)
    config.add_remote_job_factory('sleep', SleepJob, input=5)
    config.add_remote_job_factory('steps', StepsJob)
    config.add_remote_job_factory('fail', FailingJob, maxRetries=3,
                                  retryDelay=5)
    config.add_remote_scheduler_item('echo every minute', Delay({
        'jobName': 'echo', 'delay': 60, 'retryDelay': 5,
        'input': 'hello from the scheduler'}))
    config.add_remote_scheduler_item(
        'sleep every five minutes',
        Cron.fromExpression('*/5 * * * *', jobName='sleep'))


def main(global_config, **settings):
    """The demo WSGI application (``use = egg:m01remote_demo``)."""
    user, password, secret = demo_settings(settings)
    demo_url(settings)          # a bad one fails at start
    # The management pages offer the demo's logout beside its user.
    settings.setdefault('m01.remote.logout_url', '/logout')
    config = Configurator(settings=settings)
    config.registry.demo_login = {'user': user, 'password': password,
                                  'throttle': LoginThrottle()}
    config.set_security_policy(DemoSecurityPolicy(secret, user))
    # A session, for the messages the pages show after an action.
    config.set_session_factory(SignedCookieSessionFactory(
        secret + ':session', httponly=True, samesite='Lax'))
    # The pages' forms carry a CSRF token; a cookie keeps it without a
    # session factory.
    config.set_csrf_storage_policy(CookieCSRFStoragePolicy(samesite='Lax'))
    config.include('m01.remote')
    config.add_tween('m01remote_demo.demo_tween_factory', under=INGRESS)
    config.add_route('home', '/')
    config.add_route('login', '/login')
    config.add_route('logout', '/logout')
    config.add_view(welcome_view, route_name='home', request_method='GET')
    config.add_view(login_view, route_name='login',
                    request_method=('GET', 'POST'), require_csrf=True)
    config.add_view(logout_view, route_name='logout', request_method='POST',
                    require_csrf=True)
    config.add_forbidden_view(forbidden_view)
    # A path, query or form that is not UTF-8 (URLDecodeError is one).
    config.add_exception_view(bad_url_view, context=UnicodeDecodeError)
    for route in ('login', 'logout'):
        config.add_exception_view(bad_form_view, context=ValueError,
                                  route_name=route)
    add_demo_jobs(config)
    return config.make_wsgi_app()
