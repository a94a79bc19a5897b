"""support.testserver: unique database names, scratch databases that are
dropped, and build steps whose failures are bounded and explained."""
import os

import pytest

from m01.remote import store
from support import testserver


class StepFailed(Exception):
    pass


def test_database_names_are_unique_per_process():
    first = testserver.unique_database_name()
    second = testserver.unique_database_name()
    assert first != second
    assert first.startswith('m01test_%d_' % os.getpid())


def test_a_scratch_database_is_dropped_at_the_end(mongojava_uri):
    client = store.connect(mongojava_uri)
    try:
        with testserver.scratch_database(mongojava_uri) as database:
            database.jobs.insert_one({'_id': 'kept'})
            assert database.name in client.list_database_names()
        assert database.name not in client.list_database_names()
    finally:
        client.close()


def test_a_failed_step_is_reported_with_the_tail_of_its_output(tmp_path):
    with pytest.raises(StepFailed) as info:
        testserver._run(['sh', '-c', 'echo first; echo "\x1b[31mlast\x1b[0m"'
                         '; exit 3'], cwd=tmp_path, timeout=30,
                        error=StepFailed)
    assert 'failed with status 3' in str(info.value)
    assert 'first\nlast' in str(info.value)


def test_a_step_that_hangs_is_stopped_in_time(tmp_path):
    with pytest.raises(StepFailed, match='timed out after 1s'):
        testserver._run(['sleep', '60'], cwd=tmp_path, timeout=1,
                        error=StepFailed)
