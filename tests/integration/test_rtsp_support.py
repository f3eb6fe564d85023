"""The test camera's own harness: a port taken before the server binds it.

A fresh-clone CI run once lost a whole test's set-up because the port picked for a test camera was
taken (by an outgoing connection's source port) before the camera bound it. These run the real
server (scripts/test_camera.py) against a port this test holds.
"""
from __future__ import annotations

import socket

import pytest
from support.rtsp import PortTaken, RtspServer, _ephemeral_low, free_port


def _hold(port: int) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", port))
    s.listen()
    return s


def test_free_ports_are_below_the_range_outgoing_connections_use():
    low = _ephemeral_low()
    assert all(1024 <= free_port() < low for _ in range(50))


def test_a_picked_port_taken_before_the_start_is_picked_again():
    server = RtspServer()
    taken = server.port
    with _hold(taken):
        server.start()
        try:
            assert server.port != taken
            with socket.create_connection(("127.0.0.1", server.port), timeout=5):
                pass
        finally:
            server.stop()


def test_a_port_the_test_chose_is_never_changed():
    port = free_port()
    with _hold(port):
        server = RtspServer(port=port)
        with pytest.raises(PortTaken, match="cannot listen"):
            server.start()
        assert server.port == port and not server.running
