"""The "before" code of a before/after benchmark: a commit of this repository, exported.

A suite that measures what a change bought runs the package of the commit before that change
(put first on ``PYTHONPATH``) beside the working tree's.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from .common import ROOT


def git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=True).stdout.strip()


def before_adding(path: str, rev: str | None, option: str) -> str:
    """``rev``, or the parent of the commit that added ``path`` (give the path the file had when
    it was added: the package was grouped into subpackages later); ``option`` names the way out."""
    if rev:
        return git("rev-parse", rev)
    first = git("log", "--diff-filter=A", "--format=%H", "--", path).split()
    if not first:
        raise SystemExit(f"no commit adds {path}; pass {option}")
    return git("rev-parse", first[-1] + "^")


def export(commit: str, into: Path) -> Path:
    """The package as ``commit`` had it, in ``into`` (for ``PYTHONPATH``)."""
    into.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", commit, "mirror_supervisor"],
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into
