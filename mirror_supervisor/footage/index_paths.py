"""Where the segment index lives: its directory, file name and modes, and nothing else.

Apart from :mod:`index` so that a module which only needs the place (a worker giving the
directory to ``--user`` before it drops root, :mod:`privileges`) does not import ``sqlite3``: a
worker never opens the index (docs/design.md, "Coverage"), and every module it imports costs
every camera the pages that module touches.
"""

from __future__ import annotations

from pathlib import Path

INDEX_DIR = ".mirror-supervisor"  # not a camera id: ids never start with a dot
INDEX_NAME = "index.sqlite3"
INDEX_DIR_MODE = 0o750


def index_dir(mirror_dir: Path) -> Path:
    return Path(mirror_dir) / INDEX_DIR


def index_path(mirror_dir: Path) -> Path:
    return index_dir(mirror_dir) / INDEX_NAME
