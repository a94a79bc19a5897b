"""The specification's README, "Job Workers" and "Scheduler" doctests,
on both stores.
"""
import doctest
import os

import pytest
import zope.component

from m01.remote import testing
from m01.remote.processor import RemoteProcessor
from m01.remote.scheduler import Scheduler

HERE = os.path.dirname(__file__)

FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


@pytest.fixture
def registry():
    registry = zope.component.globalregistry.BaseGlobalComponents(
        'm01.remote.tests')
    return registry


@pytest.mark.parametrize('document', ['spec_readme.txt',
                                      'spec_workers.txt'])
def test_specification(document, database, registry):
    rp = RemoteProcessor(database, name='root', registry=registry,
                         jobWorkerArguments={'waitTime': 0.0})
    log_info = testing.LogCapture().install()
    testing.testCounter = 0
    try:
        failed, attempted = doctest.testfile(
            os.path.join(HERE, document), module_relative=False,
            globs={'root': rp, 'log_info': log_info, 'registry': registry},
            optionflags=FLAGS, report=True, verbose=False)
    finally:
        log_info.uninstall()
        rp.close()
    assert attempted > 20
    assert failed == 0, '%d of %d examples failed' % (failed, attempted)


class SchedulerRoot:
    """What the "Scheduler" doctest uses of a processor: its scheduler."""

    def __init__(self, scheduler):
        self.scheduler = scheduler

    def __repr__(self):
        return '<TestProcessor None>'


def test_the_scheduler_specification(database):
    root = SchedulerRoot(Scheduler(database['rscheduler']))
    failed, attempted = doctest.testfile(
        os.path.join(HERE, 'spec_scheduler.txt'), module_relative=False,
        globs={'root': root}, report=True, verbose=False, optionflags=FLAGS)
    assert attempted > 120
    assert failed == 0, '%d of %d examples failed' % (failed, attempted)
