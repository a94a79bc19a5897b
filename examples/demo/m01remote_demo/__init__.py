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

from m01.remote import ROUTE_NAME
from m01.remote.settings import get_remote_settings
from m01remote_demo.jobs import EchoJob, FailingJob, SleepJob, StepsJob

logger = logging.getLogger('m01remote_demo')

DEMO_KEYS = ('demo.user', 'demo.password', 'demo.secret')


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
        self.helper = AuthTktCookieHelper(
            secret, hashalg='sha512', http_only=True, samesite='Lax',
            timeout=LOGIN_TIMEOUT, reissue_time=LOGIN_REISSUE)
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

    def identity(self, request):
        identity = self.helper.identify(request)
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
        return self.helper.remember(request, userid,
                                    tokens=(self._nonce(userid),), **kw)

    def forget(self, request, **kw):
        userid = self.identity(request)
        if userid is not None:
            self.revoke(userid)
        return self.helper.forget(request, **kw)


PAGE = """<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>{title} - m01.remote demo</title></head>
<body>
<h1>{title}</h1>
{body}
</body>
</html>
"""


def render_page(title, body, status=200):
    return Response(PAGE.format(title=html.escape(title), body=body),
                    status=status, content_type='text/html',
                    charset='utf-8')


def pages_url(request):
    return request.route_url(ROUTE_NAME, traverse=())


def welcome_view(request):
    user = request.authenticated_userid
    link = '<p><a href="%s">The management pages</a></p>' % html.escape(
        pages_url(request))
    if user is None:
        state = ('<p>Log in to manage the queue: <a href="%s">log in</a>'
                 '</p>' % html.escape(request.route_url('login')))
    else:
        state = (
            '<form method="post" action="%s"><p>Logged in as %s. '
            '<input type="hidden" name="csrf_token" value="%s">'
            '<button type="submit">Log out</button></p></form>' % (
                html.escape(request.route_url('logout')), html.escape(user),
                html.escape(get_csrf_token(request))))
    body = ('<p>A remote processing queue stored in MongoDB. This demo has '
            'an <code>echo</code>, a <code>sleep</code> and an always '
            'failing <code>fail</code> job, an echo every minute and a '
            'sleep every five minutes.</p>' + link + state)
    return render_page('m01.remote', body)


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


def login_form(request, came_from, message='', status=200):
    body = (
        '%s<form method="post" action="%s">'
        '<input type="hidden" name="csrf_token" value="%s">'
        '<input type="hidden" name="came_from" value="%s">'
        '<p><label>User <input name="login" autocomplete="username">'
        '</label></p>'
        '<p><label>Password <input type="password" name="password" '
        'autocomplete="current-password"></label></p>'
        '<p><button type="submit">Log in</button></p></form>' % (
            '<p role="alert">%s</p>' % html.escape(message) if message
            else '', html.escape(request.route_url('login')),
            html.escape(get_csrf_token(request)), html.escape(came_from)))
    return render_page('Log in', body, status)


def login_view(request):
    came_from = request.params.get('came_from', '')
    if request.method != 'POST':
        return login_form(request, came_from)
    policy = request.registry.demo_login
    login = request.POST.get('login', '')
    password = request.POST.get('password', '')
    if hmac.compare_digest(login.encode(), policy['user'].encode()) and \
            hmac.compare_digest(password.encode(),
                                policy['password'].encode()):
        # A token a page showed before the login must not stay valid.
        new_csrf_token(request)
        return HTTPSeeOther(safe_came_from(request, came_from),
                            headers=remember(request, login))
    return login_form(request, came_from, 'Wrong user or password.', 400)


def logout_view(request):
    new_csrf_token(request)
    return HTTPSeeOther(request.route_url('home'), headers=forget(request))


def bad_url_view(request):
    # The site's pages only; the add-on answers for its own route.
    return render_page('Bad request', '<p>The request is not valid '
                       'UTF-8.</p>', status=400)


def bad_form_view(request):
    # A form the CSRF check cannot parse (a multipart body without its
    # boundary): the client's error.
    return render_page('Bad request', '<p>The form cannot be read.</p>',
                       status=400)


def forbidden_view(request):
    if request.authenticated_userid is None:
        # Back to the page after the login, if its URL is one to keep.
        came_from = next((url for url in (request.path_qs, request.path)
                          if len(url) <= MAX_CAME_FROM), None)
        return HTTPSeeOther(request.route_url(
            'login', _query={'came_from': came_from} if came_from else {}))
    return render_page('Forbidden', '<p>%s may not do this.</p>'
                       % html.escape(request.authenticated_userid),
                       status=HTTPForbidden.code)


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
    config = Configurator(settings=settings)
    config.registry.demo_login = {'user': user, 'password': password}
    config.set_security_policy(DemoSecurityPolicy(secret, user))
    # A session, for the messages the pages show after an action.
    config.set_session_factory(SignedCookieSessionFactory(
        secret + ':session', httponly=True, samesite='Lax'))
    # The pages' forms carry a CSRF token; a cookie keeps it without a
    # session factory.
    config.set_csrf_storage_policy(CookieCSRFStoragePolicy(samesite='Lax'))
    config.include('m01.remote')
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
