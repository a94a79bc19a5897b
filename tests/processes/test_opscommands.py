"""The operator's commands of ``m01remote``
(``m01.remote.operations.commands``): tables and JSON over the
operator's layer, and their exit statuses."""
import io
import json

import pytest
import transaction

from m01.remote import console
from m01.remote.operations import commands
from support.jobs import echoAndFailProcessor
from support.testserver import unique_database_name
from test_console import write_ini


@pytest.fixture
def rp(database):
    with echoAndFailProcessor(database, 30, {'maxRetries': 1}) as processor:
        yield processor


def command(rp, *argv):
    """``(status, out, err)`` of ``m01remote <argv>`` on ``rp``."""
    args = console.build_parser().parse_args(
        [argv[0], 'unused.ini'] + list(argv[1:]))
    out, err = io.StringIO(), io.StringIO()
    status = commands.run(rp, args, out, err)
    return status, out.getvalue(), err.getvalue()


def add(rp, name, inputs):
    jobids = [rp.addJob(name, value) for value in inputs]
    transaction.commit()
    return jobids


def test_status_shows_counts_factories_and_workers(rp):
    add(rp, 'echo', [1, 2])
    status, out, _ = command(rp, 'status')
    assert status == 0
    assert out.startswith('Jobs: waiting 0, queued 2, processing 0')
    assert 'factory' in out and 'echo' in out
    status, out, _ = command(rp, 'status', '--json')
    data = json.loads(out)
    assert data['counts']['queued'] == 2
    assert [f['name'] for f in data['factories']] == ['echo', 'fail']


def test_jobs_are_listed_filtered_and_searched(rp):
    ann, bob = add(rp, 'echo', [{'to': 'ann'}, {'to': 'bob'}])
    status, out, _ = command(rp, 'jobs')
    assert status == 0 and ann in out and bob in out
    assert out.rstrip().endswith('2 jobs, page 1 of 1')
    status, out, _ = command(rp, 'jobs', '--q', 'ann', '--json')
    assert [job['id'] for job in json.loads(out)['jobs']] == [ann]
    status, out, _ = command(rp, 'jobs', '--status', 'error')
    assert status == 1 and '0 jobs' in out
    with pytest.raises(commands.Usage):
        command(rp, 'jobs', '--status', 'nonsense')
    with pytest.raises(commands.Usage):
        command(rp, 'jobs', '--page-size', '1000')


def test_one_job(rp):
    jobid, = add(rp, 'echo', [{'to': 'ann'}])
    status, out, _ = command(rp, 'job', jobid)
    assert status == 0 and 'queued' in out and '{"to": "ann"}' in out
    assert json.loads(command(rp, 'job', jobid, '--json')[1])['id'] == jobid
    status, _, err = command(rp, 'job', '0123456789abcdef01234567')
    assert status == 1 and 'there is no job' in err


def test_a_workflow_shows_its_progress_and_jobs(rp):
    added = rp.addChain([('echo', 1), ('echo', 2), ('echo', 3)])
    transaction.commit()
    assert rp.processNextJob()
    transaction.commit()
    workflow = added['workflow']
    status, out, _ = command(rp, 'workflow', workflow)
    assert status == 0
    assert '1 of 3 jobs ended (1 completed, 1 queued, 1 waiting)' in out
    assert [line.split()[0] for line in out.splitlines()[2:]] == \
        added['jobs']
    shown = json.loads(command(rp, 'workflow', workflow, '--json')[1])
    assert shown['progress']['completed'] == 1 and shown['total'] == 3
    assert [job['status'] for job in shown['jobs']] == [
        'completed', 'queued', 'waiting']
    status, _, err = command(rp, 'workflow', 'not-an-id')
    assert status == 1 and 'there is no workflow' in err
    with pytest.raises(commands.Usage):
        command(rp, 'workflow', workflow, '--page', '0')


def test_cancel_retry_and_remove(rp):
    jobids = add(rp, 'echo', [1, 2, 3])
    status, out, _ = command(rp, 'cancel', jobids[0], jobids[1])
    assert (status, out) == (0, 'cancel: 2 jobs\n')
    status, out, _ = command(rp, 'cancel', jobids[0])
    assert status == 1       # cancelled already: nothing to do
    status, out, _ = command(rp, 'retry', '--all', '--status', 'cancelled',
                             '--json')
    assert json.loads(out) == {'action': 'retry', 'done': 2, 'refused': 0}
    status, out, _ = command(rp, 'remove', '--all', '--name', 'echo')
    assert (status, out) == (0, 'delete: 3 jobs\n')
    assert len(rp.jobs) == 0
    for bad in (('cancel',), ('cancel', jobids[0], '--all'),
                ('cancel', 'nonsense')):
        with pytest.raises(commands.Usage):
            command(rp, *bad)


def stored(rp):
    return sorted((str(document['_id']), document['status']) for document
                  in rp.jobsCollection.find({}, {'status': 1}))


@pytest.mark.parametrize('argv, named', [
    (('--name', ''), "name must be a job factory name, not ''"),
    (('--status', ''), "status must be one of .*, not ''"),
    (('--status', 'eror'), "not 'eror'"),
    (('--q', '...'), "q has no word to search for: '...'"),
    (('--name', 'a\udcffb'), 'name is not UTF-8 text'),
])
def test_a_mistyped_filter_option_changes_nothing(rp, argv, named):
    jobids = add(rp, 'echo', [1, 2])
    rp.cancelJob(jobids[0])
    transaction.commit()
    before = stored(rp)
    for action in ('remove', 'cancel', 'retry'):
        with pytest.raises(commands.Usage, match=named):
            command(rp, action, '--all', *argv)
    with pytest.raises(commands.Usage, match=named):
        command(rp, 'jobs', *argv)
    assert stored(rp) == before


