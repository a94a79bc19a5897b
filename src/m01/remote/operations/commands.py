"""The operator's commands of ``m01remote``, over the operator's layer
(``m01.remote.operations``)::

    m01remote status production.ini
    m01remote jobs production.ini --status error --name mail --q invoice
    m01remote job production.ini 6b0ed1f2...
    m01remote workflow production.ini 6b0ed1f3... [--page 2]
    m01remote retry production.ini 6b0ed1f2... [more ids]
    m01remote cancel production.ini --all --name mail --status queued
    m01remote remove production.ini --all --status completed
    m01remote pause production.ini mail
    m01remote resume production.ini mail
    m01remote queues production.ini
    m01remote pause-queue production.ini reports
    m01remote resume-queue production.ini reports
    m01remote limit-queue production.ini payments 100/60

Each prints a table for people, or JSON with ``--json``. Exit status: 0
done; 1 nothing to do (no job matched, an unknown id or factory, a job
whose status does not allow the change); 2 a usage or configuration
error, or a server that cannot be reached.
"""
import json
import sys

import transaction

from m01.remote import operations
from m01.remote.interfaces import CANCELLED, COMPLETED, ERROR
from m01.remote.job import checkRateLimit
from m01.remote.operations import ACTIONS, JobFilter
from m01.remote.operations.shapes import (
    jobDetail,
    jobSummary,
    jsonDefault,
    queueJSON,
    relatedJSON,
)

#: The statuses a job of a workflow has ended in.
ENDED = (COMPLETED, ERROR, CANCELLED)

#: command -> (help, bulk action or None)
COMMANDS = {
    'status': ('show job counts, each factory\'s backlog and the workers',
               None),
    'jobs': ('list jobs (a filter, a search, a page)', None),
    'job': ('show one job', None),
    'workflow': ('show a chain or a group: its progress and its jobs',
                 None),
    'retry': ('queue jobs in error or cancelled again', 'retry'),
    'cancel': ('cancel waiting, queued or processing jobs', 'cancel'),
    'remove': ('delete jobs that are not processing', 'delete'),
    'pause': ('stop every process from claiming a factory\'s jobs', None),
    'resume': ('let a paused factory\'s jobs be claimed again', None),
    'queues': ('show each queue\'s jobs, whether it is paused, its rate '
               'limit', None),
    'pause-queue': ('stop every process from claiming a queue\'s jobs',
                    None),
    'resume-queue': ('let a paused queue\'s jobs be claimed again', None),
    'limit-queue': ('set or lift the rate limit of a queue', None),
}
DONE, NOTHING = 0, 1


class Usage(Exception):
    """A bad argument: exit status 2."""


def addFilterOptions(command):
    command.add_argument('--status', action='append', default=[],
                         help='only jobs of this status (repeatable)')
    command.add_argument('--name', help='only jobs of this factory')
    command.add_argument('--q', default='', metavar='TEXT',
                         help="only jobs whose input, output, errors or "
                              "id hold every word of TEXT")
    command.add_argument('--queue', help='only jobs of this queue')


def addCommands(commands, addCommon):
    """Add the operator's commands to the ``m01remote`` parser's
    subparsers; ``addCommon(parser)`` adds the INI argument and
    ``--name``-like options every command takes."""
    for name, (description, action) in COMMANDS.items():
        command = commands.add_parser(
            name, help=description,
            description=description[0].upper() + description[1:] + '.')
        addCommon(command)
        command.add_argument('--json', action='store_true',
                             help='print JSON instead of a table')
        if name == 'jobs':
            addFilterOptions(command)
            command.add_argument('--sort', default='created',
                                 choices=operations.SORT_FIELDS)
            command.add_argument('--order', default='desc',
                                 choices=('desc', 'asc'))
            command.add_argument('--page', type=int, default=1)
            command.add_argument('--page-size', type=int, default=50)
        elif name == 'job':
            command.add_argument('jobid', metavar='JOBID')
        elif name == 'workflow':
            command.add_argument('workflowid', metavar='WORKFLOW')
            command.add_argument('--page', type=int, default=1)
        elif action is not None:
            command.add_argument('jobids', metavar='JOBID', nargs='*',
                                 help='the jobs (at most %d; with filter '
                                 'options, those of them that match)'
                                 % operations.MAX_SELECTED)
            command.add_argument('--all', action='store_true',
                                 help='instead of job ids: all jobs '
                                      'matching the filter options, every '
                                      'job without them')
            addFilterOptions(command)
        elif name in ('pause', 'resume'):
            command.add_argument('factory', metavar='FACTORY')
        elif name.endswith('-queue'):
            command.add_argument('queue', metavar='QUEUE')
            if name == 'limit-queue':
                command.add_argument(
                    'limit', metavar='STARTS/SECONDS',
                    help='at most STARTS jobs start per SECONDS, across '
                         'every process; "none" lifts the limit')


