"""A small HTTP listener that no client can wedge: the ``/metrics`` child's (README, "Metrics").

One thread and one selector (epoll) over non-blocking sockets, one request per connection
(``Connection: close``), ``GET`` and ``HEAD`` only. Everything a client can make it hold is bounded:

- **time to send the request head** (request line and headers): :data:`REQUEST_TIMEOUT`;
- **size of that head**: :data:`MAX_HEAD` bytes (431 beyond it); a body is never read;
- **time to take the response**: :data:`RESPONSE_TIMEOUT`;
- **connections at once**: :data:`MAX_CONNECTIONS`. A connection over the limit closes the
  oldest one still sending its request (an answer in progress only when none is), so idle or
  slowloris clients make room for a scrape instead of locking it out;
- **descriptors**: the limit stays well below ``RLIMIT_NOFILE``; should ``accept`` still fail
  for lack of descriptors or memory, accepting pauses for :data:`ACCEPT_PAUSE` instead of
  spinning on a listening socket that stays readable.

A response body is one shared ``bytes`` per version of what is served (:class:`FileRoute`),
never a copy per connection. Routes map a path (without its query) to a function of the query
string (still percent-encoded; a route that serves one thing ignores it) returning a
:class:`Response`; an unknown path is 404. A response may carry extra header fields (the status
page's security headers); they are constants of ours, never a client's text.
"""

from __future__ import annotations

import contextlib
import errno
import os
import resource
import selectors
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

REQUEST_TIMEOUT = 5.0
RESPONSE_TIMEOUT = 10.0  # Prometheus' default scrape_timeout
MAX_HEAD = 8192
MAX_CONNECTIONS = 64
ACCEPT_PAUSE = 0.5
ACCEPT_BATCH = 64  # connections taken per wake-up, so a flood cannot starve the others
SPARE_FDS = 16  # descriptors kept for the listener itself (socket, epoll, the served file, logging)
REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
           431: "Request Header Fields Too Large", 500: "Internal Server Error", 503: "Service Unavailable"}
TEXT = "text/plain; charset=utf-8"


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    content_type: str = TEXT
    headers: tuple[tuple[str, str], ...] = ()  # extra fields: (name, value), fixed by the route


Route = Callable[[str], Response]  # called with the request's query string ("" without one)


def _error(status: int, text: str) -> Response:
    return Response(status, text.encode() + b"\n")


class FileVersion:
    """A file the master replaces atomically, read once per version of it (device, inode, size,
    mtime), however many requests ask: the bytes of one version are shared by every response."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = path
        self._key: tuple[int, int, int, int] | None = None
        self._content: bytes | None = None

    def read(self) -> tuple[bytes, bool]:
        """The current content, and whether it is another version than the last read; OSError
        when the file cannot be read."""
        with open(self.path, "rb") as handle:
            st = os.fstat(handle.fileno())
            key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
            if key == self._key and self._content is not None:
                return self._content, False
            self._content, self._key = handle.read(), key
        return self._content, True


class FileRoute:
    """A file's current content (:class:`FileVersion`); 503 while it cannot be read, e.g. before
    the master wrote it."""

    def __init__(self, path: str, content_type: str, missing: str = "nothing written yet") -> None:
        self.path, self.content_type, self.missing = path, content_type, missing
        self._file = FileVersion(path)
        self._response: Response | None = None

    def __call__(self, query: str = "") -> Response:
        try:
            content, changed = self._file.read()
        except OSError:
            return _error(503, self.missing)
        if changed or self._response is None:
            self._response = Response(200, content, self.content_type)
        return self._response


def respond(head: bytes, routes: Mapping[str, Route]) -> tuple[bytes, bytes]:
    """The response (header block, body) to a complete request head."""
    line = head.split(b"\n", 1)[0].rstrip(b"\r")
    parts = line.split(b" ")
    if len(parts) != 3 or not parts[2].startswith(b"HTTP/") or not parts[1].startswith(b"/"):
        return render(_error(400, "bad request"))
    method, (path, _, query) = parts[0], parts[1].decode("latin-1").partition("?")
    route = routes.get(path)
    if method not in (b"GET", b"HEAD"):
        return render(_error(405, "only GET and HEAD"))
    if route is None:
        return render(_error(404, "not found"))
    try:
        response = route(query)
    except Exception:  # noqa: BLE001 - a bug in one route must not end the listener
        response = _error(500, "internal error")
    return render(response, head_only=method == b"HEAD")


def render(response: Response, head_only: bool = False) -> tuple[bytes, bytes]:
    allow = "Allow: GET, HEAD\r\n" if response.status == 405 else ""
    extra = "".join(f"{name}: {value}\r\n" for name, value in response.headers)
    header = (f"HTTP/1.1 {response.status} {REASONS.get(response.status, 'Error')}\r\n"
              f"Content-Type: {response.content_type}\r\nContent-Length: {len(response.body)}\r\n"
              f"{extra}{allow}Connection: close\r\n\r\n")
    return header.encode("latin-1"), (b"" if head_only else response.body)


def head_end(buffer: bytearray) -> int:
    """Where the request head ends (after its blank line), or -1 while it has not."""
    for blank in (b"\r\n\r\n", b"\n\n"):
        if (at := buffer.find(blank)) >= 0:
            return at + len(blank)
    return -1


class _Connection:
    __slots__ = ("sock", "deadline", "opened", "head", "out", "answering")

    def __init__(self, sock: socket.socket, now: float) -> None:
        self.sock, self.opened, self.deadline = sock, now, now + REQUEST_TIMEOUT
        self.head = bytearray()
        self.out: list[memoryview] = []
        self.answering = False


def connection_limit() -> int:
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return MAX_CONNECTIONS if soft == resource.RLIM_INFINITY else max(1, min(MAX_CONNECTIONS, soft - SPARE_FDS))


def listen(host: str, port: int) -> socket.socket:
    """A non-blocking listening socket (IPv6 when ``host`` has a colon); OSError when it cannot."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


