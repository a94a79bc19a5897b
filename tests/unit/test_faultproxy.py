"""The fault proxy of the network scenarios (``support.faultproxy``),
in front of an echo server: what goes through, what is held, what is
reset, and when."""
import contextlib
import select
import socket
import socketserver
import threading
import time

import pytest

from support.faultproxy import FaultProxy, _endpoint
from support.waiting import until

#: Seconds a read waits before the test takes silence for an answer.
QUIET = 0.3


class Echo(socketserver.BaseRequestHandler):

    def handle(self):
        while True:
            try:
                data = self.request.recv(65536)
            except OSError:
                return
            if not data:
                return
            self.request.sendall(data)


class EchoServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


@pytest.fixture
def echo():
    server = EchoServer(('127.0.0.1', 0), Echo)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,),
                              daemon=True)
    thread.start()
    try:
        yield server.server_address
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def proxy(echo):
    with FaultProxy(echo, seed=1) as proxy:
        yield proxy


def connect(proxy):
    sock = socket.create_connection(('127.0.0.1', proxy.port), timeout=5)
    return sock


def receive(sock, size, timeout=5.0):
    """``size`` bytes, or fewer when ``timeout`` passes without more."""
    sock.settimeout(timeout)
    data = b''
    while len(data) < size:
        try:
            chunk = sock.recv(size - len(data))
        except TimeoutError:
            break
        if not chunk:
            break
        data += chunk
    return data


def answering(socks, timeout):
    """Those of ``socks`` with something to read within ``timeout``."""
    deadline = time.monotonic() + timeout
    ready = set()
    while time.monotonic() < deadline:
        readable, _, _ = select.select(
            [sock for sock in socks if sock not in ready], [], [],
            max(deadline - time.monotonic(), 0))
        ready.update(readable)
    return [sock for sock in socks if sock in ready]


def roundTrip(sock, data=b'ping', timeout=5.0):
    sock.sendall(data)
    return receive(sock, len(data), timeout)


def test_it_forwards_both_ways(proxy):
    with connect(proxy) as sock:
        assert roundTrip(sock) == b'ping'
        big = bytes(range(256)) * 1000
        assert roundTrip(sock, big) == big
    assert proxy.stats['accepted'] == 1
    # Counted once sent: maybe just after the client had them.
    until(lambda: proxy.stats['up_bytes'] == proxy.stats['down_bytes'] ==
          4 + len(big), what='the bytes counted')


def test_its_uri_is_the_servers_with_its_address():
    proxy = FaultProxy('mongodb://u:p@localhost:27018/db?w=1')
    assert proxy.upstream == ('localhost', 27018)
    proxy.port = 4242
    assert proxy.uri == 'mongodb://u:p@127.0.0.1:4242/db?w=1'
    assert _endpoint('mongodb://[::1]/') == ('::1', 27017)
    with pytest.raises(ValueError, match='one server'):
        FaultProxy('mongodb://a:1,b:2/')


def test_latency_delays_every_answer_in_order(proxy):
    proxy.latency(0.2, jitter=0.05)
    with connect(proxy) as sock:
        for number in range(3):
            started = time.monotonic()
            assert roundTrip(sock, b'%d' % number) == b'%d' % number
            assert time.monotonic() - started >= 0.15
        # Chunks sent at once come back in order, whatever their jitter.
        for number in range(20):
            sock.sendall(b'%02d' % number)
            time.sleep(0.005)   # separate chunks, not a race
        assert receive(sock, 40) == b''.join(b'%02d' % n for n in range(20))
    with pytest.raises(ValueError):
        proxy.latency(0.1, jitter=0.2)


def test_a_partition_holds_everything_until_it_heals(proxy):
    with connect(proxy) as before:
        assert roundTrip(before) == b'ping'
        proxy.partition()
        assert roundTrip(before, b'held', QUIET) == b''
        # A new connection is accepted, and gets no answer either.
        with connect(proxy) as during:
            assert roundTrip(during, b'also', QUIET) == b''
            proxy.heal()
            assert receive(before, 4) == b'held'
            assert receive(during, 4) == b'also'
            assert roundTrip(during) == b'ping'


