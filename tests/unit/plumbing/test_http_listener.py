"""The bounded HTTP listener behind ``--metrics-listen`` (http_listener.py), with real sockets.

The listener runs in the test's own thread, one ``serve_once`` at a time, on a clock the test
moves: routing and answers, the head size limit, the connection limit (the oldest waiting
connection makes room), the request and response time-outs, and a pause instead of a spin
when ``accept`` runs out of descriptors. The end-to-end test with the real listener child is
tests/integration/test_metrics_listener.py.
"""

from __future__ import annotations

import errno
import os
import socket

import pytest

from mirror_supervisor.plumbing import http_listener
from mirror_supervisor.plumbing.http_listener import FileRoute, Listener, Response, respond


def routes(body: bytes = b"up 1\n") -> dict:
    return {"/metrics": lambda query: Response(200, body, "text/plain; version=0.0.4")}


def split(answer: tuple[bytes, bytes]) -> tuple[str, dict[str, str], bytes]:
    header, body = answer
    lines = header.decode().split("\r\n")
    fields = dict(line.split(": ", 1) for line in lines[1:] if line)
    return lines[0], fields, body


def test_get_head_unknown_paths_methods_and_garbage():
    status, fields, body = split(respond(b"GET /metrics?x=1 HTTP/1.1\r\nHost: h\r\n\r\n", routes()))
    assert status == "HTTP/1.1 200 OK" and body == b"up 1\n"
    assert fields["Content-Length"] == "5" and fields["Connection"] == "close"
    assert fields["Content-Type"] == "text/plain; version=0.0.4"
    status, fields, body = split(respond(b"HEAD /metrics HTTP/1.0\r\n\r\n", routes()))
    assert status == "HTTP/1.1 200 OK" and fields["Content-Length"] == "5" and body == b""
    assert split(respond(b"GET /status HTTP/1.1\r\n\r\n", routes()))[0] == "HTTP/1.1 404 Not Found"
    status, fields, _ = split(respond(b"POST /metrics HTTP/1.1\r\n\r\n", routes()))
    assert status == "HTTP/1.1 405 Method Not Allowed" and fields["Allow"] == "GET, HEAD"
    broken = {"/metrics": lambda query: 1 / 0}
    assert split(respond(b"GET /metrics HTTP/1.1\r\n\r\n", broken))[0] == "HTTP/1.1 500 Internal Server Error"
    for garbage in (b"\r\n\r\n", b"GET\r\n\r\n", b"GET metrics HTTP/1.1\r\n\r\n", b"\x16\x03\x01 TLS\r\n\r\n"):
        assert split(respond(garbage, routes()))[0] == "HTTP/1.1 400 Bad Request"


def test_a_route_gets_the_query_and_may_add_header_fields():
    seen = []

    def page(query: str) -> Response:
        seen.append(query)
        return Response(200, b"<p>x</p>", "text/html", headers=(("X-Content-Type-Options", "nosniff"),))

    status, fields, body = split(respond(b"GET /?window=1h&camera=a%20b HTTP/1.1\r\n\r\n", {"/": page}))
    assert status == "HTTP/1.1 200 OK" and seen == ["window=1h&camera=a%20b"]
    assert fields["X-Content-Type-Options"] == "nosniff" and fields["Content-Type"] == "text/html"
    split(respond(b"GET / HTTP/1.1\r\n\r\n", {"/": page}))
    assert seen[-1] == ""


def test_a_file_route_reads_each_version_once_and_says_503_without_one(tmp_path):
    path = tmp_path / "metrics.prom"
    route = FileRoute(str(path), "text/plain", missing="no metrics written yet")
    assert route().status == 503 and route().body == b"no metrics written yet\n"
    path.write_bytes(b"a 1\n")
    first = route()
    assert first.status == 200 and first.body == b"a 1\n" and route().body is first.body, "one copy, shared"
    (tmp_path / "new").write_bytes(b"a 2\n")
    os.replace(tmp_path / "new", path)  # as the master writes it: atomically
    assert route().body == b"a 2\n"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def served():
    """A listener on 127.0.0.1 driven by the test; clients made with ``connect()``."""
    server = http_listener.listen("127.0.0.1", 0)
    clock = Clock()
    listener = Listener(server, routes(b"x" * 100_000), clock=clock)
    clients: list[socket.socket] = []

    def connect() -> socket.socket:
        sock = socket.create_connection(server.getsockname(), timeout=5)
        clients.append(sock)
        return sock

    yield listener, clock, connect
    for sock in clients:
        sock.close()
    for conn in list(listener.connections.values()):
        conn.sock.close()
    server.close()


def pump(listener: Listener, until, passes: int = 200) -> None:
    for _ in range(passes):
        if until():
            return
        listener.serve_once()
    raise AssertionError("the listener did not get there")


def accepted(listener: Listener, count: int):
    return lambda: len(listener.connections) >= count


