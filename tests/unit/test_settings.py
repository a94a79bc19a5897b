"""m01.remote.settings: every option typed, every bad value refused."""
import os

import pytest
from pyramid.exceptions import ConfigurationError

from m01.remote.settings import (
    OPTIONS,
    RemoteSettings,
    SettingsError,
    get_remote_settings,
    parse_settings,
    valid_keys,
)


def parse(**options):
    return parse_settings({'m01.remote.' + key.replace('__', '.'): value
                           for key, value in options.items()})


def test_defaults():
    settings = parse_settings({})
    assert settings == RemoteSettings(
        uri='mongomock://', database='m01remote', collection_prefix='r',
        name='root', worker='simple', worker_wait_time=1.0,
        worker_max_threads=os.cpu_count() or 1, worker_job_query=None,
        worker_max_processes=os.cpu_count() or 1,
        worker_max_jobs_per_child=None, worker_kill_grace=5.0,
        worker_async_limit=100, tracing=True, lease_time=60.0,
        start_worker=False, start_scheduler=False,
        scheduler_wait_time=1.0, route_prefix='/remote',
        permission='m01.remote.manage', pages=True,
        stats_retention_days=8, metrics='false', wakeup='auto',
        write_concern='majority', read_preference='primary',
        socket_timeout=20.0, connect_timeout=10.0,
        server_selection_timeout=5.0)
    assert settings.worker_batch_size is None     # sized by the worker
    assert settings.worker_queues is None         # every queue
    assert settings.embedded
    assert settings.route_pattern == '/remote*traverse'


def test_other_settings_are_ignored():
    settings = parse_settings({'pyramid.reload_templates': 'true',
                               'm01.remotely': 'x', 'm01.remote': 'x'})
    assert settings == RemoteSettings()


def test_strings_from_an_ini_file_are_typed():
    settings = parse_settings({
        'm01.remote.uri': ' mongodb://db.example.com:27017/ ',
        'm01.remote.database': 'queue',
        'm01.remote.collection_prefix': 'app_',
        'm01.remote.name': 'mailer',
        'm01.remote.worker': 'multi',
        'm01.remote.worker.wait_time': '0.5',
        'm01.remote.worker.max_threads': '4',
        'm01.remote.worker.job_query': '{"name": {"$in": ["echo"]}}',
        'm01.remote.lease_time': '30',
        'm01.remote.start_worker': 'yes',
        'm01.remote.start_scheduler': 'On',
        'm01.remote.scheduler.wait_time': '2',
        'm01.remote.route_prefix': '/admin/queue/',
        'm01.remote.permission': 'manage',
        'm01.remote.pages': 'false',
        'm01.remote.stats.retention_days': '30',
        'm01.remote.metrics': ' Public',
    })
    assert settings == RemoteSettings(
        uri='mongodb://db.example.com:27017/', database='queue',
        collection_prefix='app_', name='mailer', worker='multi',
        worker_wait_time=0.5, worker_max_threads=4,
        worker_job_query={'name': {'$in': ['echo']}}, lease_time=30.0,
        start_worker=True, start_scheduler=True, scheduler_wait_time=2.0,
        route_prefix='/admin/queue', permission='manage', pages=False,
        stats_retention_days=30, metrics='public')
    assert not settings.embedded
    assert settings.route_pattern == '/admin/queue*traverse'


def test_typed_values_from_python_are_accepted():
    settings = parse(start_worker=True, pages=False, worker__max_threads=3,
                     lease_time=5, worker__wait_time=0,
                     worker__job_query={'name': 'echo'})
    assert settings.start_worker is True
    assert settings.pages is False
    assert settings.worker_max_threads == 3
    assert parse(worker__async_limit='0').worker_async_limit == 0
    assert settings.lease_time == 5.0
    assert settings.worker_wait_time == 0.0
    assert settings.worker_job_query == {'name': 'echo'}


@pytest.mark.parametrize('value, expected', [
    ('/logout', '/logout'), (' /accounts/logout?next=/ ',
                             '/accounts/logout?next=/'),
    ('https://login.example.com/logout', 'https://login.example.com/logout'),
    ('', None), (None, None)])
