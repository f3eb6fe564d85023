"""What the master makes of the zygote's announcements (master/zygote_client.py), from a real
socket pair: a failed rehearsal is a warning, not a spare, and the zygote is still taken as ready."""

from __future__ import annotations

import logging
import socket

from mirror_supervisor.master.zygote_client import ZygoteClient
from mirror_supervisor.worker import zygote


def test_a_failed_rehearsal_is_logged_and_the_zygote_still_serves(caplog):
    client = ZygoteClient(report_fd=-1, keep_fds=tuple, close_in_child=())
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    client._sock = ours
    try:
        theirs.sendall(zygote.ANNOUNCE.pack(zygote.UNREHEARSED, 0))
        theirs.sendall(zygote.ANNOUNCE.pack(zygote.READY, 4242))
        with caplog.at_level(logging.WARNING):
            got = client._collect(wait=True, deadline=client.monotonic() + 5)
        assert got and client._ready
        assert client._spares == [] and client._asked == 0
        assert "rehearsal of a worker's start failed" in caplog.text
    finally:
        ours.close()
        theirs.close()