def test_a_refusing_partition_resets_and_refuses(proxy):
    with connect(proxy) as sock:
        assert roundTrip(sock) == b'ping'
        proxy.partition(refuse=True)
        with pytest.raises(ConnectionResetError):
            roundTrip(sock)
    with pytest.raises(ConnectionRefusedError):
        connect(proxy)
    proxy.heal()
    with connect(proxy) as sock:    # the same port again
        assert roundTrip(sock) == b'ping'


def test_reset_closes_every_connection_with_an_rst(proxy):
    socks = [connect(proxy) for _ in range(3)]
    try:
        for sock in socks:
            assert roundTrip(sock) == b'ping'
        assert proxy.reset() == 3
        for sock in socks:
            with pytest.raises(ConnectionResetError):
                roundTrip(sock)
                roundTrip(sock)   # the RST may come after a first send
        assert proxy.connections == 0
        with connect(proxy) as sock:
            assert roundTrip(sock) == b'ping'
    finally:
        for sock in socks:
            sock.close()


def resetAtFirstUse(proxy):
    """Whether a new connection is reset (while connecting or at its
    first round trips)."""
    try:
        with connect(proxy) as sock:
            roundTrip(sock)
            roundTrip(sock)   # the RST may come after a first send
    except ConnectionResetError:
        return True
    return False


def test_periodic_resets_reset_new_connections_during_each_period(proxy):
    with connect(proxy) as sock:
        assert roundTrip(sock) == b'ping'
        proxy.resets(every=20, lasting=10)
        with pytest.raises(ConnectionResetError):
            roundTrip(sock)
            roundTrip(sock)
    assert resetAtFirstUse(proxy)   # accepted during the period
    proxy.resets(every=0.4, lasting=0.2)
    # Between two periods a connection works, until the next period.
    resets = proxy.stats['reset']
    deadline = time.monotonic() + 10
    while proxy.stats['reset'] < resets + 2:
        assert time.monotonic() < deadline, 'no second period'
        with contextlib.suppress(ConnectionResetError), \
                connect(proxy) as sock:
            while roundTrip(sock) == b'ping':
                assert time.monotonic() < deadline, 'no reset'
    proxy.resets(None, None)
    assert not resetAtFirstUse(proxy)
    with pytest.raises(ValueError):
        proxy.resets(every=1, lasting=1)


def test_silent_connections_answer_again_after_their_silence(proxy):
    socks = [connect(proxy) for _ in range(20)]
    try:
        for sock in socks:
            assert roundTrip(sock) == b'ping'
        chosen = proxy.silence(0.5, 1.5)
        assert 0 < chosen < 20
        for sock in socks:
            sock.sendall(b'pong')
        answered = answering(socks, QUIET)
        silent = [sock for sock in socks if sock not in answered]
        assert len(silent) == chosen
        # Those that answered stay fast; the silent ones answer later.
        for sock in answered:
            assert receive(sock, 4) == b'pong'
            assert roundTrip(sock) == b'ping'
        for sock in silent:
            assert receive(sock, 4) == b'pong'
    finally:
        for sock in socks:
            sock.close()
    proxy.silence(1.0, 0.5)
    with connect(proxy) as sock:    # opened during the silence
        assert roundTrip(sock, b'late', QUIET / 2) == b''
        assert receive(sock, 4) == b'late'


def test_a_slow_link_carries_its_rate(proxy):
    proxy.rate(4000)
    with connect(proxy) as sock:
        started = time.monotonic()
        data = b'x' * 2000
        assert roundTrip(sock, data) == data
        # 2000 bytes each way at 4000 bytes a second (the echo answers
        # the first bytes while the last are on their way up).
        assert time.monotonic() - started >= 0.45
    proxy.rate(None)
    with connect(proxy) as sock:
        assert roundTrip(sock, data) == data


def test_one_proxy_is_cut_off_alone(echo):
    with FaultProxy(echo, 'cut') as cut, FaultProxy(echo, 'fine') as fine:
        with connect(cut) as a, connect(fine) as b:
            cut.partition()
            assert roundTrip(a, b'held', QUIET) == b''
            assert roundTrip(b) == b'ping'
            cut.clear()
            assert receive(a, 4) == b'held'
