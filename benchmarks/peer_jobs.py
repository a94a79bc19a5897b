"""Job functions shared by the peer-queue benchmark (see ``peers.py``).

This module is imported by the benchmark driver *and* by every worker
process (RQ workers and their forked work horses, the Huey consumer, Celery
workers), so it must be importable as the top-level module ``peer_jobs``:
the driver puts this directory on ``PYTHONPATH`` for the workers it starts.

Jobs talk to the benchmark's private Redis, whose URL is read from the
``PEER_BENCH_REDIS_URL`` environment variable.

Two kinds of job are defined, as plain functions (used by RQ) and as
Huey / Celery tasks wrapping them:

``noop(prefix, target)``
    The throughput job.  It does no work of its own; it only records that it
    ran: the first job to start stores its start time in ``<prefix>:first``,
    every job increments the completion counter ``<prefix>:done``, and the
    job that brings the counter to ``target`` stores its end time in
    ``<prefix>:last``.

``record_start(list_key)``
    The latency job: it pushes ``time.time()`` taken at its start onto the
    Redis list ``list_key``, where the driver waits for it.

The Huey and Celery applications are built lazily (module ``__getattr__``)
so that importing this module from an RQ work horse, which happens once per
job with RQ's forking worker, does not pay for importing Huey or Celery.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import redis

REDIS_URL_ENV = "PEER_BENCH_REDIS_URL"
HUEY_NAME = "peer_bench"
CELERY_NOOP = "peer_bench.noop"
CELERY_RECORD_START = "peer_bench.record_start"

_client: redis.Redis | None = None
_client_pid: int | None = None
_client_lock = threading.Lock()


def redis_url() -> str:
    """Return the benchmark Redis URL from the environment."""
    try:
        return os.environ[REDIS_URL_ENV]
    except KeyError:
        raise RuntimeError(f"{REDIS_URL_ENV} is not set") from None


def client() -> redis.Redis:
    """Return the Redis client of the current process (thread-safe).

    One client per process, created under a lock: a client dropped by a
    racing thread would close the connection pool it shares with the
    commands already issued through it.
    """
    global _client, _client_pid
    pid = os.getpid()
    current = _client
    if current is not None and _client_pid == pid:
        return current
    with _client_lock:
        if _client is None or _client_pid != pid:
            _client = redis.Redis.from_url(redis_url())
            _client_pid = pid
        return _client


def noop(prefix: str, target: int) -> None:
    """No-op throughput job: count its completion (see module docstring)."""
    started = time.time()
    pipe = client().pipeline(transaction=False)
    pipe.set(f"{prefix}:first", repr(started), nx=True)
    pipe.incr(f"{prefix}:done")
    _, done = pipe.execute()
    if done == target:
        client().set(f"{prefix}:last", repr(time.time()))


def record_start(list_key: str) -> None:
    """Latency job: push the time at which it started onto ``list_key``."""
    client().rpush(list_key, repr(time.time()))


def make_huey(url: str | None = None, **options: Any):
    """Build a ``RedisHuey`` app with the ``noop``/``record_start`` tasks.

    The tasks are reachable as ``app.peer_noop`` and ``app.peer_record_start``.
    Library defaults are kept (blocking dequeue, ``None`` results not stored).
    """
    from huey import RedisHuey

    app = RedisHuey(HUEY_NAME, url=url or redis_url(), **options)
    app.peer_noop = app.task()(noop)
    app.peer_record_start = app.task()(record_start)
    return app


def make_celery(url: str | None = None):
    """Build a Celery app using Redis as broker, with no result backend.

    Completion is detected through the Redis counter written by the jobs, so
    results are not needed.  Tasks are registered under fixed names
    (``peer_bench.noop`` and ``peer_bench.record_start``).
    """
    from celery import Celery

    broker = url or redis_url()
    app = Celery("peer_bench", broker=broker, set_as_current=False)
    app.conf.update(
        task_ignore_result=True,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
    )
    app.task(name=CELERY_NOOP)(noop)
    app.task(name=CELERY_RECORD_START)(record_start)
    return app


_lazy: dict[str, Any] = {}
_factories = {"huey": make_huey, "celery_app": make_celery}


def __getattr__(name: str) -> Any:
    """Build ``huey`` and ``celery_app`` on first access (for the workers)."""
    if name in _factories:
        if name not in _lazy:
            _lazy[name] = _factories[name]()
        return _lazy[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