def printJSON(value, out):
    json.dump(value, out, default=jsonDefault, sort_keys=True, indent=1,
              ensure_ascii=False)
    out.write('\n')


def printTable(header, rows, out):
    rows = [[_cell(value) for value in row] for row in rows]
    widths = [max([len(title)] + [len(row[n]) for row in rows])
              for n, title in enumerate(header)]
    for row in [list(header)] + rows:
        out.write('  '.join(value.ljust(width) for value, width
                            in zip(row, widths, strict=True)).rstrip() + '\n')


def _cell(value):
    if value is None:
        return '-'
    if hasattr(value, 'isoformat'):
        return value.strftime('%Y-%m-%d %H:%M:%S')
    return str(value)


def _filter(args):
    try:
        return JobFilter(tuple(args.status), args.name, args.q,
                         args.queue)
    except ValueError as e:
        raise Usage(str(e))


def status(queries, args, out):
    data = queries.stats('hour')
    counts = queries.countByStatus()
    if args.json:
        printJSON({'counts': counts, 'factories': data['factories'],
                   'workers': queries.workers(),
                   'lastHour': data['totals']}, out)
        return DONE
    out.write('Jobs: %s\n' % ', '.join('%s %d' % item
                                       for item in counts.items()))
    out.write('Last hour: %s\n\n' % ', '.join(
        '%s %d' % item for item in data['totals'].items()))
    printTable(('factory', 'queued', 'due', 'latency s', 'processing',
                'error', 'mean run s'),
               [(row['name'], row['counts']['queued'], row['due'],
                 row['latency'], row['counts']['processing'],
                 row['counts']['error'], row['meanRunSeconds'])
                for row in data['factories']], out)
    out.write('\n')
    printTable(('process', 'state', 'runs', 'jobs', 'seen'),
               [(w['id'], w['state'], ','.join(w.get('kinds') or ()),
                 len(w.get('jobs') or ()), w.get('seen'))
                for w in queries.workers()], out)
    return DONE


def jobs(queries, args, out):
    try:
        page = queries.jobs(_filter(args), args.sort, args.order == 'desc',
                            args.page, args.page_size)
    except ValueError as e:
        raise Usage(str(e))
    if args.json:
        printJSON({'jobs': [jobSummary(job) for job in page.jobs],
                   'page': page.page, 'pages': page.pages,
                   'total': page.total}, out)
    else:
        printTable(('job', 'factory', 'status', 'created', 'completed',
                    'retries'),
                   [(job.__name__, job.name, job.status, job.created,
                     job.completed, '%s/%s' % (job.retryCounter,
                                               job.maxRetries))
                    for job in page.jobs], out)
        out.write('%d jobs, page %d of %d\n' % (page.total, page.page,
                                                 page.pages))
    return DONE if page.total else NOTHING


def job(queries, args, out, err):
    try:
        found = queries.job(args.jobid)
    except KeyError:
        err.write('m01remote: there is no job %s\n' % args.jobid)
        return NOTHING
    detail = jobDetail(found)
    if args.json:
        printJSON(detail, out)
        return DONE
    for key in ('id', 'name', 'status', 'title', 'priority', 'key',
                'created', 'queued', 'picked', 'completed', 'retryTime',
                'retryCounter', 'maxRetries', 'worker'):
        out.write('%-13s %s\n' % (key, _cell(detail[key])))
    for key in ('input', 'output'):
        out.write('%-13s %s\n' % (key, '(longer than 64 KB)'
                                  if detail[key + 'Omitted'] else
                                  json.dumps(detail[key],
                                             default=jsonDefault)))
    for error in detail['errors']:
        out.write('error         %s\n' % error['message'])
    return DONE


