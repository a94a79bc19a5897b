"""Input limits (``m01.remote.limits``) through the Python API: each
refusal is a ValueError raised before the work it bounds, and nothing is
stored."""
import datetime
import json
import sys

import bson
import pytest
import transaction

from m01.remote import limits
from m01.remote.job import checkStorable
from m01.remote.processor import RemoteProcessor
from m01.remote.queue import updates as jobstate
from m01.remote.scheduler import Cron, Delay
from m01.remote.settings import SettingsError, parse_settings
from m01.remote.testing import EchoJob

# Deeper than Python lets anything recurse.
ABYSS = sys.getrecursionlimit() * 2


def nested(depth, leaf=0):
    value = leaf
    for _level in range(depth):
        value = [value]
    return value


def nestedText(depth):
    return '[' * depth + '0' + ']' * depth


@pytest.fixture
def rp(database):
    processor = RemoteProcessor(database)
    processor.addJobFactory('echo', EchoJob())
    yield processor
    processor.close()


def storedJobs(rp):
    return list(rp.jobsCollection.find())


# depth, without recursion

@pytest.mark.parametrize('depth, deeper', [
    (0, False), (1, False), (limits.MAX_DEPTH, False),
    (limits.MAX_DEPTH + 1, True), (ABYSS, True)])
def test_nesting_is_measured_without_recursion(depth, deeper):
    assert limits.nestedDeeper(nested(depth)) is deeper
    assert limits.jsonNestedDeeper(nestedText(depth)) is deeper


def test_objects_count_like_lists():
    value = {'a': [{'b': 1}]}
    assert not limits.nestedDeeper(value, 3)
    assert limits.nestedDeeper(value, 2)
    assert not limits.jsonNestedDeeper(json.dumps(value), 3)
    assert limits.jsonNestedDeeper(json.dumps(value), 2)


def test_brackets_in_strings_do_not_count():
    text = json.dumps(['[' * 500, '{\\"[' * 100])
    assert not limits.jsonNestedDeeper(text)


def test_escapes_are_read_as_the_parser_reads_them():
    assert limits.jsonNestedDeeper(
        '[' * 64 + json.dumps('\\"]]]') + '[]' + ']' * 64)
    assert not limits.jsonNestedDeeper(
        '[' * 63 + json.dumps('\\"[[[') + ',[]' + ']' * 63)


def test_the_json_scan_takes_linear_time():
    # An open string of escaped quotes: a scan retrying the string from
    # each quote would take hours over this.
    text = '[' * 10 + '"' + '\\"' * 10 ** 6 + '[' * 70
    assert limits.jsonNestedDeeper(text)
    assert not limits.jsonNestedDeeper('[' + '[0],' * 10 ** 6 + '[0]]')


def test_a_value_containing_itself_is_too_deep():
    loop = []
    loop.append(loop)
    assert limits.nestedDeeper(loop)


def test_json_too_deep_is_refused_before_parsing():
    with pytest.raises(ValueError, match='nested more than 64 levels deep'):
        limits.loadJSON(nestedText(ABYSS))
    assert limits.loadJSON(nestedText(limits.MAX_DEPTH)) == \
        nested(limits.MAX_DEPTH)


def test_json_text_longer_than_16_mb_is_refused_unread(monkeypatch):
    monkeypatch.setattr(limits, 'jsonNestedDeeper', _unreachable)
    with pytest.raises(ValueError, match='at most 16777216'):
        limits.loadJSON(' ' * (limits.MAX_JSON_TEXT + 1))


def _unreachable(*args):
    raise AssertionError('the text must be refused before it is read')


def test_shorten_and_quote():
    assert limits.shorten('abc', 3) == 'abc'
    assert limits.shorten('abcd', 3) == 'ab…'
    assert limits.quote('x' * 5000) == "'" + 'x' * 78 + '…'
    assert len(limits.quote('x' * 5000)) == limits.QUOTED


# jobs

@pytest.mark.parametrize('depth', [limits.MAX_DEPTH + 1, ABYSS])
def test_add_job_refuses_input_nested_too_deep(rp, depth):
    with pytest.raises(ValueError, match='nested more than 64 levels deep'):
        rp.addJob('echo', nested(depth), immediate=True)
    with pytest.raises(ValueError, match='nested more than 64 levels deep'):
        rp.addJob('echo', {'a': nested(depth)})
    transaction.commit()
    assert storedJobs(rp) == []