def test_the_sites_logout(value, expected):
    assert parse(logout_url=value).logout_url == expected
    assert parse_settings({}).logout_url is None


def test_the_process_worker_settings():
    settings = parse(worker='process', uri='mongodb://db/',
                     worker__max_processes='3',
                     worker__max_jobs_per_child='100',
                     worker__kill_grace='0.5')
    assert (settings.worker_max_processes, settings.worker_max_jobs_per_child,
            settings.worker_kill_grace) == (3, 100, 0.5)
    assert parse(worker__max_jobs_per_child=' ').worker_max_jobs_per_child \
        is None


def test_the_process_worker_refuses_the_embedded_store():
    for uri in ({}, {'uri': 'mongomock://'}):
        with pytest.raises(SettingsError, match='m01.remote.worker = '
                           'process: .*cannot see the embedded store'):
            parse(worker='process', **uri)


@pytest.mark.parametrize('prefix, pattern', [
    ('/', '/*traverse'),
    ('/remote', '/remote*traverse'),
    ('/remote///', '/remote*traverse'),
])
def test_route_pattern(prefix, pattern):
    assert parse(route_prefix=prefix).route_pattern == pattern


def test_the_queues_a_worker_serves():
    assert parse(worker__queues='mail:4, reports,default').worker_queues \
        == {'mail': 4, 'reports': None, 'default': None}
    assert parse(worker__queues=' ').worker_queues is None
    assert parse(worker__batch_size='auto').worker_batch_size is None
    assert parse(worker__batch_size='1').worker_batch_size == 1


def test_empty_job_query_means_none():
    assert parse(worker__job_query='  ').worker_job_query is None


def test_the_timeouts_of_every_database_call():
    settings = parse(socket_timeout='2.5', connect_timeout='1',
                     server_selection_timeout=3)
    assert settings.timeouts == {'socketTimeout': 2.5,
                                 'connectTimeout': 1.0,
                                 'serverSelectionTimeout': 3.0}
    assert parse().timeouts == {'socketTimeout': 20.0,
                                'connectTimeout': 10.0,
                                'serverSelectionTimeout': 5.0}


def test_srv_uri_is_accepted():
    assert parse(uri='mongodb+srv://cluster.example.com/').uri == \
        'mongodb+srv://cluster.example.com/'


