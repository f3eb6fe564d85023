"""The built-in demo: a synthetic camera, a small NVR database, the real supervisor.

Cameras in the demo database:
  front_door  hikvision, user + password (the camera checks them), mirrored
  garage      dahua, sub stream, audio copied, mirrored
  attic       mirror_enabled = 0: not mirrored
  lobby       generic vendor without a stream URL: reported, never started
"""

from __future__ import annotations

import argparse
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CAMERA_SCRIPT = ROOT / "scripts" / "test_camera.py"
PASSWORD = "demo p@ss:1"
MASK = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*://)[^\s/]*@")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_database(path: Path, port: int) -> None:
    path.unlink(missing_ok=True)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(
        "CREATE TABLE cameras (id TEXT PRIMARY KEY, name TEXT, vendor TEXT DEFAULT 'generic', address TEXT,"
        " rtsp_port INTEGER DEFAULT 554, username TEXT, password TEXT, main_stream_url TEXT, sub_stream_url TEXT,"
        " record_stream TEXT DEFAULT 'main', segment_seconds INTEGER DEFAULT 60, retention_hours INTEGER DEFAULT 24,"
        " record_audio INTEGER DEFAULT 0, record_enabled INTEGER DEFAULT 1, mirror_enabled INTEGER DEFAULT 0,"
        " enabled INTEGER DEFAULT 1, updated_at TEXT)"
    )
    rows = [
        ("front_door", "Front door", "hikvision", "127.0.0.1", port, "admin", PASSWORD, "main", 0, 1),
        ("garage", "Garage", "dahua", "127.0.0.1", port, "admin", PASSWORD, "sub", 1, 1),
        ("attic", "Attic", "hikvision", "127.0.0.1", port, "admin", PASSWORD, "main", 0, 0),
        ("lobby", "Lobby", "generic", "127.0.0.1", port, None, None, "main", 0, 1),
    ]
    conn.executemany(
        "INSERT INTO cameras (id, name, vendor, address, rtsp_port, username, password, record_stream,"
        " record_audio, mirror_enabled, segment_seconds, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,5,'2026-11-23T00:00:00Z')",
        rows,
    )
    conn.close()


def start_camera(port: int) -> subprocess.Popen:
    camera = subprocess.Popen(
        ["/usr/bin/python3", str(CAMERA_SCRIPT), "--port", str(port), "--user", "admin", "--password", PASSWORD],
        stdout=subprocess.PIPE, stdin=subprocess.DEVNULL,
    )
    line = camera.stdout.readline().decode().strip()
    if line != f"READY {port}":
        sys.exit(f"demo: the synthetic camera did not start (said {line!r})")
    return camera


def show_processes() -> None:
    out = subprocess.run(["ps", "-eo", "pid,ppid,args"], capture_output=True, text=True).stdout
    print("\n=== ps -eo pid,ppid,args (ffmpeg arguments masked here; see README on /proc) ===")
    for line in out.splitlines():
        if "mirror-supervisor:" in line or (" ffmpeg " in line and "-segment_time" in line):
            print(MASK.sub(r"\1***@", line)[:200])
    print()


def show_segments(mirror_dir: Path) -> None:
    print("\n=== segments written ===")
    # Camera ids never start with a dot; .mirror-supervisor holds the segment index.
    for camera in sorted(p for p in mirror_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = sorted(camera.glob("*.mp4"))
        print(f"{camera.name}: {len(files)} segments")
        for path in files:
            probe = subprocess.run(
                ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", str(path)],
                capture_output=True, text=True,
            )
            duration = probe.stdout.strip() or "unreadable"
            print(f"  {path.relative_to(mirror_dir.parent)}  {path.stat().st_size:>8} bytes  {duration} s")


def main() -> int:
    parser = argparse.ArgumentParser(description="Run mirror-supervisor on a built-in demo.")
    parser.add_argument("--seconds", type=float, default=None, help="stop after this long (default: until Ctrl-C)")
    parser.add_argument("--dir", type=Path, default=ROOT / "demo-data", help="where the demo writes (default demo-data/)")
    args = parser.parse_args()

    workdir = args.dir.resolve()
    mirror_dir = workdir / "mirror"
    shutil.rmtree(mirror_dir, ignore_errors=True)
    mirror_dir.mkdir(parents=True)
    port = free_port()
    make_database(workdir / "heldar.db", port)
    camera = start_camera(port)
    print(f"demo: synthetic camera on rtsp://127.0.0.1:{port}, database {workdir / 'heldar.db'}, mirror {mirror_dir}")
    master = subprocess.Popen(
        [str(Path(sys.executable).parent / "mirror-supervisor"), "run", "--db", str(workdir / "heldar.db"),
         "--mirror-dir", str(mirror_dir), "--poll-interval", "2", "--state-dir", str(workdir / "state"),
         "--cache-dir", str(workdir / "cache")],
        stdin=subprocess.DEVNULL,
    )
    try:
        time.sleep(6)
        show_processes()
        print("=== mirror-supervisor status ===")
        subprocess.run([str(Path(sys.executable).parent / "mirror-supervisor"), "status", "--state-dir", str(workdir / "state")])
        print()
        if args.seconds is None:
            print("demo: recording; press Ctrl-C to stop")
            master.wait()
        else:
            time.sleep(max(0.0, args.seconds - 6))
    except KeyboardInterrupt:
        pass
    finally:
        if master.poll() is None:
            master.send_signal(signal.SIGTERM)
        code = master.wait()
        camera.send_signal(signal.SIGTERM)
        camera.wait(timeout=10)
    show_segments(mirror_dir)
    print(f"\ndemo: supervisor exited with status {code}")
    return code


if __name__ == "__main__":
    sys.exit(main())
