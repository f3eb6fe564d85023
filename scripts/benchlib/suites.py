"""The suites a run can contain, in order. A suite measures (``run``: Context -> JSON-able data,
stored under ``key`` in the results) and renders (``render``: results -> markdown lines, tables
only). Adding a suite is one module for each of the two, plus one line here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from . import forking, suite_real, suite_standin, tables_fork, tables_real, tables_standin
from .context import Context


@dataclass(frozen=True)
class Suite:
    key: str
    run: Callable[[Context], Any]
    render: Callable[[dict[str, Any]], list[str]]
    wanted: Callable[[Context], bool]


SUITES = [
    Suite("real", suite_real.run, tables_real.render, lambda c: not c.opts.skip_real),
    Suite("standin", suite_standin.run, tables_standin.render, lambda c: not c.opts.skip_standin),
    Suite("fork_harness", forking.run, tables_fork.render,
          lambda c: any(cls.name == "ours" for cls in c.systems)),
]
