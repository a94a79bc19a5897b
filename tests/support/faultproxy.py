"""A TCP proxy that makes a bad network, for tests and the fault scenarios.

There is no netem in a test run, so the network between a worker and its
server is a proxy of ours on the loopback interface: each worker gets
one (``FaultProxy``), its clients connect to ``proxy.uri`` instead of
the server's, and the scenario makes that one link bad while the others
stay good::

    from support.faultproxy import FaultProxy

    with FaultProxy(server_uri) as proxy:
        client = store.connect(proxy.uri)
        proxy.latency(0.2, jitter=0.05)   # 200 +- 50 ms per answer
        proxy.partition()                 # nothing goes through...
        proxy.heal()                      # ...until now

The faults, each on until changed (``clear()`` turns every one off):

``latency(seconds, jitter)``
    Every chunk the server sends is delivered that much later (jitter
    drawn uniformly on either side), so a round trip takes that much
    longer. Chunks keep their order.
``partition(refuse=False)`` / ``heal()``
    Nothing goes through either way, on open connections and on new
    ones, which are accepted (the kernel does that) but get no answer;
    what was sent meanwhile is held and delivered on ``heal()``, as TCP
    retransmits it after a real partition. With ``refuse=True`` the
    proxy stops listening (a new connection is refused) and resets the
    open ones.
``reset()`` / ``resets(every, lasting)``
    Every open connection is reset (an RST both ways) now; or for
    ``lasting`` seconds out of every ``every``, starting now, every
    connection is reset, new ones as soon as they are accepted.
``silence(fraction, seconds)``
    That fraction of the connections, chosen at random among the open
    ones and the ones opened during the ``seconds``, stop answering for
    those seconds: nothing goes through them (it is held), the others
    work. Then they answer again.
``rate(bytesPerSecond)``
    Each connection carries at most that many bytes a second each way
    (None: no limit).

Only the loopback interface: the proxy listens on 127.0.0.1. It runs
an asyncio loop in a thread of its own; every method may be called from
any thread and returns once the fault is in place. The random choices
come from ``seed``, so a run can be repeated.
"""
import asyncio
import contextlib
import random
import socket
import struct
import threading
import urllib.parse

HOST = '127.0.0.1'
#: Bytes read at a time.
CHUNK = 65536
#: Chunks a direction holds (delayed or partitioned) before it stops
#: reading, so that a sender meets a full link as it would on a network.
HELD_CHUNKS = 64
#: The pieces a rate-limited chunk is sent in, per second.
RATE_STEPS = 20
#: Seconds a call from another thread waits for the loop.
CALL_TIMEOUT = 10.0


def _endpoint(uri):
    """``(host, port)`` of a ``mongodb://`` URI naming one server."""
    parts = urllib.parse.urlsplit(uri)
    hosts = parts.netloc.rsplit('@', 1)[-1]
    if ',' in hosts or not hosts:
        raise ValueError('a proxy stands in front of one server, not %r'
                         % uri)
    return parts.hostname, parts.port or 27017


def _reset(writer):
    """Close ``writer``'s connection with an RST, not a FIN."""
    sock = writer.get_extra_info('socket')
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                            struct.pack('ii', 1, 0))
    writer.transport.abort()


class _Connection:
    """A client's connection and the proxy's own to the server."""

    def __init__(self, number, client, upstream):
        self.number = number
        self.client = client        # the client's writer
        self.upstream = upstream    # ours to the server
        #: Loop time until which it does not answer.
        self.silentUntil = 0.0
        self.tasks = []
        self.closed = False

    def close(self, reset=False):
        if self.closed:
            return
        self.closed = True
        for writer in (self.client, self.upstream):
            if reset:
                _reset(writer)
            else:
                writer.transport.close()
        current = asyncio.current_task()
        for task in self.tasks:
            if task is not current:
                task.cancel()


