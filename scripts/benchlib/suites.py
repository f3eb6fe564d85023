"""The suites a run can contain, in order.

A suite measures (``run``: Context -> JSON-able value, stored under ``key`` in the results) and
renders (``render``: the whole results dict -> markdown lines, tables only; [] when its key is
absent, so older JSON still renders). ``wanted`` decides from the options whether it runs.

A ``standalone`` suite's value carries its own provenance (options, machine, date, commit,
duration, leftovers) and is rendered after the targets. A run of standalone suites only (e.g.
``scripts/bench --scale``) replaces just their keys in the existing JSON next to the report; a run
that leaves a standalone suite out carries that suite's previous value over. The other suites
share the run's top-level "machine" and "args" and are always published together.
Adding a suite: a ``suite_<name>.py`` with ``run``, a ``tables_<name>.py`` with ``render``, one
line in ``SUITES``, and its knobs in ``__main__.options`` (they are stored in the JSON's "args").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import (
    forking,
    suite_coverage,
    suite_coverage_hour,
    suite_real,
    suite_resume,
    suite_scale,
    suite_standin,
    suite_status_page,
    suite_worker_pages,
    tables_fork,
    tables_real,
    tables_resume,
    tables_scale,
    tables_standin,
    tables_worker_pages,
)
from .context import Context


@dataclass(frozen=True)
class Suite:
    key: str
    run: Callable[[Context], Any]
    render: Callable[[dict[str, Any]], list[str]]
    wanted: Callable[[Context], bool]
    standalone: bool = False


SUITES = [
    Suite("real", suite_real.run, tables_real.render, lambda c: not c.opts.skip_real),
    Suite("standin", suite_standin.run, tables_standin.render, lambda c: not c.opts.skip_standin),
    Suite("fork_harness", forking.run, tables_fork.render,
          lambda c: not c.opts.skip_fork and any(cls.name == "ours" for cls in c.systems)),
    Suite("scale", suite_scale.run, tables_scale.render, lambda c: not c.opts.skip_scale, standalone=True),
    Suite("resume", suite_resume.run, tables_resume.render, lambda c: not c.opts.skip_resume, standalone=True),
    Suite("coverage", suite_coverage.run, suite_coverage.render, lambda c: not c.opts.skip_coverage, standalone=True),
    Suite("coverage_hour", suite_coverage_hour.run, suite_coverage_hour.render,
          lambda c: not c.opts.skip_coverage_hour, standalone=True),
    Suite("worker_pages", suite_worker_pages.run, tables_worker_pages.render,
          lambda c: not c.opts.skip_worker_pages, standalone=True),
    Suite("status_page", suite_status_page.run, suite_status_page.render,
          lambda c: not c.opts.skip_status_page, standalone=True),
]
