"""The ``/metrics`` listener against slow and hostile clients (README, "Metrics").

Real sockets against the listener child a real master started: a thousand idle connections
(more than the 1,024 descriptors systemd gives a service by default) and slowloris requests
whose headers never end, each sending up to 100 header lines of 60 KiB. While the test holds all
of them open, a normal scrape still succeeds, the listener neither grows (RSS) nor spins (CPU),
and the connections past the listener's limit have been closed by it.
"""

from __future__ import annotations

import errno
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable

import psutil
from support import procs
from support.rtsp import free_port

SERVICE_NOFILE = 1024  # systemd's default soft LimitNOFILE for a service
IDLE = 1100
SLOW = 20
SLOW_LINE = b"X-Padding: " + b"a" * (60 * 1024) + b"\r\n"
OPEN_BOUND = 100  # generous: the listener's limit is 64 connections at once
RSS_GROWTH_BOUND = 32 * 1024 * 1024  # generous: 20 slowloris requests used to pin about 6 MB each
CPU_WINDOW = 3.0
CPU_BOUND = 1.0  # seconds of CPU in the window: a spinning accept loop uses all of it


def listener_of(master_pid: int) -> psutil.Process | None:
    for child in psutil.Process(master_pid).children():
        if procs.title(child).startswith("mirror-supervisor: metrics 127.0.0.1:"):
            return child
    return None


def scrape(port: int, path: str = "/metrics") -> tuple[int, bytes] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except OSError:
        return None


def settles(check: Callable[[], bool], within: float) -> bool:
    """Whether ``check`` becomes true within ``within`` seconds (pacing only, never asserted)."""
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
    return True


def open_idle(listener: psutil.Process, port: int, count: int) -> tuple[list[socket.socket], int]:
    """``count`` connections that never send a byte, opened a few at a time, each few once the
    listener accepted (or closed) them, as a patient attacker would: a burst would mostly be
    dropped by the kernel's backlog and never reach the listener. Once three batches in a row
    are neither accepted nor closed within a while (the old listener, out of descriptors), the
    rest are opened without waiting. Returns the sockets and how many were opened patiently
    (each of those reached the listener)."""
    socks: list[socket.socket] = []
    patient, misses = 0, 0
    while len(socks) < count:
        for _ in range(4):
            sock = socket.socket()
            sock.setblocking(False)
            sock.connect_ex(("127.0.0.1", port))
            socks.append(sock)
        if misses < 3:
            reached = settles(lambda: established(listener, port) + sum(map(closed_by_peer, socks)) >= len(socks), 2.0)
            misses = 0 if reached else misses + 1
            patient = len(socks) if reached else patient
    return socks, patient


def slowloris(port: int, count: int, stop: threading.Event) -> list[socket.socket]:
    """``count`` requests whose head never ends: big header lines, then a byte now and then."""
    socks = []
    for _ in range(count):
        sock = socket.socket()
        sock.settimeout(10)
        try:
            sock.connect(("127.0.0.1", port))
            sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
            for _ in range(99):
                if stop.is_set():
                    break
                sock.sendall(SLOW_LINE)
        except OSError:
            pass  # closed by the listener: what a bounded one does
        socks.append(sock)
    return socks


def closed_by_peer(sock: socket.socket) -> bool:
    """True when the other end closed this connection (EOF, after any answer it sent, or a
    reset); False while it is open or still connecting."""
    sock.setblocking(False)
    try:
        while sock.recv(65536):
            pass
    except BlockingIOError:
        return False
    except OSError as exc:
        return exc.errno in (errno.ECONNRESET, errno.EPIPE, errno.ECONNREFUSED)
    return True


def established(proc: psutil.Process, port: int) -> int:
    return sum(1 for c in proc.net_connections(kind="tcp")
               if c.status == psutil.CONN_ESTABLISHED and c.laddr and c.laddr.port == port)


def cpu_seconds(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return times.user + times.system


def test_idle_and_slowloris_clients_cannot_stop_scrapes_grow_or_spin_the_listener(supervisor, nvr):
    port = free_port()
    sup = supervisor("--poll-interval", "600", "--metrics-listen", f"127.0.0.1:{port}")
    listener = procs.wait_for("the metrics listener", lambda: listener_of(sup.pid), 30)
    procs.wait_for("a first scrape", lambda: (got := scrape(port)) is not None and got[0] == 200, 30)
    listener.rlimit(psutil.RLIMIT_NOFILE, (SERVICE_NOFILE, SERVICE_NOFILE))
    rss_before = listener.memory_info().rss

    stop, held = threading.Event(), []
    try:
        held += slowloris(port, SLOW, stop)
        idle, patient = open_idle(listener, port, IDLE)
        held += idle
        cpu_before, began = cpu_seconds(listener), time.monotonic()
        time.sleep(CPU_WINDOW)
        cpu = cpu_seconds(listener) - cpu_before
        window = time.monotonic() - began
        open_now = established(listener, port)
        rss_peak = listener.memory_info().rss
        closed = sum(closed_by_peer(sock) for sock in held)
        reached = held[:SLOW] + idle[:patient]  # connections known to have reached the listener
        closed_reached = sum(closed_by_peer(sock) for sock in reached)
        print(f"listener under load: rss {rss_before / 2**20:.1f} -> {rss_peak / 2**20:.1f} MiB, "
              f"cpu {cpu:.2f}s in {window:.1f}s, {open_now} connections open, "
              f"{closed} of {len(held)} closed by it ({closed_reached} of the {len(reached)} that reached it)")
        assert rss_peak - rss_before < RSS_GROWTH_BOUND
        assert cpu < CPU_BOUND, f"{cpu:.2f}s of CPU in {window:.1f}s: the listener spins"
        assert open_now <= OPEN_BOUND
        assert len(reached) > 2 * OPEN_BOUND, "too few connections reached the listener to test its limit"
        assert closed_reached >= len(reached) - OPEN_BOUND
        answer = procs.wait_for("a scrape under load", lambda: (got := scrape(port)) is not None
                                and got[0] == 200 and got, 60)
        assert b"mirror_supervisor_build_info" in answer[1]
    finally:
        stop.set()
        for sock in held:
            sock.close()
    procs.wait_for("scrapes after the load", lambda: (got := scrape(port)) is not None and got[0] == 200, 30)
    assert scrape(port, "/nothing-here") is not None and scrape(port, "/nothing-here")[0] == 404
    assert listener.is_running() and listener_of(sup.pid).pid == listener.pid, "the same listener served throughout"
    assert sup.stop() == 0
