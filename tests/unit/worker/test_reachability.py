"""What an ffmpeg failure says about the camera, where its port is, and the probe of that port
(docs/design.md, "Worker loop"). Real sockets on 127.0.0.1; no camera, no ffmpeg."""

from __future__ import annotations

import os
import socket
import threading
import time

import pytest
from support.rtsp import free_port

from mirror_supervisor.worker.reachability import (
    ACCEPTS,
    ANSWERED,
    INTERRUPTED,
    LOST,
    NO_ANSWER,
    REFUSES,
    UNREACHABLE,
    PortProbe,
    Target,
    classify,
    target_of,
)

# ffmpeg 5.1's own words (Debian), as the worker's tail holds them.
REFUSED = ("[tcp @ 0x563b53c6d880] Connection to tcp://127.0.0.1:1?timeout=15000000 failed: Connection refused\n"
           "rtsp://u:pw@127.0.0.1:1/live: Connection refused\n")
NO_NAME = ("[tcp @ 0x561942f76880] Failed to resolve hostname nosuchhost.invalid: Name or service not known\n"
           "rtsp://u:pw@nosuchhost.invalid/live: Input/output error\n")
UNAUTHORIZED = ("[rtsp @ 0x564e6b3529c0] method DESCRIBE failed: 401 Unauthorized\n"
                "rtsp://127.0.0.1:18554/live: Server returned 401 Unauthorized (authorization failed)\n")
NOT_FOUND = ("[rtsp @ 0x56321d7d49c0] method DESCRIBE failed: 404 Not Found\n"
             "rtsp://u:pw@127.0.0.1:18554/nope: Server returned 404 Not Found\n")
HTTP_503 = ("[http @ 0x564213eb6200] HTTP error 503 Service Unavailable\n"
            "http://127.0.0.1:18554/live: Server returned 5XX Server Error reply\n")


@pytest.mark.parametrize("stderr", [
    REFUSED, NO_NAME,
    "rtsp://10.0.0.9:554/x: No route to host\n",
    "rtsp://10.0.0.9:554/x: Network is unreachable\n",
    "[tcp @ 0x1] Connection to tcp://10.0.0.9:554?timeout=15000000 failed: Connection timed out\n",
    "[tcp @ 0x1] Failed to resolve hostname cam.lan: Temporary failure in name resolution\n",
])
def test_failures_before_any_exchange_are_unreachable(stderr):
    assert classify(stderr) == UNREACHABLE


@pytest.mark.parametrize("stderr", [
    UNAUTHORIZED, NOT_FOUND, HTTP_503,
    "[rtsp @ 0x1] method SETUP failed: 454 Session Not Found\n",
    "[rtsp @ 0x1] method DESCRIBE failed: 403 Forbidden\n",
    "[rtsp @ 0x1] method DESCRIBE failed: 503 Service Unavailable\n",
    "rtsp://10.0.0.9:554/x: Invalid data found when processing input\n",
])
def test_a_camera_that_answered_and_said_no_is_answered(stderr):
    assert classify(stderr) == ANSWERED


def test_a_silent_exit_is_a_lost_stream_and_a_stall_is_answered():
    assert classify("") == LOST  # ffmpeg 5.1 when the server vanishes mid-stream
    assert classify("[mp4 @ 0x1] Non-monotonous DTS in output stream 0:1\n") == LOST
    assert classify("", stalled=True) == ANSWERED
    assert classify(REFUSED, stalled=True) == ANSWERED


def test_an_answer_wins_over_a_refusal_and_only_the_end_of_the_tail_counts():
    assert classify(REFUSED + UNAUTHORIZED) == ANSWERED
    old_warnings = "[rtsp @ 0x1] method DESCRIBE failed: 401 Unauthorized\n" + "warning\n" * 10
    assert classify(old_warnings + REFUSED) == UNREACHABLE


@pytest.mark.parametrize("url, host, port", [
    ("rtsp://admin:s3cr%40t@192.168.1.20/Streaming/Channels/101", "192.168.1.20", 554),
    ("rtsp://192.168.1.20:8554/live", "192.168.1.20", 8554),
    ("rtsps://cam.example/live", "cam.example", 322),
    ("http://u:p@cam.example/mjpg", "cam.example", 80),
    ("https://cam.example/video", "cam.example", 443),
    ("RTSP://[fe80::1]:10554/live", "fe80::1", 10554),
    ("rtsp://u:p@[2001:db8::7]/x?channel=1&pwd=x", "2001:db8::7", 554),
])
def test_target_is_host_and_port_without_credentials(url, host, port):
    target = target_of(url, environ={})
    assert target == Target(host, port)
    assert "admin" not in repr(target) and "s3cr" not in repr(target)


@pytest.mark.parametrize("url", [None, "", "file:///x", "rtsp:///live", "rtsp://cam:99999/x", "rtsp://[::1/x"])
def test_no_target_when_the_url_does_not_name_one(url):
    assert target_of(url, environ={}) is None


def test_http_behind_a_proxy_is_not_probed():
    env = {"http_proxy": "http://proxy:3128"}
    assert target_of("http://cam.example/mjpg", environ=env) is None
    assert target_of("rtsp://cam.example/live", environ=env) == Target("cam.example", 554)


@pytest.fixture
def wake():
    read_fd, write_fd = os.pipe2(os.O_NONBLOCK)
    yield read_fd, write_fd
    os.close(read_fd)
    os.close(write_fd)


def test_probe_sees_a_listening_port_accept_and_a_closed_one_refuse(wake):
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        probe = PortProbe(Target("127.0.0.1", listener.getsockname()[1]))
        assert probe.attempt(1.0, wake[0]) == ACCEPTS
        accepted, _ = listener.accept()
        assert accepted.recv(10) == b"", "the probe sends nothing (no credentials) and closes"
        accepted.close()
    assert PortProbe(Target("127.0.0.1", free_port())).attempt(1.0, wake[0]) == REFUSES


def test_probe_resolves_a_name_in_a_helper_and_refuses_one_that_does_not_resolve(wake):
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        assert PortProbe(Target("localhost", listener.getsockname()[1])).attempt(5.0, wake[0]) == ACCEPTS
    assert PortProbe(Target("no-such-host.invalid", 554)).attempt(5.0, wake[0]) in (REFUSES, NO_ANSWER)


@pytest.fixture
def silent_port():
    """A port whose SYNs go unanswered: a listener with a full accept queue."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    filler = socket.create_connection(listener.getsockname())
    yield listener.getsockname()[1]
    filler.close()
    listener.close()


def test_probe_without_an_answer_gives_up_at_its_timeout(wake, silent_port):
    began = time.monotonic()
    assert PortProbe(Target("127.0.0.1", silent_port)).attempt(0.3, wake[0]) == NO_ANSWER
    assert time.monotonic() - began < 5


def test_a_wake_up_ends_a_probe_at_once(wake, silent_port):
    timer = threading.Timer(0.2, os.write, (wake[1], b"\x0f"))
    timer.start()
    began = time.monotonic()
    assert PortProbe(Target("127.0.0.1", silent_port)).attempt(30.0, wake[0]) == INTERRUPTED
    assert time.monotonic() - began < 10
    timer.join()
