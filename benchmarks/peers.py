"""Benchmark of peer Redis-backed job queues: RQ, Huey and Celery.

Runs the same no-op workload through each peer on this machine so that the
figures can be set beside m01.remote's own (``run_peers`` is importable for a
combined table).

How to run::

    pip install -r benchmarks/requirements.txt  # plus a redis-server binary
    python benchmarks/peers.py --jobs 10000 --json peers.json

``--variants`` restricts the run (e.g. ``--variants rq-simple,huey-threads``),
``--workers`` sets the concurrency per variant (default 4 threads/processes
in total, matching a 2-core machine) and ``--timeout`` bounds each phase.

Setup
-----
The script starts its own throw-away ``redis-server`` on a free port of
127.0.0.1 (no persistence: ``--save '' --appendonly no``, data directory in a
temporary folder) and stops it at the end, also on Ctrl-C, SIGTERM or errors.
Workers are separate processes started by the script (each in its own
process group, stopped at the end of its variant) with this directory on
``PYTHONPATH``; the jobs live in ``peer_jobs.py``.  Worker logging is set to
WARNING for every peer, and the database is flushed between variants.

Variants (``--workers N``, default 4):

* ``rq-fork``: N ``rq worker`` processes with the default ``Worker``, which
  forks a work horse per job;
* ``rq-simple``: N ``rq worker -w rq.SimpleWorker`` processes (no fork);
* ``huey-threads``: one ``huey_consumer`` with ``-k thread -w N``;
* ``celery-threads``: ``celery worker --pool threads --concurrency N``;
* ``celery-prefork``: ``celery worker --pool prefork --concurrency N``.

Celery runs without a result backend; RQ and Huey keep their defaults.

What is measured
----------------
Throughput: N no-op jobs (``--jobs``, default 10,000) are enqueued one call
at a time through each peer's ordinary API (``Queue.enqueue``, calling the
Huey task, ``Task.delay``) while no worker runs: ``enqueue_per_s`` is N
divided by the time of that loop.  The workers are then started; every job
increments a Redis counter, the first job to start records its start time
and the job that brings the counter to N records its end time.
``process_per_s`` is N divided by (last end - first start), so worker
start-up is excluded; ``drain_wall_s`` (from launching the workers to the
last completion, start-up included) is kept in the JSON as well.

Latency: with the same workers running and idle, single jobs are enqueued
one at a time (``--latency-samples``, default 200, after 3 unrecorded
warm-up jobs); each job pushes ``time.time()`` at its start onto a Redis
list, and the latency is that time minus the driver's ``time.time()`` taken
just before the enqueue call.  The driver waits for each start, then pauses
50 ms so the workers are idle again before the next sample.  The median and
the 99th percentile (nearest rank) are reported in milliseconds.

Every phase is bounded by ``--timeout`` seconds (default 300) and a drain
that makes no progress for 60 s, or a worker that dies, fails the variant:
it is reported as a failed row (with the processing rate reached so far if
its drain timed out) and the run goes on with the next one.  The exit
status is 1 if any variant failed.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import importlib.metadata
import json
import math
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import peer_jobs  # noqa: E402  (needs HERE on sys.path)

DEFAULT_JOBS = 10_000
DEFAULT_LATENCY_SAMPLES = 200
DEFAULT_TIMEOUT = 300.0
STALL_TIMEOUT = 60.0
LATENCY_WARMUP = 3
LATENCY_GAP = 0.05
POLL_INTERVAL = 0.01
QUEUE_NAME = "peer_bench"
PACKAGES = ("rq", "huey", "celery", "kombu", "redis")


class PhaseError(Exception):
    """A benchmark phase failed or ran out of time.

    ``partial`` optionally carries what was measured before the failure.
    """

    def __init__(self, message: str, partial: dict | None = None) -> None:
        super().__init__(message)
        self.partial = partial


# --------------------------------------------------------------------------
# Private redis-server
# --------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _stop_process_group(
    proc: subprocess.Popen, sig: int | None, grace: float
) -> None:
    """Stop the process group led by ``proc``.

    Sends ``sig`` (if given), waits up to ``grace`` seconds for ``proc`` to
    exit, then kills whatever is left of the group.
    """
    if proc.poll() is None:
        if sig is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
    # Kill whatever is left in the group (forked children, pool processes).
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)


@contextlib.contextmanager
def redis_server(workdir: Path, attempts: int = 3) -> Iterator[str]:
    """Run a private ``redis-server`` on 127.0.0.1 and yield its URL."""
    import redis

    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server not found on PATH")
    last_error = "unknown error"
    for attempt in range(attempts):
        port = _free_port()
        log_path = workdir / f"redis-{attempt}.log"
        # fmt: off
        cmd = [
            binary,
            "--port", str(port),
            "--bind", "127.0.0.1",
            "--protected-mode", "yes",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(workdir),
            "--logfile", str(log_path),
            "--daemonize", "no",
        ]
        # fmt: on
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            url = f"redis://127.0.0.1:{port}/0"
            client = redis.Redis.from_url(url, socket_connect_timeout=1)
            deadline = time.monotonic() + 10
            ready = False
            while time.monotonic() < deadline and proc.poll() is None:
                try:
                    ready = bool(client.ping())
                    break
                except redis.ConnectionError:
                    time.sleep(0.05)
            client.close()
            if not ready:
                last_error = _tail(log_path)
                continue
            yield url
            return
        finally:
            _stop_process_group(proc, signal.SIGTERM, grace=5)
    raise RuntimeError(f"redis-server did not start: {last_error}")


def _tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


# --------------------------------------------------------------------------
# Peers: how to enqueue and how to start workers
# --------------------------------------------------------------------------


class Producer:
    """Enqueues the two kinds of job through one peer's client API."""

    def enqueue_noop(self, prefix: str, target: int) -> None:
        raise NotImplementedError

    def enqueue_record_start(self, list_key: str) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Release client connections."""


class RQProducer(Producer):
    def __init__(self, url: str) -> None:
        from redis import Redis
        from rq import Queue

        self.connection = Redis.from_url(url)
        self.queue = Queue(QUEUE_NAME, connection=self.connection)

    def enqueue_noop(self, prefix: str, target: int) -> None:
        self.queue.enqueue("peer_jobs.noop", prefix, target)

    def enqueue_record_start(self, list_key: str) -> None:
        self.queue.enqueue("peer_jobs.record_start", list_key)

    def close(self) -> None:
        self.connection.close()


class HueyProducer(Producer):
    def __init__(self, url: str) -> None:
        self.app = peer_jobs.make_huey(url)

    def enqueue_noop(self, prefix: str, target: int) -> None:
        self.app.peer_noop(prefix, target)

    def enqueue_record_start(self, list_key: str) -> None:
        self.app.peer_record_start(list_key)

    def close(self) -> None:
        self.app.storage.pool.disconnect()


class CeleryProducer(Producer):
    def __init__(self, url: str) -> None:
        self.app = peer_jobs.make_celery(url)
        self.noop = self.app.tasks[peer_jobs.CELERY_NOOP]
        self.record_start = self.app.tasks[peer_jobs.CELERY_RECORD_START]

    def enqueue_noop(self, prefix: str, target: int) -> None:
        self.noop.delay(prefix, target)

    def enqueue_record_start(self, list_key: str) -> None:
        self.record_start.delay(list_key)

    def close(self) -> None:
        self.app.close()


def _rq_workers(worker_class: str) -> Callable[[str, int], list[list[str]]]:
    def commands(url: str, workers: int) -> list[list[str]]:
        return [
            [
                sys.executable,
                "-m",
                "rq.cli",
                "worker",
                "--url",
                url,
                "--worker-class",
                worker_class,
                "--name",
                f"peer-bench-{i}-{os.getpid()}",
                "--quiet",
                QUEUE_NAME,
            ]
            for i in range(workers)
        ]

    return commands


def _huey_workers(url: str, workers: int) -> list[list[str]]:
    return [
        [
            sys.executable,
            "-m",
            "huey.bin.huey_consumer",
            "peer_jobs.huey",
            "--workers",
            str(workers),
            "--worker-type",
            "thread",
            "--quiet",
        ]
    ]


def _celery_workers(pool: str) -> Callable[[str, int], list[list[str]]]:
    def commands(url: str, workers: int) -> list[list[str]]:
        return [
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "peer_jobs:celery_app",
                "worker",
                "--pool",
                pool,
                "--concurrency",
                str(workers),
                "--loglevel",
                "WARNING",
                "--hostname",
                f"peer-bench-{pool}@%h",
            ]
        ]

    return commands


@dataclass(frozen=True)
class Variant:
    key: str
    peer: str
    variant: str
    producer: Callable[[str], Producer]
    worker_commands: Callable[[str, int], list[list[str]]]
    # Signal for a clean stop (the group is killed after a grace period).
    stop_signal: int = signal.SIGTERM


VARIANTS: tuple[Variant, ...] = (
    Variant(
        "rq-fork",
        "RQ",
        "Worker (fork per job) x{n} procs",
        RQProducer,
        _rq_workers("rq.Worker"),
    ),
    Variant(
        "rq-simple",
        "RQ",
        "SimpleWorker (no fork) x{n} procs",
        RQProducer,
        _rq_workers("rq.SimpleWorker"),
    ),
    Variant(
        "huey-threads",
        "Huey",
        "RedisHuey consumer, {n} threads",
        HueyProducer,
        _huey_workers,
    ),
    Variant(
        "celery-threads",
        "Celery",
        "redis broker, threads pool x{n}",
        CeleryProducer,
        _celery_workers("threads"),
    ),
    Variant(
        "celery-prefork",
        "Celery",
        "redis broker, prefork pool x{n}",
        CeleryProducer,
        _celery_workers("prefork"),
    ),
)
VARIANT_KEYS = tuple(v.key for v in VARIANTS)


# --------------------------------------------------------------------------
# Measurement
# --------------------------------------------------------------------------


@dataclass
class WorkerSet:
    procs: list[subprocess.Popen]
    logs: list[Path]
    stop_signal: int

    def check_alive(self) -> None:
        for proc, log in zip(self.procs, self.logs, strict=True):
            code = proc.poll()
            if code is not None:
                raise PhaseError(
                    f"worker exited with code {code}: {_tail(log, 5)}"
                )

    def log_tails(self, lines: int = 10) -> str:
        return "\n".join(
            f"--- {log.name}\n{_tail(log, lines)}" for log in self.logs
        )

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, self.stop_signal)
        for proc in self.procs:
            _stop_process_group(proc, None, grace=15)


def _start_workers(
    spec: Variant, url: str, workers: int, workdir: Path
) -> WorkerSet:
    env = dict(os.environ)
    env[peer_jobs.REDIS_URL_ENV] = url
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(HERE), env.get("PYTHONPATH", "")) if p
    )
    env["PYTHONUNBUFFERED"] = "1"
    started = WorkerSet([], [], spec.stop_signal)
    try:
        for i, cmd in enumerate(spec.worker_commands(url, workers)):
            log = workdir / f"{spec.key}-worker-{i}.log"
            with open(log, "wb") as out:
                proc = subprocess.Popen(
                    cmd,
                    cwd=workdir,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            started.procs.append(proc)
            started.logs.append(log)
    except BaseException:
        started.stop()
        raise
    return started


def _percentile(sorted_values: list[float], pct: float) -> float:
    """Nearest-rank percentile of an already sorted, non-empty list."""
    rank = max(1, math.ceil(pct / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def _enqueue_phase(
    producer: Producer, prefix: str, jobs: int, timeout: float
) -> float:
    deadline = time.monotonic() + timeout
    start = time.perf_counter()
    for i in range(jobs):
        producer.enqueue_noop(prefix, jobs)
        if i % 256 == 0 and time.monotonic() > deadline:
            raise PhaseError(f"enqueue timed out after {i} of {jobs} jobs")
    return time.perf_counter() - start


def _partial_rate(r, prefix: str, done: int) -> dict | None:
    """Processing rate so far, from the first job start until now."""
    first = r.get(f"{prefix}:first")
    if first is None or done <= 0:
        return None
    seconds = time.time() - float(first)
    return {"done": done, "seconds": seconds, "per_s": done / seconds}


def _drain_phase(
    r,
    workers: WorkerSet,
    prefix: str,
    jobs: int,
    timeout: float,
    launched: float,
) -> tuple[float, float]:
    """Wait for all jobs to complete.

    Returns (first start to last end, launch of the workers to completion),
    both in seconds.
    """
    deadline = time.monotonic() + timeout
    done_key = f"{prefix}:done"
    last_done, last_progress = -1, time.monotonic()
    while True:
        done = int(r.get(done_key) or 0)
        now = time.monotonic()
        if done >= jobs:
            wall = time.time() - launched
            break
        if done != last_done:
            last_done, last_progress = done, now
        if now > deadline:
            raise PhaseError(
                f"drain timed out: {done}/{jobs} jobs done in {timeout:.0f} s",
                _partial_rate(r, prefix, done),
            )
        if now - last_progress > STALL_TIMEOUT:
            raise PhaseError(
                f"drain stalled at {done}/{jobs} for {STALL_TIMEOUT:.0f} s",
                _partial_rate(r, prefix, done),
            )
        workers.check_alive()
        time.sleep(POLL_INTERVAL)
    # The counter reaches ``jobs`` just before the last job stores its end.
    for _ in range(500):
        first, last = r.mget(f"{prefix}:first", f"{prefix}:last")
        if first is not None and last is not None:
            return float(last) - float(first), wall
        time.sleep(POLL_INTERVAL)
    raise PhaseError("jobs completed but start/end timestamps are missing")


def _latency_phase(
    r,
    producer: Producer,
    workers: WorkerSet,
    list_key: str,
    samples: int,
    timeout: float,
) -> list[float]:
    deadline = time.monotonic() + timeout
    latencies: list[float] = []
    for i in range(LATENCY_WARMUP + samples):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise PhaseError(
                f"latency timed out after {len(latencies)} samples"
            )
        enqueued = time.time()
        producer.enqueue_record_start(list_key)
        popped = r.blpop(
            [list_key], timeout=max(1, min(30, math.ceil(remaining)))
        )
        if popped is None:
            workers.check_alive()
            raise PhaseError(f"latency job {i} did not start in time")
        if i >= LATENCY_WARMUP:
            latencies.append((float(popped[1]) - enqueued) * 1000.0)
        time.sleep(LATENCY_GAP)
    return latencies


def _row(spec: Variant, workers: int) -> dict[str, Any]:
    return {
        "name": spec.peer,
        "variant": spec.variant.format(n=workers),
        "key": spec.key,
        "enqueue_per_s": None,
        "process_per_s": None,
        "latency_ms": {"median": None, "p99": None},
        "drain_wall_s": None,
        "workers": workers,
        "error": None,
    }


def run_variant(
    spec: Variant,
    url: str,
    jobs: int,
    latency_samples: int,
    workers: int = 4,
    timeout: float = DEFAULT_TIMEOUT,
    workdir: Path | None = None,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Measure one variant against the Redis at ``url``.

    A failed phase is reported in the row's ``error``, not raised.
    """
    import redis

    say = log or (lambda _msg: None)
    row = _row(spec, workers)
    row["jobs"] = jobs
    row["latency_samples"] = latency_samples
    # Blocking pops below wait at most 30 s: keep the socket timeout above.
    r = redis.Redis.from_url(url, socket_timeout=60)
    r.flushall()
    producer: Producer | None = None
    worker_set: WorkerSet | None = None
    own_dir = (
        tempfile.TemporaryDirectory(prefix="peer-bench-")
        if workdir is None
        else None
    )
    base = Path(own_dir.name) if own_dir is not None else workdir
    try:
        producer = spec.producer(url)
        prefix = f"peer_bench:{spec.key}:throughput"
        say(f"[{spec.key}] enqueue {jobs} jobs")
        enqueue_s = _enqueue_phase(producer, prefix, jobs, timeout)
        row["enqueue_per_s"] = jobs / enqueue_s

        say(f"[{spec.key}] start workers and drain")
        launched = time.time()
        worker_set = _start_workers(spec, url, workers, base)
        process_s, wall_s = _drain_phase(
            r, worker_set, prefix, jobs, timeout, launched
        )
        row["process_per_s"] = jobs / process_s if process_s > 0 else None
        row["drain_wall_s"] = wall_s

        if latency_samples > 0:
            say(f"[{spec.key}] latency, {latency_samples} samples")
            values = sorted(
                _latency_phase(
                    r,
                    producer,
                    worker_set,
                    f"peer_bench:{spec.key}:latency",
                    latency_samples,
                    timeout,
                )
            )
            row["latency_ms"] = {
                "median": statistics.median(values),
                "p99": _percentile(values, 99),
            }
    except PhaseError as exc:
        row["error"] = str(exc)
        if exc.partial is not None:
            row["partial"] = exc.partial
        say(f"[{spec.key}] FAILED: {exc}")
        if worker_set is not None:
            say(worker_set.log_tails())
    finally:
        if worker_set is not None:
            worker_set.stop()
        if producer is not None:
            with contextlib.suppress(Exception):
                producer.close()
        r.close()
        if own_dir is not None:
            own_dir.cleanup()
    return row


