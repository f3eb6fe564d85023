"""The suites a run can contain, in order.

A suite measures (``run``: Context -> JSON-able value, stored under ``key`` in the results) and
renders (``render``: the whole results dict -> markdown lines, tables only; [] when its key is
absent, so older JSON still renders). ``wanted`` decides from the options whether it runs.
Adding a suite: a ``suite_<name>.py`` with ``run``, a ``tables_<name>.py`` with ``render``, one
line in ``SUITES``, and its knobs in ``__main__.options`` (they are stored in the JSON's "args").
"""

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
