"""The machine and software versions a run was measured on."""

from __future__ import annotations

import datetime
import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

import psutil

from .common import ROOT


def _first_line_starting(path: str, prefix: str, sep: str) -> str | None:
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(prefix):
                return line.split(sep, 1)[1].strip().strip('"')
    except OSError:
        pass
    return None


def _version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "?"


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    except OSError:
        return "?"


def machine_info() -> dict[str, Any]:
    try:
        ffmpeg = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True).stdout.splitlines()[0]
    except (OSError, IndexError):
        ffmpeg = "?"
    return {
        "date_utc": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": _first_line_starting("/proc/cpuinfo", "model name", ":") or "?",
        "cores": os.cpu_count(),
        "ram_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "kernel": platform.release(),
        "os": _first_line_starting("/etc/os-release", "PRETTY_NAME=", "=") or platform.system(),
        "python": platform.python_version(), "ffmpeg": ffmpeg,
        "supervisor": _version("supervisor"), "mirror_supervisor": _version("mirror-supervisor"),
        "psutil": _version("psutil"),
        "commit": _git("rev-parse", "--short", "HEAD"),
        "dirty_files": len([line for line in _git("status", "--porcelain", "mirror_supervisor").splitlines() if line]),
    }
