"""A worker's log lines, written with ``os.write``: the master's format, without ``logging``.

A worker writes a few lines an hour. Through the ``logging`` package, its first line built a
record, a formatter's state, handler locks and a stream buffer in memory the worker shares with
nobody (about a quarter of a MiB in each of hundreds of workers, docs/benchmarks.md). The line
itself is the same as the master's (:mod:`logs`): ``<UTC time> <LEVEL> <camera> <message>``,
masked, one event per line, so an operator greps one format across every process.

With ``--log-file`` the file is opened when the worker starts, before it becomes ``--user``, and
reopened when it was moved or removed (logrotate's ``create`` mode), as the master's handler does,
so rotation needs no signal in any process; a worker that may not open the new file (it is root's
and the worker is not) goes on writing to the file it has open rather than losing the line.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Protocol

from . import files
from .masking import mask

LEVELS = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "ERROR": 40, "CRITICAL": 50}


class Log(Protocol):
    """What code shared by the master and the worker needs of a logger: a ``logging`` adapter
    (master) or a :class:`LineLog` (worker) both fit."""

    def debug(self, msg: str, *args: Any) -> None: ...

    def info(self, msg: str, *args: Any) -> None: ...

    def warning(self, msg: str, *args: Any) -> None: ...

    def error(self, msg: str, *args: Any) -> None: ...

    def exception(self, msg: str, *args: Any) -> None: ...


def format_line(seconds: float, level: str, camera: str, message: str) -> bytes:
    """One log line, byte for byte what the master's formatter writes for the same event."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    text = f"{stamp}.{int((seconds - int(seconds)) * 1000):03d}Z {level} {camera} {message}"
    return (mask(text.replace("\r", "").replace("\n", " | ")) + "\n").encode("utf-8", "backslashreplace")


class LineLog:
    """One camera's lines to stderr or to ``path``. Never raises: a log that cannot be written
    must not stop a recording."""

    def __init__(self, camera: str, level: str = "INFO", path: str | None = None) -> None:
        self.camera = camera
        self.threshold = LEVELS.get(level.upper(), 20)
        self.path = Path(path) if path else None
        self._fd = -1  # our descriptor on ``path`` while it is open
        self._identity: tuple[int, int] | None = None  # (st_dev, st_ino) of the file it is open on
        if self.path is not None:
            self._file()  # now, while we may still be root: a worker that becomes --user keeps it

    def debug(self, msg: str, *args: Any) -> None:
        self._log("DEBUG", msg, args)

    def info(self, msg: str, *args: Any) -> None:
        self._log("INFO", msg, args)

    def warning(self, msg: str, *args: Any) -> None:
        self._log("WARNING", msg, args)

    def error(self, msg: str, *args: Any) -> None:
        self._log("ERROR", msg, args)

    def exception(self, msg: str, *args: Any) -> None:
        import traceback  # only on a crash: no worker pays for it otherwise

        self._log("ERROR", msg, args, traceback.format_exc().rstrip())

    def _log(self, level: str, msg: str, args: tuple[Any, ...], trailer: str = "") -> None:
        if LEVELS[level] < self.threshold:
            return
        try:
            message = msg % args if args else msg
        except (TypeError, ValueError):
            message = f"{msg} {args!r}"
        if trailer:
            message = f"{message}\n{trailer}"
        self._write(format_line(time.time(), level, self.camera, message))

    def _write(self, line: bytes) -> None:
        fd = self._file() if self.path is not None else 2
        if fd < 0:
            return
        try:
            os.write(fd, line)
        except OSError:
            pass

    def _file(self) -> int:
        """Our descriptor on ``path``, reopened when the name now leads to another file (or none)."""
        assert self.path is not None
        try:
            now = os.stat(self.path)
            current: tuple[int, int] | None = (now.st_dev, now.st_ino)
        except OSError:
            current = None
        if self._fd >= 0 and current == self._identity:
            return self._fd
        try:
            fd = files.open_append(self.path)
        except OSError:
            return self._fd  # not ours to open now (--user after a rotation): the old file takes the line
        self.close()
        opened = os.fstat(fd)
        self._fd, self._identity = fd, (opened.st_dev, opened.st_ino)
        return self._fd

    def close(self) -> None:
        if self._fd >= 0:
            try:
                os.close(self._fd)
            except OSError:
                pass
        self._fd, self._identity = -1, None
