"""The ``m01remote`` command: a job worker or the scheduler in the
foreground of a process of its own.

    m01remote worker production.ini
    m01remote scheduler production.ini#main

The application named by the ini file is loaded as ``pserve`` would load
it (so its job classes are imported and its registrations made) but its
in-process threads are not started: this process runs the one it was
asked for until SIGTERM or SIGINT, then lets the running jobs finish
(within ``--stop-timeout``) and exits 0.
"""
import argparse
import configparser
import logging
import signal
import sys
import threading
import traceback

import plaster
from pyramid.exceptions import (
    ConfigurationError,
    ConfigurationExecutionError,
)
from pyramid.paster import bootstrap, get_appsettings, setup_logging

from m01.remote.configured import make_remote_processor
from m01.remote.interfaces import IRemoteProcessor
from m01.remote.operations import commands as opscommands
from m01.remote.settings import get_remote_settings, parse_settings
from m01.remote.worker.kinds import worker_arguments
from m01.remote.worker.threads import STOP_TIMEOUT, no_in_process_threads

logger = logging.getLogger('m01.remote')

#: How often the foreground loop checks its thread is still alive.
CHECK_INTERVAL = 1.0
#: How long the lease keeper may take to finish a renewal when stopping.
KEEPER_STOP_TIMEOUT = 30.0

#: What loading a configuration raises when its file cannot be read or
#: its application cannot be found or imported.
UNLOADABLE = (OSError, LookupError, ImportError, UnicodeError,
              configparser.Error, plaster.PlasterError)
#: The positional arguments, as the usage names them.
POSITIONALS = {'config_uri': 'INI', 'factory': 'FACTORY', 'jobid': 'JOBID',
               'jobids': 'JOBID', 'queue': 'QUEUE',
               'limit': 'STARTS/SECONDS'}

COMMANDS = {
    'worker': ('process queued jobs',
               'startProcessor', 'stopProcessor', 'isProcessing'),
    'scheduler': ('turn due scheduler items into jobs',
                  'startScheduler', 'stopScheduler', 'isScheduling'),
}


class CommandError(Exception):
    """A problem to report in one line, exit status 2."""


def build_parser():
    parser = argparse.ArgumentParser(
        prog='m01remote',
        description='Run an m01.remote job worker or scheduler in the '
                    'foreground, for the application of a Pyramid ini '
                    'file (SIGTERM or SIGINT stops it gracefully), or '
                    'look at and change its queue. Exit status: 0 done, '
                    '1 nothing to do (no job matched, an unknown id), 2 '
                    'a usage or configuration error.')
    commands = parser.add_subparsers(dest='command', metavar='COMMAND',
                                     required=True)
    for name, (description, *_) in COMMANDS.items():
        command = commands.add_parser(
            name, help=description,
            description=description[0].upper() + description[1:] + '.')
        command.add_argument(
            'config_uri', metavar='INI',
            help='the application ini file, optionally with #app-name '
                 '(default #main)')
        command.add_argument(
            '--name', default=None,
            help='the processor name (default: m01.remote.name of the '
                 'application)')
        if name == 'worker':
            command.add_argument(
                '--queue', action='append', default=[],
                metavar='NAME[:THREADS]',
                help='serve this queue (repeatable; default: '
                     'm01.remote.worker.queues, or every queue), with '
                     'THREADS threads of its own')
        command.add_argument(
            '--stop-timeout', type=float, default=STOP_TIMEOUT,
            metavar='SECONDS',
            help='how long to wait for running jobs when stopping '
                 '(default %(default)s)')
    opscommands.addCommands(commands, add_common)
    return parser


def add_common(command):
    """The arguments of every operator's command."""
    command.add_argument(
        'config_uri', metavar='INI',
        help='the application ini file, optionally with #app-name '
             '(default #main)')
    command.add_argument(
        '--processor', default=None, metavar='NAME',
        help='the processor name (default: m01.remote.name of the '
             'application)')


def refuse_embedded(settings):
    if settings.embedded:
        raise CommandError(
            'm01.remote.uri = %s is the embedded in-memory store, which '
            'only the application process itself can see. Point '
            'm01.remote.uri at a MongoDB server (mongodb://host:port/) to '
            'run workers in other processes, or use '
            'm01.remote.start_worker = true to run them in the '
            'application.' % settings.uri)


