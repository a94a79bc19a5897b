"""config.add_remote_job_factory and config.add_remote_scheduler_item."""
import datetime

import pytest
import transaction
from pyramid.config import Configurator
from pyramid.exceptions import (
    ConfigurationConflictError,
    ConfigurationError,
    ConfigurationExecutionError,
)

from m01.remote import put_scheduler_item
from m01.remote.interfaces import IRemoteProcessor
from m01.remote.processor import RemoteProcessor
from m01.remote.scheduler import Cron, Delay
from m01.remote.testing import EchoJob, ErrorJob

UTC = datetime.timezone.utc


def make_config(**settings):
    settings.setdefault('m01.remote.pages', 'false')
    config = Configurator(settings=settings)
    config.include('m01.remote')
    return config


def processor_of(config):
    config.commit()
    return config.registry.getUtility(IRemoteProcessor)


def delay(seconds=60, **data):
    return Delay(dict({'jobName': 'echo', 'delay': seconds}, **data))


def with_echo(config):
    """The configuration, with the ``echo`` factory the items name."""
    config.add_remote_job_factory('echo', EchoJob)
    return config


# job factories

def test_job_factory_is_stored_with_its_defaults():
    config = make_config()
    config.add_remote_job_factory('echo', EchoJob, maxRetries=5,
                                  retryDelay=2, title='Echo')
    rp = processor_of(config)
    assert list(rp.jobFactories.keys()) == ['echo']
    factory = rp.jobFactories['echo']
    assert type(factory) is EchoJob
    assert (factory.maxRetries, factory.retryDelay, factory.title) == \
        (5, 2, 'Echo')
    jobid = rp.addJob('echo', 'hi', immediate=True)
    assert rp.processJob(jobid)
    transaction.commit()
    assert rp.getJobResult(jobid) == 'hi'


def test_job_class_by_dotted_name():
    config = make_config()
    config.add_remote_job_factory('error', 'm01.remote.testing.ErrorJob')
    assert type(processor_of(config).jobFactories['error']) is ErrorJob


def test_job_factories_conflict_at_commit():
    config = make_config()
    config.add_remote_job_factory('echo', EchoJob)
    config.add_remote_job_factory('echo', ErrorJob)
    with pytest.raises(ConfigurationConflictError) as info:
        config.commit()
    assert "('m01.remote.job_factory', 'echo')" in str(info.value)


def test_different_names_do_not_conflict():
    config = make_config()
    config.add_remote_job_factory('echo', EchoJob)
    config.add_remote_job_factory('error', ErrorJob)
    assert sorted(processor_of(config).jobFactories.keys()) == \
        ['echo', 'error']


def includes_an_echo_factory(config):
    config.add_remote_job_factory('echo', ErrorJob)


def test_the_including_configuration_overrides_an_include():
    # Pyramid's rule: the action closer to the root wins, no conflict.
    config = make_config()
    config.include(includes_an_echo_factory)
    config.add_remote_job_factory('echo', EchoJob)
    assert type(processor_of(config).jobFactories['echo']) is EchoJob


@pytest.mark.parametrize('name, job_class, defaults, message', [
    ('', EchoJob, {}, 'non-empty string'),
    (None, EchoJob, {}, 'non-empty string'),
    ('echo', object, {}, 'not a subclass of m01.remote.job.Job'),
    ('echo', EchoJob(), {}, 'not a subclass of m01.remote.job.Job'),
    ('echo', EchoJob, {'colour': 'blue'}, "does not accept 'colour'"),
    ('echo', EchoJob, {'maxRetries': 0}, 'maxRetries must be at least 1'),
])
def test_bad_job_factories_fail_at_the_call(name, job_class, defaults,
                                            message):
    config = make_config()
    with pytest.raises(ConfigurationError, match=message):
        config.add_remote_job_factory(name, job_class, **defaults)


# scheduler items

def test_scheduler_item_is_stored_under_its_name():
    config = with_echo(make_config())
    config.add_remote_scheduler_item('ping', delay(30, input='x'))
    config.add_remote_scheduler_item(
        'nightly', Cron.fromExpression('0 3 * * *', jobName='echo'))
    items = processor_of(config).scheduler.values()
    assert sorted((item.title, type(item).__name__) for item in items) == \
        [('nightly', 'Cron'), ('ping', 'Delay')]
    ping = [item for item in items if item.title == 'ping'][0]
    assert (ping.delay, ping.input, ping.jobName) == (30, 'x', 'echo')
    assert ping.nextCallTime is not None


def test_scheduler_items_conflict_at_commit():
    config = with_echo(make_config())
    config.add_remote_scheduler_item('ping', delay(30))
    config.add_remote_scheduler_item('ping', delay(60))
    with pytest.raises(ConfigurationConflictError) as info:
        config.commit()
    assert "('m01.remote.scheduler_item', 'ping')" in str(info.value)


