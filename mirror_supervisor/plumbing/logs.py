"""Log lines an operator can grep: one event per line, ``<time> <level> <camera> <message>``.

Events that concern no single camera carry ``-`` in the camera column. Every line passes through
URL masking on its way out, as a last line of defence behind the masking done at each call site
(which also knows each camera's literal secrets).
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import sys
import time
import traceback
from pathlib import Path
from typing import IO, Any

from . import files
from .masking import mask

LOGGER_NAME = "mirror_supervisor"


class _Formatter(logging.Formatter):
    def converter(self, seconds: float | None) -> time.struct_time:
        return time.gmtime(seconds)  # UTC, as the segment names

    def __init__(self) -> None:
        super().__init__("%(asctime)s.%(msecs)03dZ %(levelname)s %(camera)s %(message)s", "%Y-%m-%dT%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        if not hasattr(record, "camera"):
            record.camera = "-"
        text = super().format(record)
        # One event, one line: tracebacks and multi-line ffmpeg output are folded.
        return mask(text.replace("\r", "").replace("\n", " | "))


class _PrivateFileHandler(logging.handlers.WatchedFileHandler):
    """A WatchedFileHandler whose file, also when re-created after rotation, is created 0640
    (not 0666 minus umask: the log names cameras and their addresses) and never via a symlink."""

    def _open(self) -> IO[str]:  # type: ignore[override]
        fd = files.open_append(Path(self.baseFilename))
        return os.fdopen(fd, "a", encoding=self.encoding, errors=self.errors)


def setup(level: str = "INFO", stream: Any = None, path: str | None = None) -> logging.Logger:
    """Log to ``path`` if given, else to ``stream`` (stderr).

    A log file is reopened whenever it was moved or removed (logrotate's default ``create``
    mode), by every process that writes it, so rotation needs no signal and loses no line.
    """
    logger = logging.getLogger(LOGGER_NAME)
    logger.handlers.clear()
    handler: logging.Handler
    if path:
        handler = _PrivateFileHandler(path, encoding="utf-8")
    else:
        handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(_Formatter())
    logger.addHandler(handler)
    logger.setLevel(level.upper())
    logger.propagate = False
    return logger


def destination() -> tuple[str, str | None]:
    """(level name, log file or None for stderr) as :func:`setup` configured them: what a worker
    needs to write the same lines without this package (:mod:`line_log`)."""
    logger = logging.getLogger(LOGGER_NAME)
    path = next((h.baseFilename for h in logger.handlers if isinstance(h, logging.FileHandler)), None)
    return logging.getLevelName(logger.getEffectiveLevel()), path


def for_camera(camera_id: str) -> logging.LoggerAdapter:
    """A logger whose lines carry ``camera_id`` in the camera column."""
    return logging.LoggerAdapter(logging.getLogger(LOGGER_NAME), {"camera": camera_id})


def master() -> logging.LoggerAdapter:
    return for_camera("-")


def once_per_place(log: logging.LoggerAdapter, exc: BaseException, seen: set[tuple[str, str, int]], what: str) -> None:
    """Log ``exc`` with its traceback (masked, folded to one line) the first time an error of its
    kind is raised at its place; a failure that repeats every pass must not flood the log."""
    where = (traceback.extract_tb(exc.__traceback__) or [None])[-1]
    signature = (type(exc).__name__, where.filename if where else "", (where.lineno or 0) if where else 0)
    if signature not in seen and len(seen) < 100:
        seen.add(signature)
        log.error("%s: %s", what, mask("".join(traceback.format_exception(exc)).strip()))