def read_all(listener: Listener, sock: socket.socket) -> bytes:
    """Everything until the listener closes the connection, serving meanwhile."""
    sock.setblocking(False)
    chunks: list[bytes] = []
    done = []

    def drained() -> bool:
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
            done.append(True)
        except BlockingIOError:
            pass
        except ConnectionResetError:
            done.append(True)
        return bool(done)

    pump(listener, drained, passes=2000)
    return b"".join(chunks)


def closed(listener: Listener, sock: socket.socket) -> bool:
    return read_all(listener, sock) == b""


def test_a_request_is_answered_and_the_connection_closed(served):
    listener, _, connect = served
    sock = connect()
    sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
    pump(listener, accepted(listener, 1))
    listener.serve_once()  # half a head: nothing yet
    sock.sendall(b"Accept: */*\r\n\r\n")
    reply = read_all(listener, sock)
    assert reply.startswith(b"HTTP/1.1 200 OK\r\n") and reply.endswith(b"x" * 100_000)
    assert listener.connections == {}


def test_a_head_over_the_limit_gets_431_and_is_closed(served):
    listener, _, connect = served
    sock = connect()
    sock.sendall(b"GET /metrics HTTP/1.1\r\n" + b"X-Pad: " + b"a" * http_listener.MAX_HEAD)
    reply = read_all(listener, sock)
    assert reply.startswith(b"HTTP/1.1 431 ") and listener.connections == {}


def test_over_the_limit_the_oldest_waiting_connection_makes_room(served):
    listener, clock, connect = served
    listener.limit = 3
    idle = []
    for _ in range(3):
        idle.append(connect())
        pump(listener, accepted(listener, len(idle)))
        clock.now += 0.1
    scrape = connect()
    scrape.sendall(b"GET /metrics HTTP/1.1\r\n\r\n")
    assert read_all(listener, scrape).startswith(b"HTTP/1.1 200 OK")
    assert closed(listener, idle[0]), "the oldest idle connection was closed to make room"
    assert len(listener.connections) == 2  # the two newer idle ones
    more = [connect() for _ in range(5)]
    newest = {sock.getsockname() for sock in more[2:]}
    pump(listener, lambda: {c.sock.getpeername() for c in listener.connections.values()} == newest)
    assert all(closed(listener, sock) for sock in (idle[1], idle[2], *more[:2]))


def test_a_head_that_does_not_come_in_time_is_closed(served):
    listener, clock, connect = served
    sock = connect()
    sock.sendall(b"GET /metrics HTTP/1.1\r\n")  # and never the rest
    pump(listener, accepted(listener, 1))
    clock.now += http_listener.REQUEST_TIMEOUT - 0.5
    listener.serve_once()
    assert len(listener.connections) == 1, "still in time"
    clock.now += 1
    listener.serve_once()
    assert listener.connections == {} and closed(listener, sock)


def test_a_response_that_is_not_taken_in_time_is_dropped(served):
    listener, clock, connect = served
    listener.routes = routes(b"y" * 50_000_000)  # far more than the socket buffers hold
    sock = connect()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.sendall(b"GET /metrics HTTP/1.1\r\n\r\n")  # and never reads
    pump(listener, lambda: any(c.answering for c in listener.connections.values()))
    clock.now += http_listener.RESPONSE_TIMEOUT - 0.2
    listener.serve_once()
    assert len(listener.connections) == 1, "the client has not taken it yet, and there is time left"
    clock.now += 1
    listener.serve_once()
    assert listener.connections == {}


class Refusing:
    """A listening socket whose ``accept`` fails with EMFILE while ``refuse`` is set."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock, self.refuse, self.accepts = sock, True, 0

    def fileno(self) -> int:
        return self.sock.fileno()

    def accept(self):
        self.accepts += 1
        if self.refuse:
            raise OSError(errno.EMFILE, os.strerror(errno.EMFILE))
        return self.sock.accept()


def test_out_of_descriptors_accepting_pauses_instead_of_spinning(served, monkeypatch):
    listener, clock, connect = served
    monkeypatch.setattr(http_listener, "ACCEPT_PAUSE", 0.05)
    refusing = Refusing(listener.server)
    listener.selector.unregister(listener.server)
    listener.server = refusing  # type: ignore[assignment]
    listener.selector.register(refusing, 1, None)
    sock = connect()
    pump(listener, lambda: refusing.accepts == 1)
    for _ in range(5):  # the listening socket stays readable; the listener does not look at it
        listener.serve_once()
    assert refusing.accepts == 1 and listener.accept_paused_until is not None
    refusing.refuse = False
    clock.now += 1
    sock.sendall(b"GET /metrics HTTP/1.1\r\n\r\n")
    assert read_all(listener, sock).startswith(b"HTTP/1.1 200 OK")
    assert listener.accept_paused_until is None
