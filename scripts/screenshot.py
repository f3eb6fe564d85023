"""The README's screenshot of the status page (docs/status-page.png), from a real run.

A real master with ``--metrics-listen`` records two synthetic cameras (scripts/test_camera.py)
from a real SQLite database: ``front_door`` (a password the camera checks), ``garage`` (its camera
is stopped for a few seconds during the run: a gap), ``yard`` (its camera is gone: the master
backs off, the last error shows its URL masked) and ``lobby`` (no stream URL: refused). So that
the hour on the page is not mostly empty, each recording camera's directory first gets the 50
minutes before the run as real ffmpeg segments (one 60 s segment made by ffmpeg with the workers'
muxer options, copied under each minute's name), with an outage of a few minutes in ``garage``'s
and ``yard``'s footage ending 12 minutes ago. Then headless Chromium (tests/support/browser.py)
loads ``/?window=1h`` once the live gap shows, and saves the page.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from support import browser  # noqa: E402 - after the path above
from support.rtsp import RtspServer, free_port  # noqa: E402

from mirror_supervisor.plumbing.status_file import read_status  # noqa: E402
from mirror_supervisor.worker.ffmpeg import MOVFLAGS  # noqa: E402

PASSWORD = "demo p@ss:1"
HISTORY = 50 * 60  # seconds of footage before the run
SEGMENT = 60


def make_database(path: Path, front: int, garage: int, gone: int) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("CREATE TABLE cameras (id TEXT PRIMARY KEY, name TEXT, vendor TEXT DEFAULT 'generic', address TEXT,"
                 " rtsp_port INTEGER DEFAULT 554, username TEXT, password TEXT, main_stream_url TEXT,"
                 " sub_stream_url TEXT, record_stream TEXT DEFAULT 'main', segment_seconds INTEGER DEFAULT 60,"
                 " retention_hours INTEGER DEFAULT 24, record_audio INTEGER DEFAULT 0, record_enabled INTEGER DEFAULT 1,"
                 " mirror_enabled INTEGER DEFAULT 1, enabled INTEGER DEFAULT 1, updated_at TEXT)")
    rows = [("front_door", "Front door", "hikvision", "127.0.0.1", front, "admin", PASSWORD, None),
            ("garage", "Garage", "generic", None, 554, None, None, f"rtsp://127.0.0.1:{garage}/live"),
            ("yard", "Yard", "hikvision", "127.0.0.1", gone, "admin", PASSWORD, None),
            ("lobby", "Lobby", "generic", None, 554, None, None, None)]
    conn.executemany("INSERT INTO cameras (id, name, vendor, address, rtsp_port, username, password, main_stream_url,"
                     " segment_seconds, updated_at) VALUES (?,?,?,?,?,?,?,?,60,'2026-12-01T00:00:00Z')", rows)
    conn.close()


def one_segment(work: Path) -> Path:
    """A real 60 s segment, as the workers' ffmpeg writes them (fragmented MP4, 1 s keyframes)."""
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25",
                    "-t", str(SEGMENT), "-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-f", "segment",
                    "-segment_time", str(SEGMENT + 1), "-segment_format", "mp4", "-segment_format_options", MOVFLAGS,
                    str(work / "segment%d.mp4")], check=True, timeout=300)
    return work / "segment0.mp4"


def history(mirror: Path, camera: str, segment: Path, now: float, outage: tuple[float, float] | None) -> None:
    """The minutes before the run, one segment per minute, but none in ``outage`` (seconds before now)."""
    directory = mirror / camera
    directory.mkdir(parents=True)
    for minute in range(HISTORY // SEGMENT, 0, -1):
        start = now - minute * SEGMENT
        if outage is not None and outage[0] >= now - start > outage[1]:
            continue
        path = directory / time.strftime("%Y%m%d_%H%M%S.mp4", time.gmtime(start))
        shutil.copyfile(segment, path)
        end = start + SEGMENT
        os.utime(path, (end, end))


def wait_for(what: str, check, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            sys.exit(f"screenshot: timed out waiting for {what}")
        time.sleep(0.5)


def recording(state: Path, cameras: set[str]) -> bool:
    rows = {row.get("id"): row.get("state") for row in (read_status(state) or {}).get("cameras") or []}
    return all(rows.get(cid) == "recording" for cid in cameras)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "status-page.png")
    parser.add_argument("--width", type=int, default=1200)
    parser.add_argument("--height", type=int, default=700, help="at most this tall (the page's height)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mirror-supervisor-screenshot-"))
    mirror, state = work / "mirror", work / "state"
    front, garage = RtspServer(user="admin", password=PASSWORD), RtspServer()
    master = None
    try:
        front.start()
        garage.start()
        make_database(work / "heldar.db", front.port, garage.port, free_port())
        segment = one_segment(work)
        now = time.time()
        history(mirror, "front_door", segment, now, None)
        history(mirror, "garage", segment, now, (27 * 60, 23 * 60))
        history(mirror, "yard", segment, now, (12 * 60, 0))
        port = free_port()
        master = subprocess.Popen([sys.executable, "-m", "mirror_supervisor", "run", "--db", str(work / "heldar.db"),
                                   "--mirror-dir", str(mirror), "--state-dir", str(state), "--cache-dir",
                                   str(work / "cache"), "--poll-interval", "2", "--metrics-listen", f"127.0.0.1:{port}",
                                   "--log-file", str(work / "master.log")], cwd=ROOT, stdin=subprocess.DEVNULL)
        wait_for("front_door and garage recording", lambda: recording(state, {"front_door", "garage"}), 60)
        time.sleep(15)
        garage.stop()
        time.sleep(12)
        garage.start()
        wait_for("garage recording again", lambda: recording(state, {"garage"}), 60)
        time.sleep(25)  # the gap closed and read: footage after it, older than the newest 8 s
        with browser.chromium(work / "profile", args.width, args.height) as driver:
            driver.get(f"http://127.0.0.1:{port}/?window=1h")
            time.sleep(1)
            # The page's own height (up to --height), without the browser's window around it.
            content = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]["height"]
            driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
                "width": args.width, "height": min(args.height, int(content) + 8), "deviceScaleFactor": 1,
                "mobile": False})
            driver.save_screenshot(str(args.out))
        print(f"screenshot: wrote {args.out} ({args.out.stat().st_size // 1024} KiB)")
    finally:
        if master is not None and master.poll() is None:
            master.send_signal(signal.SIGTERM)
            master.wait(timeout=30)
        garage.stop()
        front.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
