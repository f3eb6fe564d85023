"""Paths, the clock and the progress log shared by every module of the benchmark."""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = Path(__file__).resolve().parent
VENV_BIN = Path(sys.executable).parent
SYSTEM_PYTHON = "/usr/bin/python3"  # runs the synthetic camera and the stand-in (python3-gi lives there)
POLL = 0.005  # the fine polling interval for latencies


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def mono() -> float:
    return time.monotonic()