BAD_VALUES = [
    ('uri', 'postgres://localhost/db', 'mongodb://host:port/'),
    ('uri', '', 'must not be empty'),
    ('uri', 42, 'expected text'),
    ('database', 'my.db', 'database name'),
    ('database', 'a b', 'database name'),
    ('database', 'x' * 64, 'database name'),
    ('database', '  ', 'must not be empty'),
    ('collection_prefix', 'r$', 'use letters'),
    ('collection_prefix', 'system.r', 'system.'),
    ('name', '', 'must not be empty'),
    ('worker', 'two words', 'worker kind'),
    ('worker', '', 'must not be empty'),
    ('worker.wait_time', 'soon', 'expected a number'),
    ('worker.wait_time', '-1', '>= 0'),
    ('worker.wait_time', 'nan', '>= 0'),
    ('worker.wait_time', 'inf', '>= 0'),
    ('worker.wait_time', True, 'expected a number'),
    ('worker.max_threads', '0', '>= 1'),
    ('worker.max_threads', '2.5', 'expected an integer'),
    ('worker.max_threads', 2.0, 'expected an integer'),
    ('worker.max_threads', 'many', 'expected an integer'),
    ('worker.job_query', '{"name": ', 'expected a JSON object'),
    ('worker.job_query', '["echo"]', 'expected a JSON object'),
    ('worker.job_query', 42, 'expected a JSON object'),
    ('worker.batch_size', '0', 'from 1 to 1000'),
    ('worker.batch_size', '1001', 'from 1 to 1000'),
    ('worker.batch_size', 2.0, 'expected an integer'),
    ('worker.queues', 'mail:0', '>= 1'),
    ('worker.queues', 'mail:x', 'expected an integer'),
    ('worker.queues', 'mail, mail', 'twice'),
    ('worker.queues', 'a b', 'A queue name is'),
    ('worker.queues', 42, 'expected queue names'),
    ('worker.max_processes', '0', '>= 1'),
    ('worker.max_processes', '1.5', 'expected an integer'),
    ('worker.max_jobs_per_child', '0', '>= 1'),
    ('worker.max_jobs_per_child', 'often', 'expected an integer'),
    ('worker.async_limit', '-1', 'from 0 to 100000'),
    ('worker.async_limit', '1.5', 'expected an integer'),
    ('worker.async_limit', 2.0, 'expected an integer'),
    ('worker.kill_grace', '-1', '>= 0'),
    ('worker.kill_grace', 'soon', 'expected a number'),
    ('lease_time', '0', '> 0'),
    ('lease_time', '-5', '>= 0'),
    ('lease_time', 'long', 'expected a number'),
    ('start_worker', 'maybe', 'expected true or false'),
    ('start_worker', 1, 'expected true or false'),
    ('start_scheduler', '', 'expected true or false'),
    ('scheduler.wait_time', '-0.1', '>= 0'),
    ('route_prefix', 'remote', 'URL path'),
    ('route_prefix', '/remote/*x', 'URL path'),
    ('route_prefix', '/{id}', 'URL path'),
    ('permission', ' ', 'must not be empty'),
    ('pages', 'sometimes', 'expected true or false'),
    ('tracing', 'maybe', 'expected true or false'),
    ('stats.retention_days', '0', 'from 1 to 3660'),
    ('stats.retention_days', '1.5', 'expected an integer'),
    ('stats.retention_days', 7.0, 'whole number of days'),
    ('retention.completed', '1 fortnight', 'with a unit'),
    ('retention.completed', '-3', 'with a unit'),
    ('retention.error', -1, 'seconds >= 0'),
    ('retention.error', '6000w', 'at most a century'),
    ('retention.cancelled', True, 'expected a number'),
    ('retention.cancelled', 'nan', 'with a unit'),
    ('metrics', 'yes', 'expected false'),
    ('metrics', True, 'expected false'),
    ('wakeup', 'streams', 'expected one of auto, changestream, poll'),
    ('wakeup', '', 'must not be empty'),
    ('write_concern', '0', 'majority or a number of members >= 1'),
    ('write_concern', 'all', 'majority or a number of members >= 1'),
    ('write_concern', 2.0, 'majority or a number of members >= 1'),
    ('write_concern', True, 'majority or a number of members >= 1'),
    ('read_preference', 'secondaryFirst', 'expected one of primary, '
     'primaryPreferred, secondary, secondaryPreferred, nearest'),
    ('socket_timeout', '0', 'expected a number of seconds > 0'),
    ('socket_timeout', 'never', 'expected a number'),
    ('connect_timeout', '-1', 'expected a number of seconds >= 0'),
    ('server_selection_timeout', 'inf', 'expected a number of seconds'),
    ('logout_url', 'logout', "expected the URL of the site's logout"),
    ('logout_url', '//evil.example.com/logout', 'a path such as /logout'),
    ('logout_url', 'javascript:alert(1)', 'or an http(s) URL'),
    ('logout_url', '/log out', "the site's logout"),
    ('logout_url', '/logout"><b>', "the site's logout"),
]


def test_every_option_has_bad_values_tested():
    assert {key for key, _, _ in BAD_VALUES} == set(OPTIONS)


@pytest.mark.parametrize('key, value, message', BAD_VALUES)
def test_bad_value(key, value, message):
    with pytest.raises(SettingsError) as info:
        parse_settings({'m01.remote.' + key: value})
    text = str(info.value)
    assert 'm01.remote.%s = %r' % (key, value) in text
    assert message in text
    assert isinstance(info.value, ConfigurationError)