def load_processor(config_uri, name=None, queues=()):
    """Return ``(processor, closer)`` for the application of
    ``config_uri``; its in-process threads are not started. ``queues``
    (``NAME[:THREADS]`` texts) replace ``m01.remote.worker.queues``."""
    try:
        queues = parse_settings({'m01.remote.worker.queues': ', '.join(
            queues)}).worker_queues if queues else None
    except ConfigurationError as e:
        raise CommandError('--queue: %s' % e)
    try:
        refuse_embedded(parse_settings(get_appsettings(config_uri)))
        with no_in_process_threads():
            env = bootstrap(config_uri)
    except ConfigurationExecutionError as e:
        # The error itself, not where in the configuration it happened.
        raise CommandError('%s: %s' % (e.etype.__name__, e.evalue))
    except ConfigurationError as e:
        raise CommandError(str(e))
    registry = env['registry']
    try:
        settings = get_remote_settings(registry)
        refuse_embedded(settings)
        processor = registry.queryUtility(IRemoteProcessor)
        if processor is None:
            raise CommandError(
                'The application of %s does not include m01.remote '
                '(config.include("m01.remote")).' % config_uri)
        if name and name != processor.name:
            processor = make_remote_processor(
                registry, settings.replace(name=name))
        if queues:
            settings = settings.replace(worker_queues=queues)
        # A kind running jobs in child processes loads the ini there.
        processor.jobWorkerArguments = worker_arguments(
            settings, processor.jobWorkerFactory, configUri=config_uri)
    except BaseException:
        env['closer']()
        raise
    return processor, env['closer']


def run(processor, command, stop_timeout=STOP_TIMEOUT, stop_event=None):
    """Run the ``command`` thread of ``processor`` until ``stop_event``
    is set (by SIGTERM or SIGINT); return the exit status."""
    _, start, stop, is_running = COMMANDS[command]
    stop_event = stop_event or threading.Event()

    def request_stop(signum, frame):
        if stop_event.is_set():
            logger.info('Already stopping: waiting up to %.1f s for the '
                        'running jobs', stop_timeout)
            return
        logger.info('%s received: stopping', signal.Signals(signum).name)
        stop_event.set()

    handled = (signal.SIGTERM, signal.SIGINT)
    previous = {signum: signal.signal(signum, request_stop)
                for signum in handled}
    # An operator's stop (the process's control document) is a SIGTERM.
    processor.monitor.onStop = stop_event.set
    processor.monitor.origin = 'm01remote %s' % command
    try:
        getattr(processor, start)()
        logger.info('m01remote %s: serving processor %r; SIGTERM or '
                    'SIGINT stops it', command, processor.name)
        status = 0
        while not stop_event.wait(CHECK_INTERVAL):
            if not getattr(processor, is_running):
                logger.error('m01remote %s: the thread ended on its own',
                             command)
                status = 1
                break
        getattr(processor, stop)(stop_timeout)
        # Jobs still running past the stop timeout end with the process;
        # the lease keeper must not: it stops between two of its writes.
        processor.leases.stop(KEEPER_STOP_TIMEOUT)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return status


def not_utf8(args):
    """``(argument, bytes)`` of the first argument that is not UTF-8
    text (its bytes, undecodable, reach Python as lone surrogates and
    could not be stored or shown), None when every one is."""
    for name, value in sorted(vars(args).items()):
        for one in value if isinstance(value, list) else [value]:
            if not isinstance(one, str):
                continue
            try:
                one.encode('utf-8')
            except UnicodeEncodeError:
                return (POSITIONALS.get(name, '--' + name.replace('_', '-')),
                        one.encode('utf-8', 'surrogateescape'))
    return None


def main(argv=None):
    args = build_parser().parse_args(argv)
    undecodable = not_utf8(args)
    if undecodable is not None:
        print('m01remote: %s is not UTF-8 text: %r' % undecodable,
              file=sys.stderr)
        return 2
    if args.command not in COMMANDS:
        return operator_command(args)
    if args.stop_timeout < 0:
        print('m01remote: --stop-timeout must be >= 0', file=sys.stderr)
        return 2
    loaded = load_for_command(args.config_uri, args.name,
                              getattr(args, 'queue', ()))
    if loaded is None:
        return 2
    processor, closer = loaded
    try:
        return run(processor, args.command, args.stop_timeout)
    finally:
        closer()


def load_for_command(config_uri, name, queues=()):
    """The processor ``name`` of the application of ``config_uri``
    (serving ``queues``), its logging set up, and what closes it; None
    when it cannot be loaded (said on stderr)."""
    try:
        setup_logging(config_uri)
        return load_processor(config_uri, name, queues)
    except CommandError as e:
        message = str(e)
    except plaster.exceptions.LoaderNotFound as e:
        message = ('%s is not an ini file: give the application\'s '
                   'configuration as pserve takes it (production.ini, '
                   'production.ini#main). %s' % (config_uri, e))
    except UNLOADABLE as e:
        message = 'cannot load the application of %s: %s' % (
            config_uri, one_line(e))
    except Exception as e:
        # The application's own failure: its traceback helps fix it.
        traceback.print_exc()
        message = 'cannot load the application of %s: %s' % (
            config_uri, one_line(e))
    print('m01remote: %s' % message, file=sys.stderr)
    return None


def one_line(error):
    """An exception as one line: its type and its message."""
    return '%s: %s' % (type(error).__name__, ' '.join(str(error).split()))


def operator_command(args):
    loaded = load_for_command(args.config_uri, args.processor)
    if loaded is None:
        return 2
    processor, closer = loaded
    try:
        return opscommands.run(processor, args)
    except opscommands.Usage as e:
        print('m01remote %s: %s' % (args.command, e), file=sys.stderr)
        return 2
    finally:
        closer()


if __name__ == '__main__':  # pragma: no cover
    sys.exit(main())
