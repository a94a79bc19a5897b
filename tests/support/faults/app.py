"""The application of the fault scenarios (``faults.py``).

``main`` is what the scenarios' ini files name (``use =
call:support.faults.app:main``, with ``tests`` on ``PYTHONPATH``), so every
``m01remote worker`` and ``m01remote scheduler`` process loads it as it
would load a site: it includes m01.remote and stores the job factories
of ``support.faults.jobs``. Scheduler items are added by the scenario itself,
once, before the processes start.

``pagesApp`` is the same application with the management pages, a
session and a policy that lets in any request with ``REMOTE_USER``, for
the bad-input scenario's WebTest client.
"""
from pyramid.config import Configurator
from pyramid.session import SignedCookieSessionFactory

from m01.remote import testing
from support.faults import jobs as fault_jobs

#: Seconds before a failed (or recovered) attempt is tried again.
DEFAULT_RETRY_DELAY = 1.0


def addJobFactories(config, retryDelay=DEFAULT_RETRY_DELAY,
                    poisonRetryDelay=DEFAULT_RETRY_DELAY, maxRetries=3):
    config.add_remote_job_factory('record', fault_jobs.RecordedJob,
                                  retryDelay=retryDelay,
                                  maxRetries=maxRetries)
    config.add_remote_job_factory('poison', fault_jobs.PoisonJob,
                                  retryDelay=poisonRetryDelay,
                                  maxRetries=maxRetries)
    config.add_remote_job_factory('slow', fault_jobs.SlowJob,
                                  retryDelay=retryDelay,
                                  maxRetries=maxRetries)


def _number(settings, key, default, kind=float):
    value = settings.pop(key, None)
    return default if value in (None, '') else kind(value)


def main(global_config, **settings):
    """The WSGI application of a scenario's ini file."""
    retryDelay = _number(settings, 'faults.retry_delay', DEFAULT_RETRY_DELAY)
    poisonRetryDelay = _number(settings, 'faults.poison_retry_delay',
                               DEFAULT_RETRY_DELAY)
    maxRetries = _number(settings, 'faults.max_retries', 3, int)
    config = Configurator(settings=settings)
    config.include('m01.remote')
    addJobFactories(config, retryDelay, poisonRetryDelay, maxRetries)
    return config.make_wsgi_app()


def pagesApp(uri, database, **settings):
    """The scenario application with its management pages, in process."""
    settings = dict({'m01.remote.uri': uri, 'm01.remote.database': database},
                    **settings)
    config = Configurator(settings=settings)
    config.set_session_factory(SignedCookieSessionFactory('faults'))
    config.set_security_policy(testing.RemoteUserPolicy())
    config.include('m01.remote')
    addJobFactories(config)
    return config.make_wsgi_app()