def test_unknown_key_lists_the_valid_keys():
    with pytest.raises(SettingsError) as info:
        parse_settings({'m01.remote.start_workers': 'true'})
    text = str(info.value)
    assert 'unknown setting m01.remote.start_workers;' in text
    for key in valid_keys():
        assert key in text
    assert 'm01.remote.worker.max_threads' in valid_keys()
    assert len(valid_keys()) == len(OPTIONS) == 34


def test_every_problem_is_reported_at_once():
    with pytest.raises(SettingsError) as info:
        parse_settings({'m01.remote.lease_time': '0',
                        'm01.remote.pages': 'perhaps',
                        'm01.remote.colour': 'blue',
                        'm01.remote.size': 'L'})
    lines = str(info.value).splitlines()
    assert lines[0] == 'Invalid m01.remote settings:'
    assert len(lines) == 4
    assert 'unknown settings m01.remote.colour, m01.remote.size;' in lines[3]


@pytest.mark.parametrize('wakeup', ['auto', 'changestream', 'poll'])
def test_wakeup(wakeup):
    assert parse(uri='mongodb://db/', wakeup=' %s ' % wakeup).wakeup == \
        wakeup


@pytest.mark.parametrize('value, expected', [
    ('majority', 'majority'), (' majority ', 'majority'), ('1', 1),
    ('3', 3), (2, 2)])
def test_write_concern(value, expected):
    assert parse(write_concern=value).write_concern == expected


@pytest.mark.parametrize('value, expected', [
    ('primary', 'primary'), ('secondaryPreferred', 'secondaryPreferred'),
    (' SECONDARYPREFERRED ', 'secondaryPreferred'), ('nearest', 'nearest')])
def test_read_preference(value, expected):
    assert parse(read_preference=value).read_preference == expected


def test_the_read_preferences_are_the_clusters():
    from m01.remote.settingvalues import READ_PREFERENCES
    from m01.remote.store import cluster
    assert READ_PREFERENCES == tuple(cluster.READ_PREFERENCES)


def test_the_embedded_store_cannot_insist_on_change_streams():
    with pytest.raises(SettingsError) as info:
        parse(wakeup='changestream')
    assert 'm01.remote.wakeup = changestream: the embedded store has no ' \
        'change streams' in str(info.value)
    assert parse(wakeup='auto').wakeup == 'auto'


def test_another_prefix():
    settings = parse_settings({'queue.name': 'q', 'm01.remote.x': 'y'},
                              prefix='queue.')
    assert settings.name == 'q'
    with pytest.raises(SettingsError, match='queue.name, queue.pages'):
        parse_settings({'queue.nam': 'q'}, prefix='queue.')


def test_settings_are_frozen_and_replaceable():
    settings = parse_settings({})
    with pytest.raises(AttributeError):
        settings.name = 'other'
    other = settings.replace(name='other')
    assert (settings.name, other.name) == ('root', 'other')


class DummyRegistry:
    def __init__(self, settings):
        self.settings = settings


def test_get_remote_settings_parses_once():
    registry = DummyRegistry({'m01.remote.name': 'first'})
    assert get_remote_settings(registry).name == 'first'
    registry.settings['m01.remote.name'] = 'second'
    assert get_remote_settings(registry) is registry.m01_remote_settings
    assert get_remote_settings(registry).name == 'first'


def test_get_remote_settings_without_settings():
    assert get_remote_settings(DummyRegistry(None)) == RemoteSettings()


def test_get_remote_settings_refuses_bad_settings():
    with pytest.raises(SettingsError):
        get_remote_settings(DummyRegistry({'m01.remote.pages': 'no way'}))


def test_retention_periods_take_units_and_forever():
    settings = parse_settings({
        'm01.remote.retention.completed': '90m',
        'm01.remote.retention.error': ' Forever ',
        'm01.remote.retention.cancelled': 45})
    assert settings.retention == {'completed': 5400.0, 'error': None,
                                  'cancelled': 45.0}
    assert parse_settings({}).retention == {
        'completed': 86400.0, 'error': 7 * 86400.0,
        'cancelled': 7 * 86400.0}
    assert parse_settings({'m01.remote.retention.completed': '2w'}) \
        .retention_completed == 14 * 86400.0