class Listener:
    def __init__(self, server: socket.socket, routes: Mapping[str, Route],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.server, self.routes, self.clock = server, routes, clock
        self.limit = connection_limit()
        self.selector = selectors.DefaultSelector()
        self.selector.register(server, selectors.EVENT_READ, None)
        self.connections: dict[int, _Connection] = {}
        self.accept_paused_until: float | None = None

    def serve_forever(self) -> None:
        while True:
            self.serve_once()

    def serve_once(self) -> None:
        """Wait for the next event or deadline, and act on everything due."""
        now = self.clock()
        deadlines = [c.deadline for c in self.connections.values()]
        if self.accept_paused_until is not None:
            deadlines.append(self.accept_paused_until)
        timeout = max(0.0, min(deadlines) - now) if deadlines else None
        for key, _ in self.selector.select(timeout):
            conn: _Connection | None = key.data
            if conn is None:
                self._accept()
            elif self.connections.get(key.fd) is conn:  # not closed (made room for another) meanwhile
                if conn.answering:
                    self._write(conn)
                else:
                    self._read(conn)
        now = self.clock()
        for conn in [c for c in self.connections.values() if now >= c.deadline]:
            self._close(conn)  # a head too slow to come, or a response too slow to be taken
        if self.accept_paused_until is not None and now >= self.accept_paused_until:
            self._resume_accepting()

    def _accept(self) -> None:
        for _ in range(ACCEPT_BATCH):
            try:
                sock, _ = self.server.accept()
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    self._pause_accepting()
                    return
                continue  # that connection went away before we took it (ECONNABORTED...)
            sock.setblocking(False)
            if len(self.connections) >= self.limit and not self._make_room():
                sock.close()
                continue
            conn = _Connection(sock, self.clock())
            self.connections[sock.fileno()] = conn
            self.selector.register(sock, selectors.EVENT_READ, conn)

    def _make_room(self) -> bool:
        """Close the oldest connection still sending its request, else the oldest being answered."""
        waiting = [c for c in self.connections.values() if not c.answering]
        victims = waiting or list(self.connections.values())
        if not victims:
            return False
        self._close(min(victims, key=lambda c: c.opened))
        return True

    def _pause_accepting(self) -> None:
        if self.accept_paused_until is None:
            self.selector.unregister(self.server)
        self.accept_paused_until = self.clock() + ACCEPT_PAUSE

    def _resume_accepting(self) -> None:
        self.accept_paused_until = None
        self.selector.register(self.server, selectors.EVENT_READ, None)

    def _read(self, conn: _Connection) -> None:
        try:
            data = conn.sock.recv(MAX_HEAD + 1 - len(conn.head))
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._close(conn)  # the client gave up
            return
        conn.head += data
        end = head_end(conn.head)
        if end < 0 and len(conn.head) <= MAX_HEAD:
            return
        if end < 0:
            header, body = render(_error(431, f"request head over {MAX_HEAD} bytes"))
        else:
            header, body = respond(bytes(conn.head[:end]), self.routes)
        conn.head = bytearray()
        conn.out = [memoryview(header), memoryview(body)]
        conn.answering, conn.deadline = True, self.clock() + RESPONSE_TIMEOUT
        self.selector.modify(conn.sock, selectors.EVENT_WRITE, conn)
        self._write(conn)

    def _write(self, conn: _Connection) -> None:
        while conn.out:
            if not conn.out[0]:
                conn.out.pop(0)
                continue
            try:
                sent = conn.sock.send(conn.out[0])
            except BlockingIOError:
                return
            except OSError:
                break
            conn.out[0] = conn.out[0][sent:]
        self._close(conn, sent_all=not conn.out)

    def _close(self, conn: _Connection, sent_all: bool = False) -> None:
        self.connections.pop(conn.sock.fileno(), None)
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(conn.sock)
        if sent_all:
            with contextlib.suppress(OSError):
                conn.sock.shutdown(socket.SHUT_WR)
        conn.sock.close()
        if self.accept_paused_until is not None:  # a descriptor came free: take the waiting ones
            self._resume_accepting()

