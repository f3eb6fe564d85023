"""The helper processes behind the metrics, each forked by the master and dying with it.

- the volume probe with metrics on (:func:`probe_main`): the mirror's free space and the size and
  mtime of each camera's current and newly closed segments, left in a file in the state dir; the
  master reads it after reaping the probe, so it never touches the mirror volume itself;
- the coverage child (:func:`coverage_main`), once a minute: each camera's coverage of the last
  hour from the segment index and the files (:mod:`coverage`), left in a file in the state dir;
- the HTTP child (:func:`serve_main`): ``GET /metrics`` answers with the file the master last
  wrote, so a slow or hostile client can reach only this child, and that child bounds what any
  client can hold (:mod:`http_listener`); it also serves the peers' ``/cluster/health`` and the
  status page at ``/`` (:mod:`..web.route`), built from files in the state dir and the index.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..cluster import health as cluster_health
from ..plumbing import http_listener, lifeline, logs, titles, volume
from ..plumbing.files import STATUS_MODE, write_atomically
from ..web import route as status_page

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass
class Footage:
    """One camera's bytes on the mirror, as the volume probe saw them."""

    done: int = 0  # final sizes of the closed segments this master watched
    sizes: dict[str, int] = field(default_factory=dict)  # open segment and closed ones not yet final
    open: str | None = None
    newest_mtime: float | None = None

    @property
    def total(self) -> int:
        return self.done + sum(self.sizes.values())

    def segment(self, name: str | None) -> None:
        if name and name != self.open:
            self.open = name
            self.sizes.setdefault(name, 0)

    def closed(self) -> list[str]:
        return [name for name in self.sizes if name != self.open]

    def take(self, found: Mapping[str, Any], final: Iterable[str]) -> None:
        """Sizes and mtimes the probe found; ``final``: names closed before it looked."""
        for name, answer in found.items():
            if name in self.sizes and isinstance(answer, list) and len(answer) == 2:
                self.sizes[name] = max(self.sizes[name], int(answer[0]))  # a counter never goes down
                self.newest_mtime = max(self.newest_mtime or 0.0, float(answer[1]))
        for name in final:
            if name in self.sizes and name != self.open:
                self.done += self.sizes.pop(name)


def probe_main(directory: str, inherited_fds: tuple[int, ...], master_pid: int, out: str, sequence: int,
               files: Mapping[str, list[str]]) -> int:
    """The volume probe with metrics on: the same answer (exit status) as :func:`volume.probe_main`,
    and free space plus the size and mtime of ``files`` (camera -> segment names) left in ``out``."""
    code = volume.probe_main(directory, inherited_fds, master_pid)
    if code != 0:
        return code
    try:
        stats = os.statvfs(directory)
        answer: dict[str, Any] = {"sequence": sequence, "free": stats.f_bavail * stats.f_frsize, "cameras": {}}
        for camera, names in files.items():
            found = answer["cameras"][camera] = {}
            for name in names:
                if "/" in name or name in ("", ".", ".."):
                    continue
                try:
                    st = os.stat(os.path.join(directory, camera, name))
                except OSError:
                    continue
                found[name] = [st.st_size, st.st_mtime]
        write_atomically(Path(out), json.dumps(answer), mode=STATUS_MODE)
    except OSError:
        pass  # the volume answered; only the numbers are missing this time
    return code


def coverage_main(directory: str, cameras: list[str], window: float, out: str, sequence: int,
                  inherited_fds: tuple[int, ...], master_pid: int) -> int:
    """The coverage child: ``{"sequence", "cameras": {id: ratio}}`` in ``out``. A camera whose
    directory cannot be read is left out (no number rather than a wrong one)."""
    from ..footage import coverage

    lifeline.become_helper(titles.COVERAGE, inherited_fds, master_pid)
    now = time.time()
    try:
        report = coverage.compute(Path(directory), now - window, now, cameras=cameras, now=now, pool=False)
        ratios = {cam.id: cam.coverage_since_first for cam in report.cameras if cam.problem is None}
        write_atomically(Path(out), json.dumps({"sequence": sequence, "cameras": ratios}), mode=STATUS_MODE)
    except Exception as exc:  # noqa: BLE001 - the master logs the exit status; say why here
        logging.getLogger(logs.LOGGER_NAME).error("coverage for the metrics failed: %s: %s", type(exc).__name__, exc)
        return 1
    return 0


# -- the HTTP child -----------------------------------------------------------------------------

def serve_main(host: str, port: int, path: str, inherited_fds: tuple[int, ...], master_pid: int) -> int:
    """The metrics child: ``GET /metrics`` answers with the file the master last wrote, through
    a listener with a time-out, size and count limit on everything a client holds
    (:mod:`http_listener`)."""
    lifeline.become_helper(titles.metrics(host, port), inherited_fds, master_pid)
    try:
        server = http_listener.listen(host, port)
    except OSError as exc:
        logging.getLogger(logs.LOGGER_NAME).error("metrics server cannot listen on %s:%d: %s",
                                                  host, port, exc.strerror or exc)
        return 1
    routes: dict[str, http_listener.Route] = {
        "/metrics": http_listener.FileRoute(path, CONTENT_TYPE, missing="no metrics written yet"),
        **cluster_health.routes(Path(path).parent),  # /cluster/health: what a peer asks (cluster/health.py)
        **status_page.routes(Path(path).parent)}  # /: the status page (web/route.py)
    http_listener.Listener(server, routes).serve_forever()
    return 0