def run_peers(
    jobs: int = DEFAULT_JOBS,
    latency_samples: int = DEFAULT_LATENCY_SAMPLES,
    workers_threads: int = 4,
    variants: list[str] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    log: Callable[[str], None] | None = None,
) -> list[dict]:
    """Run the peer benchmark and return one dict per variant.

    Starts (and always stops) a private redis-server.  Each dict has
    ``name``, ``variant``, ``enqueue_per_s``, ``process_per_s`` and
    ``latency_ms`` (``{"median", "p99"}``), plus ``key``, ``jobs``,
    ``latency_samples``, ``workers``, ``drain_wall_s`` and ``error`` (None,
    or why that variant failed, in which case the missing figures are None).
    ``variants`` selects keys from ``VARIANT_KEYS`` (default: all).
    """
    if jobs < 1:
        raise ValueError("jobs must be >= 1")
    if latency_samples < 0 or workers_threads < 1:
        raise ValueError(
            "latency_samples must be >= 0 and workers_threads >= 1"
        )
    selected = list(VARIANT_KEYS) if variants is None else list(variants)
    unknown = sorted(set(selected) - set(VARIANT_KEYS))
    if unknown:
        raise ValueError(
            f"unknown variants {unknown}; choose from {list(VARIANT_KEYS)}"
        )
    specs = [v for v in VARIANTS if v.key in selected]

    rows = []
    with tempfile.TemporaryDirectory(prefix="peer-bench-") as tmp:
        workdir = Path(tmp)
        with redis_server(workdir) as url:
            previous = os.environ.get(peer_jobs.REDIS_URL_ENV)
            os.environ[peer_jobs.REDIS_URL_ENV] = url
            try:
                for spec in specs:
                    rows.append(
                        run_variant(
                            spec,
                            url,
                            jobs,
                            latency_samples,
                            workers_threads,
                            timeout,
                            workdir,
                            log,
                        )
                    )
            finally:
                if previous is None:
                    os.environ.pop(peer_jobs.REDIS_URL_ENV, None)
                else:
                    os.environ[peer_jobs.REDIS_URL_ENV] = previous
    return rows