def test_every_job_only_with_all(rp):
    echo = add(rp, 'echo', [1, 2])
    fail, = add(rp, 'fail', [None])
    with pytest.raises(commands.Usage, match='--all'):
        command(rp, 'remove', '--status', 'queued')
    # Ids with filter options: those of them that match.
    status, out, _ = command(rp, 'cancel', fail, *echo, '--name', 'fail')
    assert (status, out) == (0, 'cancel: 1 jobs\n')
    assert [rp.getJobStatus(jobid) for jobid in echo] == ['queued'] * 2
    assert command(rp, 'remove', '--all') == (0, 'delete: 3 jobs\n', '')
    assert len(rp.jobs) == 0


def test_pause_and_resume(rp):
    assert command(rp, 'pause', 'echo') == (0, 'echo paused\n', '')
    assert rp.jobFactories.isPaused('echo')
    assert command(rp, 'resume', 'echo', '--json')[1].strip() == \
        json.dumps({'factory': 'echo', 'paused': False}, indent=1)
    status, _, err = command(rp, 'pause', 'missing')
    assert status == 1 and 'there is no job factory missing' in err


def test_queues_are_listed_filtered_paused_and_limited(rp):
    rp.addJob('echo', 1, queue='mail')
    add(rp, 'echo', [2, 3])
    status, out, _ = command(rp, 'queues')
    assert status == 0
    lines = out.splitlines()
    assert lines[0].split()[:3] == ['queue', 'paused', 'queued']
    assert lines[1].split()[:3] == ['default', 'no', '2']
    assert lines[2].split()[:3] == ['mail', 'no', '1']
    status, out, _ = command(rp, 'jobs', '--queue', 'mail', '--json')
    assert json.loads(out)['total'] == 1
    assert command(rp, 'pause-queue', 'mail') == (0, 'mail paused\n', '')
    assert rp.queueSettings.isPaused('mail')
    assert command(rp, 'resume-queue', 'mail', '--json')[1].strip() == \
        json.dumps({'paused': False, 'queue': 'mail'}, indent=1)
    assert command(rp, 'limit-queue', 'mail', '10/60') == \
        (0, 'mail: at most 10 starts per 60 s\n', '')
    assert rp.queueSettings.rateLimit('mail', fresh=True) == [10, 60]
    status, out, _ = command(rp, 'queues', '--json')
    listed = {q['name']: q for q in json.loads(out)['queues']}
    assert listed['mail']['rateLimit'] == [10, 60]
    assert listed['mail']['rateUsed'] == 0
    assert command(rp, 'limit-queue', 'mail', 'none')[1] == \
        'mail: no rate limit\n'
    assert rp.queueSettings.rateLimit('mail', fresh=True) is None


@pytest.mark.parametrize('argv', [
    ('limit-queue', 'mail', '0/60'), ('limit-queue', 'mail', 'often'),
    ('pause-queue', 'a b'), ('jobs', '--queue', 'a,b')])
def test_a_bad_queue_argument_changes_nothing(rp, argv):
    with pytest.raises(commands.Usage):
        command(rp, *argv)
    assert rp.queueSettings.documents(fresh=True) == {}


@pytest.mark.mongojava
def test_the_commands_through_m01remote(tmp_path, mongojava_uri, capsys):
    database = unique_database_name()
    ini = write_ini(tmp_path / 'ops.ini', mongojava_uri, database)
    try:
        assert console.main(['status', ini]) == 0
        assert 'Jobs: waiting 0, queued 0' in capsys.readouterr().out
        assert console.main(['jobs', ini, '--status', 'bogus']) == 2
        assert 'status must be one of' in capsys.readouterr().err
        assert console.main(['job', ini, 'nonsense']) == 1
        assert console.main(['pause', ini, 'echo', '--json']) == 0
        assert json.loads(capsys.readouterr().out)['paused'] is True
    finally:
        from m01.remote import store
        store.connect(mongojava_uri).drop_database(database)


def test_the_embedded_store_is_refused(tmp_path, capsys):
    ini = write_ini(tmp_path / 'embedded.ini', 'mongomock://', 'm01test')
    assert console.main(['status', ini]) == 2
    assert 'embedded in-memory store' in capsys.readouterr().err


def test_a_worker_serves_the_queues_given(tmp_path, capsys):
    args = console.build_parser().parse_args(
        ['worker', 'unused.ini', '--queue', 'mail:2', '--queue', 'reports'])
    assert args.queue == ['mail:2', 'reports']
    ini = write_ini(tmp_path / 'embedded.ini', 'mongomock://', 'm01test')
    assert console.main(['worker', ini, '--queue', 'a b']) == 2
    assert '--queue' in capsys.readouterr().err


@pytest.mark.mongojava
def test_the_queues_given_reach_the_worker(tmp_path, mongojava_uri):
    ini = write_ini(tmp_path / 'queues.ini', mongojava_uri,
                    unique_database_name())
    processor, closer = console.load_processor(ini, None, ['mail:2', 'x'])
    try:
        assert processor.jobWorkerArguments['queues'] == {'mail': 2,
                                                          'x': None}
    finally:
        closer()
