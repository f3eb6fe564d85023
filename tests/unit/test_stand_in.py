"""The benchmark's ffmpeg stand-in (``scripts/benchlib/recorder.py``) must look like a recording
ffmpeg to the supervisor: time-named segments that grow, the current one held open, a new one
every -segment_time seconds, exit status 255 on SIGTERM, and an argv the supervisor's process
checks recognise."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
from benchlib import recorder  # noqa: E402

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="the stand-in is compiled with gcc")


def test_writes_rotates_holds_the_file_open_and_exits_255(tmp_path: Path) -> None:
    binary = recorder.build(tmp_path / "bin")
    camera_dir = tmp_path / "mirror" / "cam"
    camera_dir.mkdir(parents=True)
    argv = recorder.fake_argv(binary, camera_dir, segment_seconds=1)
    proc = subprocess.Popen(argv, env={**os.environ, "TZ": "UTC", "STAND_IN_BYTES": "100"})
    try:
        time.sleep(2.3)
        held = {os.readlink(f"/proc/{proc.pid}/fd/{fd}") for fd in os.listdir(f"/proc/{proc.pid}/fd")}
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=5)
    segments = sorted(p.name for p in camera_dir.iterdir())
    assert code == 255
    assert len(segments) >= 2, segments
    assert all(len(name) == len("20260101_000000.mp4") and name.endswith(".mp4") for name in segments)
    assert all((camera_dir / name).stat().st_size > 0 for name in segments)
    assert any(path.startswith(str(camera_dir)) for path in held), held
    assert "ffmpeg" in os.path.basename(argv[0]) and argv[-1].endswith("%Y%m%d_%H%M%S.mp4")
