"""The files the metrics are written to, and taking them back (README, "Metrics").

The exposition goes, atomically, to ``--metrics-file`` (node_exporter's textfile collector) and
to ``<state_dir>/metrics.prom`` (what the ``/metrics`` child serves). node_exporter exports every
``*.prom`` file it finds, with the values in it, for as long as it is there: a file the master
no longer rewrites would claim ``camera_up 1`` for ever. So a file is removed as soon as it is
no longer an output (a reload moved or dropped it) and at a clean stop, which is the textfile
collector's convention for "this exporter is gone": the series disappear, Prometheus marks them
stale, and ``absent()`` alerts fire. Only *our* file is removed: the one this master last wrote
at that path (same device and inode), never a file someone else put there since.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterable
from pathlib import Path

from ..plumbing.files import write_atomically


class Outputs:
    """Writes the exposition and remembers which file it put at each path."""

    def __init__(self, log: logging.LoggerAdapter) -> None:
        self.log = log
        self._ours: dict[Path, tuple[int, int]] = {}  # path -> (st_dev, st_ino) of what we wrote there
        self._error: str | None = None

    def write(self, targets: Iterable[tuple[Path, int]], text: str) -> None:
        """``text`` to each ``(path, mode)``; a failure is logged once per change, not every write."""
        error = None
        for path, mode in targets:
            path = Path(path)
            try:
                write_atomically(path, text, mode=mode)
                st = os.lstat(path)
            except OSError as exc:
                error = f"cannot write metrics to {path}: {exc.strerror or exc}"
                continue
            self._ours[path] = (st.st_dev, st.st_ino)
        if error != self._error:
            if error:
                self.log.warning("%s", error)
            elif self._error:
                self.log.info("metrics written again")
            self._error = error

    def remove(self, path: Path | None) -> None:
        """Remove the file at ``path`` if it is the one we last wrote there; leave anything else."""
        if path is None or (ours := self._ours.pop(Path(path), None)) is None:
            return
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return
        except OSError as exc:
            self.log.warning("cannot remove the old metrics file %s: %s", path, exc.strerror or exc)
            return
        if (st.st_dev, st.st_ino) != ours:
            self.log.warning("not removing %s: it is no longer the metrics file this master wrote", path)
            return
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            self.log.warning("cannot remove the old metrics file %s: %s", path, exc.strerror or exc)


def remove_quietly(paths: Iterable[Path]) -> None:
    """Files of our own state dir (the children's answers): gone, whoever wrote them last."""
    for path in paths:
        with contextlib.suppress(OSError):
            path.unlink()
