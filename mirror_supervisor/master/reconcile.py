"""Which rows are wanted, pure: the mirrored rows split into recordable and refused.

Kept apart from reading the database so the rule can be tested on plain rows. What then happens to
each camera (start, stop, restart on a changed argv, leave alone) is its slot's rule (slot.py).
"""

from __future__ import annotations

from collections.abc import Iterable

from ..cameras.camera import Camera


def wanted(
    cameras: Iterable[Camera], recorder_enabled: bool, fold_case: bool = False
) -> tuple[dict[str, Camera], dict[str, Camera]]:
    """Split rows into (cameras to record, mirrored rows that cannot be recorded).

    A duplicated id is refused for every row that carries it: two workers writing one directory
    would overwrite each other's segments, and picking one row would be a guess. With
    ``fold_case`` (a mirror volume that ignores case, such as a vfat or exFAT disk) ids that
    differ only in case are duplicates too: ``Gate`` and ``gate`` would be one directory there.
    """
    if not recorder_enabled:
        return {}, {}
    rows = [camera for camera in cameras if camera.mirrored]
    groups: dict[str, set[str]] = {}
    counts: dict[str, int] = {}
    for camera in rows:
        groups.setdefault(_directory_key(camera.id, fold_case), set()).add(camera.id)
        counts[camera.id] = counts.get(camera.id, 0) + 1
    good: dict[str, Camera] = {}
    bad: dict[str, Camera] = {}
    for camera in rows:
        problem = _duplicate_problem(camera.id, counts[camera.id], groups[_directory_key(camera.id, fold_case)])
        if problem:
            bad[camera.id] = Camera(camera.id, camera.name, mirrored=True, retention_hours=camera.retention_hours,
                                    problem=problem)
        elif camera.problem:
            bad[camera.id] = camera
        else:
            good[camera.id] = camera
    return good, bad


def _directory_key(camera_id: str, fold_case: bool) -> str:
    return camera_id.casefold() if fold_case else camera_id


def _duplicate_problem(camera_id: str, count: int, same_directory: set[str]) -> str | None:
    """Why this id cannot have its own directory, or None."""
    if count > 1:
        return "duplicate id: more than one row has it"
    if len(same_directory) > 1:
        others = ", ".join(repr(other) for other in sorted(same_directory - {camera_id})[:5])
        return (f"duplicate id: the mirror volume ignores upper/lower case, so {camera_id!r} and {others} "
                "would share one directory; rename all but one")
    return None
