"""How a child process of the ``process`` worker gets the processor its
jobs are called with (``IChildSetup``).

A setup is made in the worker and pickled to each child it starts. It
holds names, never a connection: a client inherited across a fork would
share its sockets and monitor threads with the parent, so a child opens
its own.

- ``StoreChildSetup``: the child imports the modules defining the
  worker's job classes, connects to the worker's database with
  ``store.connect(uri)`` and makes a processor of the same name and
  collection prefix, in the global component registry.
- ``AppChildSetup``: the child loads the application of an ini file as
  ``m01remote worker`` did (its job classes, its registrations, its
  logging), without its worker threads, and takes its processor.
"""
import importlib
import logging
import sys

import zope.interface
from pyramid.paster import bootstrap, setup_logging

from m01.remote import store
from m01.remote.configured import make_remote_processor
from m01.remote.interfaces import IChildSetup, IRemoteProcessor
from m01.remote.job import Job, jobClassModules, registerJobClass
from m01.remote.processor import RemoteProcessor
from m01.remote.settings import get_remote_settings
from m01.remote.worker.threads import no_in_process_threads

logger = logging.getLogger('m01.remote')

#: What a spawned child runs its parent's main script as.
SPAWNED_MAIN = '__mp_main__'


def importModules(modules):
    """Import ``modules`` in a child. One that fails is logged, not fatal:
    its jobs fail there as jobs of an unknown class, which the worker
    records as failed attempts."""
    for name in modules:
        if name in ('__main__', SPAWNED_MAIN):
            continue    # the parent's script: spawn ran it already
        try:
            importlib.import_module(name)
        except Exception:
            logger.exception('A job process cannot import %s, which '
                             'defines job classes of its worker', name)
    registerSpawnedMain()


def reachable(processor):
    """``processor`` once its server answered: a processor asks its
    server nothing when it is made, so a child that cannot reach the
    database would otherwise say it is ready and fail every job. Raises
    the client's error (a set-up failure, reported by the worker)."""
    processor.database.command('ping')
    return processor


def registerSpawnedMain():
    """Job classes of the worker's main script are known there as
    ``__main__.<class>``; a spawned child ran that script as
    ``__mp_main__``, so register its classes under the worker's names
    too."""
    main = sys.modules.get(SPAWNED_MAIN)
    for value in list(vars(main).values()) if main else ():
        if isinstance(value, type) and issubclass(value, Job) and \
                value.__module__ == SPAWNED_MAIN:
            registerJobClass(value, '__main__.' + value.__qualname__)


@zope.interface.implementer(IChildSetup)
class StoreChildSetup:
    """The child connects to ``uri`` and uses the database ``database``
    through a processor named ``name`` with the collection ``prefix``,
    after importing ``modules`` (default: those defining the job classes
    this process registered)."""

    _client = None

    def __init__(self, uri, database, prefix='r', name='root',
                 leaseTime=60.0, modules=None):
        self.uri = uri
        self.database = database
        self.prefix = prefix
        self.name = name
        self.leaseTime = leaseTime
        self.modules = tuple(jobClassModules() if modules is None
                             else modules)

    @classmethod
    def forProcessor(cls, processor):
        """The setup reaching the database of ``processor``, whose client
        ``store.connect`` made."""
        uri = store.uriOf(processor.database)
        if uri is None:
            raise ValueError(
                'The process worker cannot tell its children how to '
                'connect to the database of %r: connect with '
                'm01.remote.store.connect(uri), or give the worker a '
                'childSetup '
                '(m01.remote.processes.childsetup.StoreChildSetup).'
                % (processor,))
        return cls(uri, processor.database.name, processor.prefix,
                   processor.name, processor.leaseTime)

    def __call__(self):
        importModules(self.modules)
        self._client = store.connect(self.uri)
        return reachable(RemoteProcessor(
            self._client[self.database], name=self.name, prefix=self.prefix,
            leaseTime=self.leaseTime))

    def close(self):
        if self._client is not None:
            self._client.close()
            self._client = None

    def __repr__(self):
        return '<StoreChildSetup %s %s>' % (self.database, self.name)


@zope.interface.implementer(IChildSetup)
class AppChildSetup:
    """The child loads the application of ``configUri`` (an ini file,
    optionally ``#name``) and its logging, without starting its threads,
    and takes its processor, renamed ``name`` when that differs; then
    imports ``modules`` (default: those defining the job classes this
    process registered), for classes the application does not import."""

    _env = None

    def __init__(self, configUri, name=None, modules=None):
        self.configUri = configUri
        self.name = name
        self.modules = tuple(jobClassModules() if modules is None
                             else modules)

    def __call__(self):
        setup_logging(self.configUri)
        with no_in_process_threads():
            self._env = bootstrap(self.configUri)
        importModules(self.modules)
        registry = self._env['registry']
        processor = registry.getUtility(IRemoteProcessor)
        if self.name and self.name != processor.name:
            processor = make_remote_processor(
                registry, get_remote_settings(registry).replace(
                    name=self.name))
        return reachable(processor)

    def close(self):
        if self._env is not None:
            self._env['closer']()
            self._env = None

    def __repr__(self):
        return '<AppChildSetup %s>' % (self.configUri,)
