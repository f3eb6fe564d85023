"""Is the camera there? What an ffmpeg failure says about that, and a cheap probe of its port.

Used by the worker's back-off (:mod:`worker`, docs/design.md "Worker loop") so that a camera that
comes back after a reboot is recorded again within about a second instead of after up to 30 s of
back-off, while a camera that answers but refuses us (401, 404, 503, bad data) keeps the plain
back-off.

Classification (:func:`classify`), from the end of ffmpeg's stderr:

- ``ANSWERED``: the camera spoke RTSP/HTTP and said no (``Server returned``, ``method ... failed``,
  401/403/404/454/503, ``Invalid data found``): plain back-off, no probe.
- ``UNREACHABLE``: the failure came before any exchange (connection refused, no route to host,
  network unreachable, connection timed out, a host name that does not resolve): probe.
- ``LOST``: anything else, notably ffmpeg 5.1's silent exit when the server vanishes mid-stream:
  the camera may be rebooting, so probe as well.

The probe (:class:`PortProbe`) is a plain TCP connect to the URL's host and port, closed at once:
no credentials, no bytes sent. It never holds more than one connection attempt (or one name
look-up) at a time, and every wait in it also watches a wake-up descriptor, so a stop request ends
it at once. It never logs anything: the URL holds credentials.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import re
import select
import socket
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

ANSWERED = "answered"
UNREACHABLE = "unreachable"
LOST = "lost"

DEFAULT_PORTS = {"rtsp": 554, "rtsps": 322, "http": 80, "https": 443}
NAME_TTL = 60.0  # seconds a host name's addresses are used before it is looked up again
CLASSIFIED_LINES = 6  # only the end of the tail: earlier lines are warnings from a run that went well

_ANSWERED = re.compile(
    r"Server returned|method \w+ failed|HTTP error|Invalid data found|Unauthorized|Forbidden|Not Found"
    r"|Session Not Found|Service Unavailable|\b(?:401|403|404|454|503)\b",
    re.IGNORECASE)
_UNREACHABLE = re.compile(
    r"Connection refused|No route to host|Host is unreachable|Network is unreachable|Connection timed out"
    r"|Failed to resolve hostname|Name or service not known|Temporary failure in name resolution"
    r"|No address associated with hostname",
    re.IGNORECASE)

# Probe outcomes.
ACCEPTS = "accepts"  # the port completed a TCP handshake
REFUSES = "refuses"  # a definite no: refused, unreachable, the name does not resolve
NO_ANSWER = "no answer"  # nothing within the time-out: says nothing either way
INTERRUPTED = "interrupted"  # the wake-up descriptor became readable (a signal): the caller acts on it
_READY = "ready"  # internal: the descriptor waited for is ready

_DEFINITE_NO = {errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH, errno.ECONNRESET,
                errno.EADDRNOTAVAIL, errno.ENETDOWN, errno.EHOSTDOWN}


def classify(stderr: str, stalled: bool = False) -> str:
    """What an ffmpeg exit says about the camera (see the module docstring)."""
    if stalled:  # the connection was open and the camera sent nothing: it is there
        return ANSWERED
    lines = [line for line in stderr.splitlines() if line.strip()][-CLASSIFIED_LINES:]
    text = "\n".join(lines)
    if _ANSWERED.search(text):
        return ANSWERED
    if _UNREACHABLE.search(text):
        return UNREACHABLE
    return LOST


@dataclass(frozen=True)
class Target:
    host: str  # a name or an IP literal, without brackets
    port: int

    @property
    def literal(self) -> bool:
        try:
            ipaddress.ip_address(self.host.split("%", 1)[0])
        except ValueError:
            return False
        return True


def target_of(url: str | None, environ: dict[str, str] | None = None) -> Target | None:
    """Host and port the camera's ffmpeg connects to, or None when a probe would not tell.

    Default ports: rtsp 554, rtsps 322, http 80, https 443. None for an unparsable URL, an unknown
    scheme, and for http(s) while a proxy is configured (ffmpeg's http goes through ``http_proxy``,
    so a direct connect would ask the wrong host).
    """
    if not url:
        return None
    try:
        parts = urlsplit(url.strip())
        host, port = parts.hostname, parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if not host or scheme not in DEFAULT_PORTS:
        return None
    env = os.environ if environ is None else environ
    if scheme in ("http", "https") and any(env.get(k) for k in ("http_proxy", "HTTP_PROXY", "https_proxy",
                                                                   "HTTPS_PROXY")):
        return None
    return Target(host, port or DEFAULT_PORTS[scheme])


class PortProbe:
    """One camera's TCP port, asked one connect at a time; see the module docstring.

    ``attempt`` resolves the host (IP literals need nothing; a name is looked up in a helper thread,
    at most one at a time, reused while a look-up is slow) and connects to each address in turn
    within ``timeout``.
    """

    def __init__(self, target: Target, monotonic=time.monotonic) -> None:
        self.target = target
        self._monotonic = monotonic
        self._addresses: list[tuple] | None = None
        self._resolved_at = -NAME_TTL
        self._lookup: _Lookup | None = None
        if target.literal:
            self._addresses = literal_addresses(target)

    def attempt(self, timeout: float, wake_fd: int) -> str:
        deadline = time.monotonic() + timeout
        addresses = self._addresses if self.target.literal else self._look_up(deadline, wake_fd)
        if isinstance(addresses, str):
            return addresses
        if not addresses:
            return REFUSES
        outcome = REFUSES
        for family, kind, proto, address in addresses:
            outcome = _connect(family, kind, proto, address, deadline, wake_fd)
            if outcome != REFUSES:
                return outcome
        return outcome

    def close(self) -> None:
        """Forget a pending look-up (its thread ends by itself; nothing waits for it)."""
        if self._lookup is not None:
            self._lookup.close()
            self._lookup = None

    def _resolve(self) -> list[tuple]:
        host = self.target.host
        try:  # an ASCII name as bytes: a str would load the IDNA codec in every worker that probes
            infos = socket.getaddrinfo(host.encode("ascii") if host.isascii() else host, self.target.port,
                                       type=socket.SOCK_STREAM)
        except (OSError, UnicodeError):
            return []
        return [(family, kind, proto, address) for family, kind, proto, _, address in infos]

    def _look_up(self, deadline: float, wake_fd: int) -> list[tuple] | str:
        """The name's addresses: a look-up's answer is kept for :data:`NAME_TTL` (a camera that is
        down is probed every second; its name need not be asked as often)."""
        if self._addresses and self._monotonic() - self._resolved_at < NAME_TTL:
            return self._addresses
        if self._lookup is None:
            self._lookup = _Lookup(self._resolve)
        lookup = self._lookup
        outcome = _wait_fd(lookup.read_fd, select.POLLIN, deadline, wake_fd)
        if outcome != _READY:
            return outcome  # still looking: the next attempt waits for the same look-up
        self._lookup = None
        self._addresses, self._resolved_at = lookup.result(), self._monotonic()
        return self._addresses


def literal_addresses(target: Target) -> list[tuple]:
    """The connect address of an IP literal, without ``getaddrinfo`` (which, given a str, loads the
    IDNA codec and its tables: about 1 MiB in every worker). A zone (``fe80::1%eth0``) that names
    no interface gives no address, as ``getaddrinfo`` would."""
    text, _, zone = target.host.partition("%")
    ip = ipaddress.ip_address(text)
    if ip.version == 4:
        return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, (str(ip), target.port))]
    try:
        scope = int(zone) if zone.isdigit() else (socket.if_nametoindex(zone) if zone else 0)
    except OSError:
        return []
    return [(socket.AF_INET6, socket.SOCK_STREAM, socket.IPPROTO_TCP, (str(ip), target.port, 0, scope))]


class _Lookup:
    """``getaddrinfo`` in a daemon thread (it cannot be interrupted), reporting through a pipe.

    The thread owns the pipe's write end and closes it once it has written; the reader closes the
    read end (``close``), so neither end is ever closed under the other's feet.
    """

    def __init__(self, resolve) -> None:
        self.read_fd, write_fd = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        self._result: list[tuple] = []
        threading.Thread(target=self._run, args=(resolve, write_fd), name="probe-lookup", daemon=True).start()

    def _run(self, resolve, write_fd: int) -> None:
        self._result = resolve()
        try:
            os.write(write_fd, b".")
        except OSError:  # the reader has gone
            pass
        finally:
            os.close(write_fd)

    def result(self) -> list[tuple]:
        self.close()
        return self._result

    def close(self) -> None:
        if self.read_fd >= 0:
            os.close(self.read_fd)
            self.read_fd = -1


def _connect(family: int, kind: int, proto: int, address: tuple, deadline: float, wake_fd: int) -> str:
    try:
        sock = socket.socket(family, kind | socket.SOCK_CLOEXEC, proto)
    except OSError:
        return REFUSES
    try:
        sock.setblocking(False)
        code = sock.connect_ex(address)
        if code == 0:
            return ACCEPTS
        if code not in (errno.EINPROGRESS, errno.EAGAIN, errno.EINTR):
            return REFUSES if code in _DEFINITE_NO else NO_ANSWER
        outcome = _wait_fd(sock.fileno(), select.POLLOUT, deadline, wake_fd)
        if outcome != _READY:
            return outcome
        code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if code == 0:
            return ACCEPTS
        return REFUSES if code in _DEFINITE_NO else NO_ANSWER
    finally:
        sock.close()


def _wait_fd(fd: int, event: int, deadline: float, wake_fd: int) -> str:
    """_READY when ``fd`` is ready, NO_ANSWER at the deadline, INTERRUPTED when ``wake_fd`` is readable."""
    poller = select.poll()
    poller.register(fd, event)
    poller.register(wake_fd, select.POLLIN)
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return NO_ANSWER
        try:
            ready = dict(poller.poll(left * 1000.0))
        except InterruptedError:
            continue
        if wake_fd in ready:
            return INTERRUPTED
        if fd in ready:
            return _READY
