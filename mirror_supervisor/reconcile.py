"""The reconcile diff (SPEC section 6), pure: what should run versus what runs.

Kept apart from the master so the rules can be tested without forking: which cameras are wanted,
and for each camera whether to start, stop, restart or leave its worker alone.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass

from .camera import Camera


@dataclass(frozen=True)
class Plan:
    start: tuple[str, ...] = ()
    stop: tuple[str, ...] = ()
    restart: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.start or self.stop or self.restart)


def wanted(cameras: Iterable[Camera], recorder_enabled: bool) -> tuple[dict[str, Camera], dict[str, Camera]]:
    """Split rows into (cameras to record, mirrored rows that cannot be recorded).

    A duplicated id is refused for every row that carries it: two workers writing one directory
    would overwrite each other's segments, and picking one row would be a guess.
    """
    if not recorder_enabled:
        return {}, {}
    seen: dict[str, int] = {}
    rows = [camera for camera in cameras if camera.mirrored]
    for camera in rows:
        seen[camera.id] = seen.get(camera.id, 0) + 1
    good: dict[str, Camera] = {}
    bad: dict[str, Camera] = {}
    for camera in rows:
        if seen[camera.id] > 1:
            bad[camera.id] = Camera(camera.id, camera.name, mirrored=True, problem="duplicate id: more than one row has it")
        elif camera.problem:
            bad[camera.id] = camera
        else:
            good[camera.id] = camera
    return good, bad


def diff(running: Mapping[str, Hashable], desired: Mapping[str, Hashable]) -> Plan:
    """Compare recording keys per camera id; an unchanged key means the worker is left alone."""
    start = tuple(sorted(cid for cid in desired if cid not in running))
    stop = tuple(sorted(cid for cid in running if cid not in desired))
    restart = tuple(sorted(cid for cid in running if cid in desired and running[cid] != desired[cid]))
    return Plan(start=start, stop=stop, restart=restart)