class FaultProxy:
    """A proxy on a loopback port in front of the server of ``upstream``
    (a ``mongodb://`` URI of one server, or ``(host, port)``)."""

    def __init__(self, upstream, name='proxy', seed=None):
        if isinstance(upstream, str):
            self.upstreamUri = upstream
            upstream = _endpoint(upstream)
        else:
            self.upstreamUri = 'mongodb://%s:%d/' % tuple(upstream)
        self.upstream = tuple(upstream)
        self.name = name
        self.port = None
        self.random = random.Random(seed)
        self.stats = {'accepted': 0, 'reset': 0, 'silenced': 0,
                      'up_bytes': 0, 'down_bytes': 0}
        self._latency = (0.0, 0.0)
        self._rate = None
        self._partitioned = False
        self._resetting = False
        self._resetTask = None
        self._silence = (0.0, 0.0)      # fraction, until (loop time)
        self._connections = {}
        self._counter = 0
        self._server = None
        self._loop = None
        self._thread = None
        self._changed = None

    # life

    @property
    def uri(self):
        """The URI of the upstream server with the proxy's address."""
        parts = urllib.parse.urlsplit(self.upstreamUri)
        netloc = '%s:%d' % (HOST, self.port)
        if '@' in parts.netloc:
            netloc = parts.netloc.rsplit('@', 1)[0] + '@' + netloc
        return urllib.parse.urlunsplit(parts._replace(netloc=netloc))

    def start(self):
        """Listen (on a free port the first time); the proxy."""
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
            self._thread = threading.Thread(
                target=self._loop.run_forever, daemon=True,
                name='faultproxy-%s' % self.name)
            self._thread.start()
            self._call(self._setUp())
        return self

    def close(self):
        """Stop listening, close every connection, end the thread."""
        if self._loop is None:
            return
        with contextlib.suppress(Exception):
            self._call(self._tearDown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(CALL_TIMEOUT)
        if not self._thread.is_alive():
            self._loop.close()
        self._loop = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return '<FaultProxy %s %s -> %s:%d>' % (
            self.name, self.port, *self.upstream)

    @property
    def connections(self):
        """How many connections are open now."""
        return len(self._connections)

    # the faults

    def latency(self, seconds, jitter=0.0):
        if seconds < 0 or jitter < 0 or jitter > seconds:
            raise ValueError('latency >= jitter >= 0, not %r +- %r'
                             % (seconds, jitter))
        self._latency = (float(seconds), float(jitter))

    def rate(self, bytesPerSecond):
        if bytesPerSecond is not None and bytesPerSecond <= 0:
            raise ValueError('a rate is a number of bytes > 0, or None')
        self._rate = bytesPerSecond
        self._notify()

    def partition(self, refuse=False):
        self._call(self._partition(refuse))

    def heal(self):
        self._call(self._heal())

    def reset(self):
        """Reset every open connection; how many."""
        return self._call(self._resetAll())

    def resets(self, every, lasting):
        """Reset connections for ``lasting`` seconds out of every
        ``every``, from now until ``resets(None, None)`` or ``clear()``.
        """
        if every is not None and not 0 < lasting < every:
            raise ValueError('0 < lasting < every, not %r, %r'
                             % (lasting, every))
        self._call(self._resets(every, lasting))

    def silence(self, fraction, seconds):
        """Make ``fraction`` of the connections silent for ``seconds``;
        how many open ones were chosen."""
        if not 0 <= fraction <= 1 or seconds < 0:
            raise ValueError('a fraction from 0 to 1 and seconds >= 0')
        return self._call(self._silenceNow(fraction, seconds))

    def clear(self):
        """Every fault off (what a partition held is delivered)."""
        self._latency = (0.0, 0.0)
        self._rate = None
        self._call(self._clear())

    # the loop's side

    def _call(self, coroutine):
        return asyncio.run_coroutine_threadsafe(
            coroutine, self._loop).result(CALL_TIMEOUT)

    def _notify(self):
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._changedNow)

    def _changedNow(self):
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def _setUp(self):
        self._changed = asyncio.Event()
        await self._listen()

    async def _listen(self):
        self._server = await asyncio.start_server(
            self._accept, HOST, self.port or 0, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _tearDown(self):
        await self._clear()
        if self._server is not None:
            self._server.close()
            self._server = None
        for connection in list(self._connections.values()):
            connection.close()
        self._connections.clear()

    async def _partition(self, refuse):
        self._partitioned = True
        if refuse and self._server is not None:
            self._server.close()
            self._server = None
            await self._resetAll()
        self._changedNow()

    async def _heal(self):
        self._partitioned = False
        if self._server is None:
            await self._listen()
        self._changedNow()

    async def _resetAll(self):
        connections = list(self._connections.values())
        for connection in connections:
            connection.close(reset=True)
            self._forget(connection)
        self.stats['reset'] += len(connections)
        return len(connections)

    async def _resets(self, every, lasting):
        if self._resetTask is not None:
            self._resetTask.cancel()
            self._resetTask = None
        self._resetting = False
        if every is not None:
            # The first period begins before the call returns.
            self._resetting = True
            await self._resetAll()
            self._resetTask = asyncio.ensure_future(
                self._resetPeriods(every, lasting))

    async def _resetPeriods(self, every, lasting):
        try:
            while True:
                await asyncio.sleep(lasting)
                self._resetting = False
                await asyncio.sleep(every - lasting)
                self._resetting = True
                await self._resetAll()
        finally:
            self._resetting = False

    async def _silenceNow(self, fraction, seconds):
        until = self._loop.time() + seconds
        self._silence = (fraction, until)
        chosen = 0
        for connection in self._connections.values():
            if self.random.random() < fraction:
                connection.silentUntil = until
                chosen += 1
        self.stats['silenced'] += chosen
        self._changedNow()
        return chosen

    async def _clear(self):
        await self._resets(None, None)
        self._silence = (0.0, 0.0)
        for connection in self._connections.values():
            connection.silentUntil = 0.0
        await self._heal()

    def _forget(self, connection):
        self._connections.pop(connection.number, None)

    async def _accept(self, reader, writer):
        self.stats['accepted'] += 1
        if self._resetting:
            _reset(writer)
            self.stats['reset'] += 1
            return
        try:
            upstreamReader, upstreamWriter = await asyncio.open_connection(
                *self.upstream)
        except OSError:
            _reset(writer)
            return
        self._counter += 1
        connection = _Connection(self._counter, writer, upstreamWriter)
        fraction, until = self._silence
        if self._loop.time() < until and self.random.random() < fraction:
            connection.silentUntil = until
            self.stats['silenced'] += 1
        self._connections[connection.number] = connection
        up, down = asyncio.Queue(HELD_CHUNKS), asyncio.Queue(HELD_CHUNKS)
        connection.tasks = [asyncio.ensure_future(task) for task in (
            self._read(connection, reader, up),
            self._write(connection, up, upstreamWriter, 'up_bytes', False),
            self._read(connection, upstreamReader, down),
            self._write(connection, down, writer, 'down_bytes', True))]
        try:
            await asyncio.gather(*connection.tasks)
        except (asyncio.CancelledError, OSError):
            pass
        finally:
            connection.close()
            self._forget(connection)

    async def _read(self, connection, reader, held):
        while True:
            data = await reader.read(CHUNK)
            await held.put((self._loop.time(), data))
            if not data:
                return

    async def _write(self, connection, held, writer, counter, answers):
        last = 0.0
        while True:
            arrived, data = await held.get()
            due = arrived
            if answers:
                latency, jitter = self._latency
                due += max(latency + self.random.uniform(-jitter, jitter),
                           0.0)
            last = due = max(due, last)
            wait = due - self._loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if not data:
                # One side closed: deliver that by closing both, once
                # what came before went through.
                await self._passable(connection)
                connection.close()
                return
            await self._send(connection, writer, data)
            self.stats[counter] += len(data)

    async def _send(self, connection, writer, data):
        rate = self._rate
        step = max(int(rate / RATE_STEPS), 1) if rate else len(data)
        for start in range(0, len(data), step):
            await self._passable(connection)
            piece = data[start:start + step]
            writer.write(piece)
            await writer.drain()
            if rate:
                await asyncio.sleep(len(piece) / rate)

    async def _passable(self, connection):
        """Return once ``connection`` may carry data."""
        while True:
            changed = self._changed
            now = self._loop.time()
            if self._partitioned:
                timeout = None
            elif connection.silentUntil > now:
                timeout = connection.silentUntil - now
            else:
                return
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(changed.wait(), timeout)
