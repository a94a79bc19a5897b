"""A producer process of the load scenario (``support.faults.scenarios``).

    python -m support.faults.worker produce INI PRODUCER COUNT BATCH

loads the application of ``INI`` as ``m01remote`` does (its threads not
started), then commits ``COUNT`` ``record`` jobs in transactions of
``BATCH`` jobs, each input naming the producer and the job's number, and
prints one JSON line: how many jobs it committed and in how long.

Workers and schedulers are the real ``m01remote`` command; only
producing jobs needs a process of its own.
"""
import argparse
import json
import sys
import time

import transaction

from m01.remote.console import load_processor


def produce(processor, producer, count, batch):
    committed = 0
    started = time.monotonic()
    for first in range(0, count, batch):
        numbers = range(first, min(first + batch, count))
        # Not retried: a commit that failed half-way would be committed
        # twice, and the scenario would rightly count duplicates.
        with transaction.manager:
            for number in numbers:
                processor.addJob('record', {'producer': producer,
                                            'number': number})
        committed += len(numbers)
    return {'producer': producer, 'committed': committed,
            'seconds': round(time.monotonic() - started, 3)}


def main(argv=None):
    parser = argparse.ArgumentParser(prog='python -m support.faults.worker')
    commands = parser.add_subparsers(dest='command', required=True)
    command = commands.add_parser('produce', help='commit record jobs')
    command.add_argument('ini')
    command.add_argument('producer', type=int)
    command.add_argument('count', type=int)
    command.add_argument('batch', type=int)
    args = parser.parse_args(argv)
    processor, closer = load_processor(args.ini)
    try:
        result = produce(processor, args.producer, args.count, args.batch)
    finally:
        closer()
    print(json.dumps(result), flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