def workflow(queries, args, out, err):
    try:
        found = queries.workflow(args.workflowid, args.page)
    except KeyError:
        err.write('m01remote: there is no workflow %s\n' % args.workflowid)
        return NOTHING
    except ValueError as e:
        raise Usage(str(e))
    found['jobs'] = [relatedJSON(row) for row in found['jobs']]
    if args.json:
        printJSON(found, out)
        return DONE
    ended = sum(count for status, count in found['progress'].items()
                if status in ENDED)
    out.write('workflow %s: %d of %d jobs ended (%s)\n' % (
        found['workflow'], ended, found['total'], ', '.join(
            '%d %s' % (count, status)
            for status, count in sorted(found['progress'].items())
            if count)))
    printTable(('id', 'name', 'status'),
               [(row['id'], row['name'] or '(removed)',
                 row['status'] or '-') for row in found['jobs']], out)
    if found['pages'] > 1:
        out.write('page %d of %d\n' % (found['page'], found['pages']))
    return DONE


def change(actions, args, action, out, err):
    if args.all == bool(args.jobids):
        raise Usage('give the job ids or --all (with filter options, or '
                    'alone for every job), not both or neither')
    selected = _filter(args)
    result = operations.BulkResult(action)
    try:
        while True:
            # Bounded calls, as a request makes them, until none is left.
            step = actions.bulk(action, selected, args.jobids or None,
                                all=args.all)
            result.done += step.done
            result.refused += step.refused
            if not step.more or not step.done:
                break
    except ValueError as e:
        raise Usage(str(e))
    if args.json:
        printJSON({'action': action, 'done': result.done,
                   'refused': result.refused}, out)
    else:
        out.write('%s: %d jobs%s\n' % (action, result.done, (
            ', %d changed meanwhile and left as they are' % result.refused)
            if result.refused else ''))
    return DONE if result.done else NOTHING


def factory(actions, args, out, err):
    switch = actions.pauseFactory if args.command == 'pause' \
        else actions.resumeFactory
    try:
        switch(args.factory)
    except KeyError:
        err.write('m01remote: there is no job factory %s\n' % args.factory)
        return NOTHING
    if args.json:
        printJSON({'factory': args.factory,
                   'paused': args.command == 'pause'}, out)
    else:
        out.write('%s %sd\n' % (args.factory, args.command))
    return DONE


def queues(queries, args, out):
    listed = queries.queues()
    if args.json:
        printJSON({'queues': [queueJSON(info) for info in listed]}, out)
        return DONE
    printTable(('queue', 'paused', 'queued', 'processing', 'error',
                'rate limit', 'used', 'factories'),
               [(info.name, 'yes' if info.paused else 'no',
                 info.counts['queued'], info.counts['processing'],
                 info.counts['error'],
                 '%s/%s s' % tuple(info.rateLimit) if info.rateLimit
                 else None, info.rateUsed, ', '.join(info.factories))
                for info in listed], out)
    return DONE


def queue(actions, args, out):
    try:
        if args.command == 'limit-queue':
            limit = None if args.limit.strip().lower() == 'none' \
                else args.limit
            actions.setQueueRateLimit(args.queue, limit)
            shown = {'queue': args.queue, 'rateLimit': None
                     if limit is None else checkRateLimit(limit)}
        else:
            (actions.pauseQueue if args.command == 'pause-queue'
             else actions.resumeQueue)(args.queue)
            shown = {'queue': args.queue,
                     'paused': args.command == 'pause-queue'}
    except ValueError as e:
        raise Usage(str(e))
    if args.json:
        printJSON(shown, out)
    elif 'paused' in shown:
        out.write('%s %sd\n' % (args.queue,
                                 args.command.split('-')[0]))
    else:
        out.write('%s: %s\n' % (args.queue, 'no rate limit'
                                 if shown['rateLimit'] is None else
                                 'at most %d starts per %s s'
                                 % tuple(shown['rateLimit'])))
    return DONE


def run(processor, args, out=None, err=None):
    """Run the operator's command of ``args`` on ``processor``; the exit
    status. Raises ``Usage`` for a bad argument."""
    out = out or sys.stdout
    err = err or sys.stderr
    manager = transaction.TransactionManager()
    bound = processor.bind(manager)
    queries, actions = operations.queries(bound), operations.actions(bound)
    action = COMMANDS[args.command][1]
    try:
        with manager:
            if args.command == 'status':
                return status(queries, args, out)
            if args.command == 'jobs':
                return jobs(queries, args, out)
            if args.command == 'job':
                return job(queries, args, out, err)
            if args.command == 'workflow':
                return workflow(queries, args, out, err)
            if action in ACTIONS:
                return change(actions, args, action, out, err)
            if args.command == 'queues':
                return queues(queries, args, out)
            if args.command.endswith('-queue'):
                return queue(actions, args, out)
            return factory(actions, args, out, err)
    finally:
        # What this process counted (cancelled jobs) before it exits.
        processor.counters.close()
