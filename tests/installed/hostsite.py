"""A host site built only from what the documentation describes, for
checking the installed package: it includes ``m01.remote`` with its
pages, runs pyramid_tm with the explicit transaction manager its
documentation recommends, brings its own security policy, session and
job class, and declares a job factory and two scheduler items.

It stands alone (no test support, nothing from the source tree), so the
wheel check can run it in a virtual environment holding only the wheel.
"""
from pyramid.config import Configurator
from pyramid.security import Allowed, Denied
from pyramid.session import SignedCookieSessionFactory

from m01.remote.job import Job
from m01.remote.scheduler import Cron, Delay

PERMISSION = 'queue.manage'


class GreetingJob(Job):
    """The site's own job: greets whoever its input names."""

    def __call__(self, remoteProcessor):
        return 'Hello, %s' % (self.input or 'world')


class HeaderPolicy:
    """Trusts a user named by the ``X-Site-User`` header (as a site
    behind an authenticating proxy would) and grants that user the
    queue's permission."""

    def identity(self, request):
        return request.headers.get('X-Site-User') or None

    def authenticated_userid(self, request):
        return self.identity(request)

    def permits(self, request, context, permission):
        if self.identity(request) is None:
            return Denied('anonymous')
        if permission != PERMISSION:
            return Denied('only %s is granted' % PERMISSION)
        return Allowed('granted')

    def remember(self, request, userid, **kw):
        return []

    def forget(self, request, **kw):
        return []


def main(global_config=None, **settings):
    settings = dict({
        'tm.manager_hook': 'pyramid_tm.explicit_manager',
        'm01.remote.uri': 'mongomock://',
        'm01.remote.permission': PERMISSION,
        'm01.remote.route_prefix': '/queue',
    }, **settings)
    config = Configurator(settings=settings)
    config.set_security_policy(HeaderPolicy())
    config.set_session_factory(SignedCookieSessionFactory('host-secret'))
    config.include('m01.remote')
    config.add_remote_job_factory('greet', GreetingJob, maxRetries=2)
    config.add_remote_scheduler_item(
        'greet every minute', Delay({'jobName': 'greet', 'delay': 60}))
    config.add_remote_scheduler_item(
        'greet at night', Cron.fromExpression('0 3 * * *',
                                              jobName='greet'))
    config.add_route('greet', '/greet')
    config.add_view(greet_view, route_name='greet', request_method='POST',
                    renderer='json', require_csrf=False)
    return config.make_wsgi_app()


def greet_view(request):
    """The site's own view, handing work to the queue."""
    jobid = request.remote_processor.addJob('greet', request.params['name'])
    return {'jobid': jobid}
