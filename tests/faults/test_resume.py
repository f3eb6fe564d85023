"""Resuming after a camera outage (docs/design.md, "Worker loop"): real daemon, real ffmpeg, real
RTSP server stopped and started again on the same port.

While a worker waits after a failure that may mean the camera is down, it probes the camera's TCP
port: no ffmpeg starts while the port refuses, one starts right after it accepts again. A camera
that answers and refuses us (401, 404), and a port that accepts TCP but whose stream keeps failing,
keep the plain back-off. The assertions are about the order of events in the log, with generous
time-outs, never about wall-clock durations.
"""

from __future__ import annotations

import re
import signal
import socket
import threading
import time
from pathlib import Path

from support import procs
from support.rtsp import RtspServer, free_port

SEGMENT = re.compile(r"\d{8}_\d{6}\.mp4")


def segments(directory: Path) -> list[Path]:
    return sorted(p for p in directory.glob("*.mp4") if SEGMENT.fullmatch(p.name)) if directory.is_dir() else []


def events(log: str, cam: str) -> list[str]:
    """The camera's log messages in order (without time and level)."""
    found = []
    for line in log.splitlines():
        parts = line.split(" ", 3)
        if len(parts) == 4 and parts[2] == cam:
            found.append(parts[3])
    return found


def retries(log: str, cam: str) -> list[int]:
    return [int(n) for n in re.findall(rf" {re.escape(cam)} retrying in (\d+)s", log)]


def test_no_ffmpeg_start_while_the_port_refuses_and_one_as_soon_as_it_accepts(rtsp, nvr, mirror_dir, supervisor):
    nvr.add_mirrored("cam", rtsp.url("/live"))
    sup = supervisor("--poll-interval", "600")
    worker = sup.wait_one_each({"cam"})["cam"]
    procs.wait_for("recording", lambda: [p for p in segments(mirror_dir / "cam") if p.stat().st_size > 0], 30)

    rtsp.stop()  # the camera reboots: its port refuses
    sup.wait_log("camera port refuses; ffmpeg waits until it accepts", timeout=60)
    # Let the probe run through many back-off periods (1, 2, 4, 8 s would all have passed).
    starts_while_down = len(re.findall(r" cam ffmpeg started pid=", sup.log()))
    time.sleep(12)  # not a measurement: time in which the old back-off started ffmpeg at 1, 2, 4 and 8 s

    before = set(segments(mirror_dir / "cam"))
    rtsp.start()
    procs.wait_for("a new segment with data",
                   lambda: [p for p in segments(mirror_dir / "cam") if p not in before and p.stat().st_size > 0], 60)

    cam = events(sup.log(), "cam")
    refuses = cam.index(next(e for e in cam if e.startswith("camera port refuses")))
    back = cam.index(next(e for e in cam if e.startswith("camera port accepts again")))
    assert refuses < back
    assert not [e for e in cam[refuses:back] if e.startswith("ffmpeg started")], \
        "no ffmpeg start while the port refuses"
    assert cam[back + 1].startswith("ffmpeg started"), f"ffmpeg starts right after the port accepts: {cam[back:]}"
    assert starts_while_down == len(re.findall(r" cam ffmpeg started pid=", sup.log())) - 1
    assert sup.workers()["cam"][0].pid == worker.pid


def test_a_camera_that_refuses_us_keeps_its_back_off(nvr, mirror_dir, supervisor):
    with RtspServer(user="admin", password="right-password") as server:
        nvr.add_mirrored("badpass", server.url("/live", user="admin", password="wrong-password"))
        nvr.add_mirrored("badpath", server.url("/nope", user="admin", password="right-password"))
        sup = supervisor("--poll-interval", "600")
        for cam in ("badpass", "badpath"):
            sup.wait_log(f"{cam} retrying in 8s", timeout=90)
        log = sup.log()
    for cam, said in (("badpass", "401"), ("badpath", "404")):
        assert retries(log, cam)[:4] == [1, 2, 4, 8]
        assert said in "\n".join(e for e in events(log, cam) if e.startswith("ffmpeg exited"))
        assert not [e for e in events(log, cam) if "camera port" in e or "as soon as" in e], \
            "a camera that answered is not probed"


class CuttingRelay:
    """A TCP relay to the RTSP server that cuts every connection after ``seconds``: the port always
    accepts, the stream always ends (ffmpeg 5.1 exits silently, like a lost camera)."""

    def __init__(self, upstream: int, seconds: float) -> None:
        self.listener = socket.create_server(("127.0.0.1", free_port()))
        self.port = self.listener.getsockname()[1]
        self.upstream = upstream
        self.seconds = seconds
        self.accepted = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=self._relay, args=(client,), daemon=True).start()

    def _relay(self, client: socket.socket) -> None:
        try:
            server = socket.create_connection(("127.0.0.1", self.upstream))
        except OSError:
            client.close()
            return
        timer = threading.Timer(self.seconds, self._cut, args=(client, server))
        timer.start()
        threading.Thread(target=self._pump, args=(server, client), daemon=True).start()
        self._pump(client, server)
        timer.cancel()

    @staticmethod
    def _cut(*sockets: socket.socket) -> None:
        for s in sockets:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:  # the other side already hung up
                pass

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while chunk := src.recv(65536):
                dst.sendall(chunk)
        except OSError:
            pass
        CuttingRelay._cut(src, dst)

    def close(self) -> None:
        self.listener.close()


def test_a_port_that_accepts_while_the_stream_keeps_failing_keeps_its_back_off(rtsp, nvr, mirror_dir, supervisor):
    """Probing must not turn a stream that keeps ending into a restart loop: the port never went
    down, so the probe never cuts the back-off short."""
    relay = CuttingRelay(rtsp.port, seconds=3.0)
    try:
        nvr.add_mirrored("flaky", f"rtsp://127.0.0.1:{relay.port}/live")
        sup = supervisor("--poll-interval", "600")
        sup.wait_log("flaky retrying in 8s", timeout=120)
        log = sup.log()
    finally:
        relay.close()
    assert retries(log, "flaky")[:4] == [1, 2, 4, 8]
    assert not [e for e in events(log, "flaky") if e.startswith("camera port accepts again")]


def test_a_stop_ends_the_wait_for_a_refusing_port_at_once(nvr, mirror_dir, supervisor):
    nvr.add_mirrored("down", f"rtsp://127.0.0.1:{free_port()}/live")
    sup = supervisor("--poll-interval", "600")
    sup.wait_log("camera port refuses; ffmpeg waits until it accepts", timeout=60)
    sup.signal(signal.SIGTERM)
    assert sup.stop(timeout=30) == 0
    cam = events(sup.log(), "down")
    held = cam.index("camera port refuses; ffmpeg waits until it accepts (probing every 1s)")
    after = cam[held + 1:]
    assert after.index("stop requested") < after.index("worker stopped gen=1")
    assert not [e for e in after if e.startswith(("ffmpeg started", "camera port accepts"))]