def test_a_scheduler_item_needs_the_processor_and_job_factories_first():
    # The directives run after the processor exists, whatever the order
    # of the calls.
    config = make_config()
    config.add_remote_scheduler_item('ping', delay(30))
    config.add_remote_job_factory('echo', EchoJob)
    rp = processor_of(config)
    assert [item.title for item in rp.scheduler.values()] == ['ping']
    assert list(rp.jobFactories.keys()) == ['echo']


def test_an_item_naming_no_factory_is_refused_at_commit():
    config = with_echo(make_config())
    config.add_remote_scheduler_item('heartbeat', Delay({'jobName': 'ping',
                                                         'delay': 60}))
    with pytest.raises(ConfigurationExecutionError) as info:
        config.commit()
    assert ("add_remote_scheduler_item('heartbeat'): its jobName 'ping' "
            "names no job factory") in str(info.value)
    assert "the known factories: 'echo'" in str(info.value)
    rp = config.registry.getUtility(IRemoteProcessor)
    assert rp.scheduler.values() == []


@pytest.mark.parametrize('name, item, message', [
    ('', delay(), 'non-empty string'),
    ('ping', {'jobName': 'echo', 'delay': 1}, 'not a scheduler item'),
    ('ping', delay(title='Other'), "the name is the item's title"),
])
def test_bad_scheduler_items_fail_at_the_call(name, item, message):
    config = make_config()
    with pytest.raises(ConfigurationError, match=message):
        config.add_remote_scheduler_item(name, item)


def test_the_same_title_is_accepted():
    config = with_echo(make_config())
    config.add_remote_scheduler_item('ping', delay(title='ping'))
    assert [i.title for i in processor_of(config).scheduler.values()] == \
        ['ping']


@pytest.fixture
def scheduler(database):
    return RemoteProcessor(database).scheduler


def test_put_adds_then_keeps_an_unchanged_item(scheduler):
    first = put_scheduler_item(scheduler, 'ping', delay(60))
    stored = scheduler[first]
    due = stored.nextCallTime
    again = put_scheduler_item(scheduler, 'ping', delay(60))
    assert again == first
    assert len(scheduler) == 1
    assert scheduler[first].nextCallTime == due


def test_put_updates_a_changed_item_in_place(scheduler):
    first = put_scheduler_item(scheduler, 'ping', delay(60, input=1))
    again = put_scheduler_item(scheduler, 'ping', delay(120, input=2))
    assert again == first
    assert len(scheduler) == 1
    item = scheduler[first]
    assert (item.delay, item.input) == (120, 2)


def test_put_replaces_an_item_of_another_kind(scheduler):
    first = put_scheduler_item(scheduler, 'ping', delay(60))
    second = put_scheduler_item(
        scheduler, 'ping', Cron.fromExpression('*/5 * * * *',
                                               jobName='echo'))
    assert second != first
    assert [type(item) for item in scheduler.values()] == [Cron]
    assert scheduler[second].expression == '*/5 * * * *'


def test_put_updates_a_changed_cron_expression(scheduler):
    first = put_scheduler_item(scheduler, 'nightly', Cron.fromExpression(
        '0 3 * * *', jobName='echo'))
    again = put_scheduler_item(scheduler, 'nightly', Cron.fromExpression(
        '30 4 * * *', jobName='echo'))
    assert again == first
    item = scheduler[first]
    assert (item.expression, item.minute, item.hour) == \
        ('30 4 * * *', [30], [4])


def test_put_removes_duplicates_and_leaves_other_items(scheduler):
    oldest = scheduler.add(delay(60, title='ping'))
    scheduler.add(delay(60, title='ping'))
    other = scheduler.add(delay(60, title='pong'))
    untitled = scheduler.add(delay(60))
    assert put_scheduler_item(scheduler, 'ping', delay(60)) == oldest
    assert sorted(item.__name__ for item in scheduler.values()) == \
        sorted([oldest, other, untitled])


def test_put_does_not_change_the_given_item(scheduler):
    item = delay(60)
    put_scheduler_item(scheduler, 'ping', item)
    put_scheduler_item(scheduler, 'ping', item)
    assert (item.__name__, item.title) == (None, '')


@pytest.mark.mongojava
def test_restarting_a_site_does_not_duplicate_its_items(mongojava_uri):
    from support.testserver import unique_database_name
    settings = {'m01.remote.uri': mongojava_uri,
                'm01.remote.database': unique_database_name()}
    ids = []
    for delay_seconds in (60, 60, 90):
        config = with_echo(make_config(**settings))
        config.add_remote_scheduler_item('ping', delay(delay_seconds))
        rp = processor_of(config)
        ids.append([item.__name__ for item in rp.scheduler.values()])
    try:
        assert ids[0] == ids[1] == ids[2]
        assert len(ids[0]) == 1
        assert rp.scheduler[ids[0][0]].delay == 90
    finally:
        rp.database.client.drop_database(settings['m01.remote.database'])