def nestedObjects(depth):
    value = 0
    for _level in range(depth):
        value = {'a': value}
    return value


def test_add_job_stores_input_as_deep_as_the_limit(rp):
    # The job document wraps the input: the server must still take it.
    value = nestedObjects(limits.MAX_DEPTH)
    jobid = rp.addJob('echo', value, immediate=True)
    assert rp.jobs[jobid].input == value
    with pytest.raises(ValueError, match='nested more than 64 levels deep'):
        rp.addJob('echo', {'b': value}, immediate=True)


def test_a_job_factory_with_settings_too_deep_is_refused(rp):
    with pytest.raises(ValueError, match='nested more than 66 levels'):
        rp.addJobFactory('deep', EchoJob({'input': nested(ABYSS)}))
    assert 'deep' not in rp.jobFactories


# scheduler items

DELAY = {'jobName': 'echo', 'delay': 60}


@pytest.mark.parametrize('data, message', [
    (dict(DELAY, title='t' * 5000), 'title has 5000 characters; at most '
     '200'),
    (dict(DELAY, description='d' * 2001), 'description has 2001'),
    (dict(DELAY, jobName='j' * 201), 'jobName has 201'),
    (dict(DELAY, input=nested(ABYSS)), 'nested more than 64 levels deep'),
    (dict(DELAY, input='x' * (limits.MAX_BSON_SIZE + 1)), '16 MB'),
    (dict(DELAY, input={1, 2}), 'cannot be stored'),
])
def test_delay_items_refuse_input_past_the_limits(data, message):
    with pytest.raises(ValueError, match=message):
        Delay(data)


@pytest.mark.parametrize('data, message', [
    ({'minute': list(range(60)) * 1000}, 'minute has 60000 values; a cron '
     'field takes at most 60'),
    ({'minute': [10 ** 12]}, 'out of range 0..59'),
    ({'expression': '0-%d * * * *' % 10 ** 12}, 'out of range 0..59'),
    ({'expression': '0-59 ' * 500}, 'expression has 2500 characters'),
    ({'timezone': 'America'}, "'America' is not a known IANA timezone"),
    ({'timezone': 'Europe'}, 'not a known IANA timezone'),
    ({'timezone': 'x' * 5000}, 'not a known IANA timezone'),
    ({'timezone': '../../../etc/passwd'}, 'not a known IANA timezone'),
    ({'timezone': 'Europe/Zurich\x00'}, 'not a known IANA timezone'),
    ({'timezone': 7}, 'must be an IANA timezone name'),
    ({'title': 't' * 5000}, 'title has 5000 characters'),
])
def test_cron_items_refuse_input_past_the_limits(data, message):
    with pytest.raises(ValueError, match=message):
        Cron(dict(data, jobName='echo'))


def test_a_refused_time_zone_name_is_quoted_shortened():
    with pytest.raises(ValueError) as info:
        Cron({'jobName': 'echo', 'timezone': 'x' * 5000})
    assert len(str(info.value)) < 200


def test_scheduler_update_keeps_the_limits(rp):
    itemid = rp.addScheduler(Delay(dict(DELAY, title='short')))
    before = list(rp.scheduler.collection.find())
    for fields in ({'title': 't' * 5000}, {'input': nested(ABYSS)},
                   {'description': 'd' * 2001}):
        with pytest.raises(ValueError):
            rp.scheduler.update(itemid, **fields)
    assert list(rp.scheduler.collection.find()) == before


# settings

def test_a_job_query_setting_nested_too_deep_is_refused():
    with pytest.raises(SettingsError, match='nested more than 64 levels deep'):
        parse_settings({'m01.remote.worker.job_query':
                        '{"a": %s}' % nestedText(ABYSS)})


# what outcomes store

#: A character UTF-8 writes in 4 bytes, the most it takes.
WIDE = '\U0001F600'


def test_cut_text_keeps_both_ends_and_says_what_it_cut():
    text = 'head ' + 'x' * 10000 + ' tail'
    cut = limits.cutText(text, 200)
    assert len(cut) == 200
    assert cut.startswith('head ') and cut.endswith(' tail')
    kept = len(cut) - len(limits.CUT_MARK % (len(text) - 200))
    assert '[... %d characters cut ...]' % (len(text) - kept) in cut
    assert limits.cutText('short', 200) == 'short'


