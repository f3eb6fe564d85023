"""Control a real RTSP test server (scripts/test_camera.py) from pytest.

Pure stdlib: the server needs GStreamer's python3-gi, which only Debian's
/usr/bin/python3 has, so it always runs as a subprocess of the test process.
"""
from __future__ import annotations

import os
import random
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


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port() -> int:
    """A port free now, below the kernel's ephemeral range.

    A port the kernel hands out (bind to 0) is in the range it also uses for the source port of
    every outgoing connection, so between this pick and the server's bind an ffmpeg connecting
    anywhere could take it: a fresh-clone CI run lost the failover test's set-up that way
    ("cannot listen on 127.0.0.1:33297"). Ports below the range are only ever taken by a bind.
    """
    low = _ephemeral_low()
    for _ in range(200):
        port = random.randrange(max(1024, low - 12000), low)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port below the ephemeral range")


class PortTaken(RuntimeError):
    """The server could not listen on its port."""


class RtspServer:
    """One RTSP server process on 127.0.0.1:port; restartable on the same port."""

    def __init__(self, port: int | None = None, user: str | None = None,
                 password: str | None = None, bitrate_kbps: int | None = None, fps: int | None = None,
                 shared: bool = True):
        self.port = port if port is not None else free_port()
        # a port we picked may be taken by another test between the pick and the first bind;
        # then start() picks again (a restart keeps the port: clients reconnect to it)
        self._may_repick = port is None
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
        attempts = 3 if self._may_repick else 1
        for attempt in range(1, attempts + 1):
            try:
                self._start_once(timeout)
            except PortTaken:
                if attempt == attempts:
                    raise
                self.port = free_port()
                continue
            self._may_repick = False
            return

    def _start_once(self, timeout: float) -> None:
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
                        if "cannot listen" in self._err_tail():
                            raise PortTaken(f"RTSP server could not listen{self._err_tail()}")
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
