"""Run wrappers around each attempt, declared like Pyramid tweens: their
order, and what they may do around the job, on every store."""
import pytest
import transaction
from pyramid.config import Configurator
from pyramid.exceptions import ConfigurationConflictError
from zope.interface.verify import verifyObject

from m01.remote import JOB, OUTERMOST, add_job_wrapper, testing
from m01.remote.interfaces import IJobWrappers
from m01.remote.processor import RemoteProcessor
from m01.remote.queue.wrappers import JobWrappers, callJob, runHandler

calls = []


def wrapper(label):
    """A wrapper factory noting when it enters and leaves the run."""
    def factory(handler, registry):
        def wrapped(job, remoteProcessor):
            calls.append('%s in' % label)
            try:
                return handler(job, remoteProcessor)
            finally:
                calls.append('%s out' % label)
        return wrapped
    factory.__qualname__ = 'wrapper_%s' % label
    return factory


def tenant(handler, registry):
    """Hands the job a tenant and marks its output."""
    def wrapped(job, remoteProcessor):
        job.tenant = registry.settings['tenant']
        return {'output': handler(job, remoteProcessor),
                'tenant': job.tenant}
    return wrapped


class TenantJob(testing.EchoJob):

    def __call__(self, remoteProcessor):
        calls.append('job ran for %s' % self.tenant)
        return self.input


@pytest.fixture
def config():
    del calls[:]
    config = Configurator(settings={'tenant': 'acme'})
    config.add_directive('add_job_wrapper', add_job_wrapper)
    return config


def processor_of(config, database):
    config.commit()
    processor = RemoteProcessor(database, registry=config.registry)
    processor.addJobFactory('echo', testing.EchoJob())
    return processor


def run_one(processor, name='echo', input=1):
    jobid = processor.addJob(name, input, immediate=True)
    assert processor.processNextJob()
    transaction.commit()
    return jobid


def test_wrappers_provide_their_interface():
    wrappers = JobWrappers()
    wrappers.add('a', wrapper('a'))
    verifyObject(IJobWrappers, wrappers)


def test_the_first_declared_is_outermost(config, database):
    for label in 'abc':
        config.add_job_wrapper(wrapper(label), name=label)
    rp = processor_of(config, database)
    try:
        assert config.registry.getUtility(IJobWrappers).names() == \
            ['a', 'b', 'c']
        jobid = run_one(rp)
        assert calls == ['a in', 'b in', 'c in', 'c out', 'b out', 'a out']
        assert rp.getJobStatus(jobid) == 'completed'
    finally:
        rp.close()


def test_over_and_under_place_a_wrapper(config, database):
    config.add_job_wrapper(wrapper('session'), name='session')
    config.add_job_wrapper(wrapper('span'), name='span', over='session')
    config.add_job_wrapper(wrapper('inner'), name='inner', over=JOB)
    config.add_job_wrapper(wrapper('tenant'), name='tenant',
                           under='session', over='inner')
    config.add_job_wrapper(wrapper('outer'), name='outer',
                           under=OUTERMOST, over='span')
    rp = processor_of(config, database)
    try:
        assert config.registry.getUtility(IJobWrappers).names() == \
            ['outer', 'span', 'session', 'tenant', 'inner']
        run_one(rp)
        assert calls[:5] == ['outer in', 'span in', 'session in',
                             'tenant in', 'inner in']
        assert calls[5:] == ['inner out', 'tenant out', 'session out',
                             'span out', 'outer out']
    finally:
        rp.close()


def test_a_wrapper_surrounds_the_job_and_its_output(config, database):
    config.add_job_wrapper(tenant)
    rp = processor_of(config, database)
    try:
        rp.addJobFactory('tenant', TenantJob())
        jobid = run_one(rp, 'tenant', 7)
        assert calls == ['job ran for acme']
        assert rp.getJobResult(jobid) == {'output': 7, 'tenant': 'acme'}
    finally:
        rp.close()


def test_a_raising_wrapper_fails_the_attempt(config, database):
    def broken(handler, registry):
        def wrapped(job, remoteProcessor):
            raise RuntimeError('no session')
        return wrapped
    config.add_job_wrapper(broken)
    rp = processor_of(config, database)
    try:
        jobid = run_one(rp)
        assert rp.getJobStatus(jobid) == 'queued'
        assert 'no session' in rp.getJobErrors(jobid)[0]
    finally:
        rp.close()


def test_two_wrappers_of_one_name_conflict(config):
    config.add_job_wrapper(wrapper('a'), name='same')
    config.add_job_wrapper(wrapper('b'), name='same')
    with pytest.raises(ConfigurationConflictError):
        config.commit()


def test_without_wrappers_the_job_is_called(config):
    config.commit()
    assert runHandler(config.registry) is callJob