def test_cut_text_makes_any_value_storable_text():
    class Unprintable:
        def __str__(self):
            raise ValueError('no')
    assert limits.cutText(Unprintable(), 100) == \
        '<Unprintable: str() raised ValueError>'
    assert limits.cutText('a\ud800b', 100) == 'a\\ud800b'
    assert limits.cutText({'k': 1}, 100) == "{'k': 1}"
    bson.encode({'v': limits.cutText('\udfff' * 5000, 100)})


def test_a_traceback_is_cut_line_by_line_then_in_its_middle_frames():
    frames = ''.join('  File "f.py", line %d, in f%d\n    f%d()\n'
                     % (n, n, n + 1) for n in range(2000))
    text = ('Traceback (most recent call last):\n' + frames +
            'ValueError: ' + 'q' * 100000 + '\n')
    cut = limits.cutTraceback(text)
    assert len(cut) <= limits.MAX_TRACEBACK_TEXT
    assert max(map(len, cut.splitlines())) <= limits.MAX_TRACEBACK_LINE
    assert cut.startswith('Traceback (most recent call last):\n  File')
    assert 'in f1999\n' in cut and '\nValueError: qqq' in cut
    assert 'characters cut ...]' in cut


def test_the_limits_add_up_to_at_most_16_mb():
    assert limits.MAX_JOB_DOCUMENT + limits.MAX_OUTPUT + \
        limits.OUTCOME_BYTES <= limits.MAX_BSON_SIZE


def test_the_largest_job_document_stays_within_16_mb():
    # Everything at its limit, in characters UTF-8 writes in 4 bytes: an
    # input as large as a job document takes, the most errors, attempts
    # and log lines an outcome keeps, the largest output.
    now = datetime.datetime(2030, 1, 1, tzinfo=datetime.timezone.utc)
    job = EchoJob()
    job.name = 'n' * limits.MAX_NAME
    job.worker = 'host.example.com:99999:' + 'w' * limits.MAX_NAME
    job.picked = now
    document = job.dump()
    document.update({'_id': bson.ObjectId(), 'status': 'queued',
                     'created': now, 'queued': now, 'retryTime': now,
                     'retryCounter': 0, 'version': 0, 'output': None,
                     'key': 'k' * 200,
                     'terms': [WIDE * limits.MAX_TERM_LENGTH] * 60})
    room = limits.MAX_JOB_DOCUMENT - len(bson.encode(document))
    document['input'] = 'i' * (room - 16)
    checkStorable(document, 'document')
    huge = WIDE * 10 ** 6
    # Lines as long as a traceback keeps them, as many as it keeps.
    lines = (WIDE * (limits.MAX_TRACEBACK_LINE - 1) + '\n') * 100
    failure = jobstate.failureUpdate(job, huge, lines, now, final=False,
                                     thread='t' * 200)
    attempt = failure['$push']['attempts']['$each'][0]
    document.update({
        'errors': failure['$push']['errors']['$each'] * limits.MAX_ERRORS,
        'tracebacks': failure['$push']['tracebacks']['$each'] *
        limits.MAX_ERRORS,
        'attempts': [attempt] * limits.MAX_ATTEMPTS,
        'log': jobstate.logUpdate(huge, now)['$push']['log']['$each'] *
        limits.MAX_LOG_LINES,
        'progress': jobstate.progressUpdate(0.5, huge, now)['$set'][
            'progress'],
        'terms': [WIDE * limits.MAX_TERM_LENGTH] * limits.MAX_TERMS,
        'completed': now, 'leaseExpires': now, 'claim': 'c' * 32,
    })
    output = WIDE * (limits.MAX_OUTPUT // 4 - 8)
    checkStorable(output, 'output')
    document.update(jobstate.completeUpdate(job, output, now)['$set'])
    assert len(bson.encode(document)) <= limits.MAX_BSON_SIZE
    assert len(bson.encode(document)) - limits.MAX_JOB_DOCUMENT - \
        limits.MAX_OUTPUT <= limits.OUTCOME_BYTES
    # And each part took what its limit allows, not less.
    assert len(document['errors'][0]) == limits.MAX_ERROR_TEXT
    assert len(document['tracebacks'][0]) == limits.MAX_TRACEBACK_TEXT
    assert len(attempt['traceback']) == limits.ATTEMPT_TRACEBACK_TEXT
