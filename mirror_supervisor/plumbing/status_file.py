"""``<state_dir>/status.json``: the master writes it atomically when its table changes; the
``status`` command and the hand-run ``prune`` read it, so asking never disturbs the master and
never touches the NVR's database (docs/design.md, "Status").
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

from .files import STATUS_MODE, write_atomically

STATUS_FILE = "status.json"


def write(path: Path, snapshot: dict[str, Any], log: Any) -> None:
    """status.json, atomically; compact (the C encoder: an indented dump of 500 cameras cost the
    master 11 ms a write); a failure is a warning, never a reason to stop."""
    try:
        write_atomically(path, json.dumps(snapshot), mode=STATUS_MODE)
    except OSError as exc:
        log.warning("cannot write status file in %s: %s", path.parent, exc)


def remove(state_dir: Path) -> None:
    """At exit: a status file left behind would describe workers that are gone."""
    with contextlib.suppress(OSError):
        (Path(state_dir) / STATUS_FILE).unlink()


def read_status(state_dir: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((Path(state_dir) / STATUS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