# --------------------------------------------------------------------------
# Reporting
# --------------------------------------------------------------------------


def machine_info() -> dict[str, Any]:
    """CPU count, Python and package versions of this machine."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    redis_server_version = None
    binary = shutil.which("redis-server")
    if binary:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(
                [binary, "--version"],
                capture_output=True,
                text=True,
                timeout=10,
            ).stdout
            for part in out.split():
                if part.startswith("v="):
                    redis_server_version = part[2:]
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    return {
        "cpu_count": os.cpu_count(),
        "usable_cpus": usable,
        "platform": platform.platform(),
        "processor": platform.machine(),
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "packages": versions,
        "redis_server": redis_server_version,
        # Other load on the machine skews the figures: record it.
        "loadavg_1_5_15": list(os.getloadavg()),
    }


def _fmt(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _process_cell(row: dict) -> str:
    partial = row.get("partial")
    if row["process_per_s"] is None and partial:
        return f"~{partial['per_s']:,.0f} (partial)"
    return _fmt(row["process_per_s"], 0)


def format_table(rows: list[dict]) -> str:
    """Render rows from ``run_peers`` as a plain-text table.

    A failed variant shows "-" for what was not measured, or "~N (partial)"
    for the processing rate reached before its drain timed out, and is
    listed with its reason under the table.
    """
    header = (
        "peer",
        "variant",
        "enqueue jobs/s",
        "process jobs/s",
        "latency median ms",
        "p99 ms",
    )
    body = [
        (
            row["name"],
            row["variant"],
            _fmt(row["enqueue_per_s"], 0),
            _process_cell(row),
            _fmt(row["latency_ms"]["median"], 2),
            _fmt(row["latency_ms"]["p99"], 2),
        )
        for row in rows
    ]
    widths = [
        max(len(str(c)) for c in col)
        for col in zip(header, *body, strict=True)
    ]
    numeric = {2, 3, 4, 5}

    def line(cells) -> str:
        return "  ".join(
            str(c).rjust(w) if i in numeric else str(c).ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    out = [line(header), line("-" * w for w in widths)]
    out += [line(cells) for cells in body]
    out += [
        f"FAILED {row['name']} / {row['variant']}: {row['error']}"
        for row in rows
        if row.get("error")
    ]
    return "\n".join(out)


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Throughput and latency of RQ, Huey and Celery "
        "on a no-op job."
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=DEFAULT_JOBS,
        help="jobs for the throughput phase (default %(default)s)",
    )
    parser.add_argument(
        "--latency-samples",
        type=int,
        default=DEFAULT_LATENCY_SAMPLES,
        help="single jobs timed for latency (default %(default)s)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=4,
        help="worker processes/threads per variant (default %(default)s)",
    )
    parser.add_argument(
        "--variants",
        default=",".join(VARIANT_KEYS),
        help="comma-separated subset of: " + ", ".join(VARIANT_KEYS),
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        help="seconds allowed per phase (default %(default)s)",
    )
    parser.add_argument(
        "--json", metavar="PATH", help="also write the figures as JSON"
    )
    return parser.parse_args(argv)


def _interrupt(signum, frame) -> None:
    """Turn SIGINT/SIGTERM into KeyboardInterrupt so clean-up code runs.

    Further signals are ignored so that a second Ctrl-C cannot cut the
    (time-bounded) stopping of workers and redis-server short.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt(signal.Signals(signum).name)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    # Also when SIGINT was inherited as ignored (e.g. started in background).
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    machine = machine_info()
    started = dt.datetime.now(dt.timezone.utc)
    print(
        f"peers benchmark: {args.jobs} jobs, "
        f"{args.latency_samples} latency samples, "
        f"{args.workers} workers per variant, {machine['cpu_count']} CPUs",
        file=sys.stderr,
    )
    try:
        rows = run_peers(
            args.jobs,
            args.latency_samples,
            args.workers,
            variants,
            args.timeout,
            log=lambda msg: print(msg, file=sys.stderr, flush=True),
        )
    except KeyboardInterrupt as exc:
        print(f"interrupted {exc}".rstrip(), file=sys.stderr)
        return 130
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    machine["loadavg_1_5_15_at_end"] = list(os.getloadavg())
    print(format_table(rows))
    if args.json:
        report = {
            "peers": rows,
            "machine": machine,
            "date": started.isoformat(timespec="seconds"),
        }
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return 1 if any(row["error"] for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
