"""Log lines an operator can grep: one event per line, ``<time> <level> <camera> <message>``.

Events that concern no single camera carry ``-`` in the camera column. Every line passes through
URL masking on its way out, as a last line of defence behind the masking done at each call site
(which also knows each camera's literal secrets).
"""

from __future__ import annotations

import logging
import logging.handlers
import sys
import time
from typing import Any

from .camera import mask

LOGGER_NAME = "mirror_supervisor"


class _Formatter(logging.Formatter):
    converter = time.gmtime

    def __init__(self) -> None:
        super().__init__("%(asctime)s.%(msecs)03dZ %(levelname)s %(camera)s %(message)s", "%Y-%m-%dT%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        if not hasattr(record, "camera"):
            record.camera = "-"
        text = super().format(record)
        # One event, one line: tracebacks and multi-line ffmpeg output are folded.
        return mask(text.replace("\r", "").replace("\n", " | "))


def setup(level: str = "INFO", stream: Any = None, path: str | None = None) -> logging.Logger:
    """Log to ``path`` if given, else to ``stream`` (stderr).

    A log file is reopened whenever it was moved or removed (logrotate's default ``create``
    mode), by every process that writes it, so rotation needs no signal and loses no line.
    """
    logger = logging.getLogger(LOGGER_NAME)
    logger.handlers.clear()
    handler: logging.Handler
    if path:
        handler = logging.handlers.WatchedFileHandler(path, encoding="utf-8")
    else:
        handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(_Formatter())
    logger.addHandler(handler)
    logger.setLevel(level.upper())
    logger.propagate = False
    return logger


def for_camera(camera_id: str) -> logging.LoggerAdapter:
    """A logger whose lines carry ``camera_id`` in the camera column."""
    return logging.LoggerAdapter(logging.getLogger(LOGGER_NAME), {"camera": camera_id})


def master() -> logging.LoggerAdapter:
    return for_camera("-")
