"""What every suite gets: the options, a work directory, and the systems to compare."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

from .systems import System


@dataclass
class Context:
    opts: SimpleNamespace  # the resolved options; ``opts.__dict__`` is stored as the run's "args"
    work: Path  # temporary; everything a suite creates lives under it
    systems: list[type[System]]
