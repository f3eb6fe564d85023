"""The synthetic RTSP camera (scripts/test_camera.py) that every real ffmpeg pulls from."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

from .common import ROOT, SYSTEM_PYTHON, mono

CAMERA_SCRIPT = ROOT / "scripts" / "test_camera.py"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_camera(port: int, work: Path) -> subprocess.Popen:
    """Start the camera and wait for its ``READY <port>`` line."""
    err = open(work / "camera.log", "ab")
    proc = subprocess.Popen([SYSTEM_PYTHON, str(CAMERA_SCRIPT), "--port", str(port)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err)
    err.close()
    assert proc.stdout is not None
    line = b""
    deadline = mono() + 30
    os.set_blocking(proc.stdout.fileno(), False)
    while mono() < deadline and b"\n" not in line:
        try:
            chunk = os.read(proc.stdout.fileno(), 100)
        except BlockingIOError:
            chunk = None
        if chunk == b"":
            break
        line += chunk or b""
        time.sleep(0.05)
    if line.strip() != f"READY {port}".encode():
        proc.kill()
        raise RuntimeError(f"test camera did not start: {line!r}")
    return proc
