"""Control a real RTSP test server (scripts/test_camera.py) from pytest.

Pure stdlib: the server needs GStreamer's python3-gi, which only Debian's
/usr/bin/python3 has, so it always runs as a subprocess of the test process.
"""
from __future__ import annotations

import os
import selectors
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

SERVER_SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "test_camera.py"
SYSTEM_PYTHON = "/usr/bin/python3"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RtspServer:
    """One RTSP server process on 127.0.0.1:port; restartable on the same port."""

    def __init__(self, port: int | None = None, user: str | None = None,
                 password: str | None = None, bitrate_kbps: int | None = None, fps: int | None = None,
                 shared: bool = True):
        self.port = port if port is not None else free_port()
        self.user = user
        self.password = password
        self.bitrate_kbps = bitrate_kbps
        self.fps = fps
        self.shared = shared  # False: every client gets a pipeline of its own
        self._proc: subprocess.Popen | None = None
        self._stderr = None

    # -- lifecycle -----------------------------------------------------------
    def start(self, timeout: float = 15.0) -> None:
        if self._proc is not None:
            raise RuntimeError("RTSP server already running")
        cmd = [SYSTEM_PYTHON, str(SERVER_SCRIPT), "--port", str(self.port)]
        if self.user is not None:
            cmd += ["--user", self.user, "--password", self.password or ""]
        if self.bitrate_kbps is not None:
            cmd += ["--bitrate", str(self.bitrate_kbps)]
        if self.fps is not None:
            cmd += ["--fps", str(self.fps)]
        if not self.shared:
            cmd.append("--unshared")
        # stderr goes to a file, not a pipe: nobody drains it while tests run.
        self._stderr = tempfile.TemporaryFile()
        self._proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                      stderr=self._stderr)
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, timeout: float) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        deadline = time.monotonic() + timeout
        buf = b""
        with selectors.DefaultSelector() as sel:
            sel.register(self._proc.stdout, selectors.EVENT_READ)
            while b"\n" not in buf:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RuntimeError(f"RTSP server not READY after {timeout}s{self._err_tail()}")
                if sel.select(left):
                    chunk = os.read(self._proc.stdout.fileno(), 4096)
                    if not chunk:  # EOF: the script died
                        self._proc.wait(timeout=5)
                        raise RuntimeError(f"RTSP server exited with {self._proc.returncode}"
                                           f"{self._err_tail()}")
                    buf += chunk
        if buf.split(b"\n", 1)[0].strip() != f"READY {self.port}".encode():
            raise RuntimeError(f"unexpected RTSP server output {buf!r}{self._err_tail()}")

    def _err_tail(self) -> str:
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        text = self._stderr.read()[-4000:].decode(errors="replace").strip()
        return f"; stderr:\n{text}" if text else ""

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.send_signal(signal.SIGCONT)  # a SIGSTOPped process must wake to die
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=5)
            if proc.stdout is not None:
                proc.stdout.close()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def pause(self) -> None:
        """Freeze the server: TCP connections stay open, but no data is sent."""
        if self._proc is None:
            raise RuntimeError("RTSP server not running")
        self._proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self._proc is None:
            raise RuntimeError("RTSP server not running")
        self._proc.send_signal(signal.SIGCONT)

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    # -- helpers -------------------------------------------------------------
    def url(self, path: str = "/live", user: str | None = None,
            password: str | None = None) -> str:
        """rtsp://[user[:password]@]127.0.0.1:port/path, userinfo percent-encoded."""
        userinfo = ""
        if user is not None:
            userinfo = quote(user, safe="")
            if password is not None:
                userinfo += ":" + quote(password, safe="")
            userinfo += "@"
        if not path.startswith("/"):
            path = "/" + path
        return f"rtsp://{userinfo}127.0.0.1:{self.port}{path}"

    def __enter__(self) -> RtspServer:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"RtspServer(port={self.port}, running={self.running})"
