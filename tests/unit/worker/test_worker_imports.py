"""What the worker module loads (docs/design.md, "Coverage"): never sqlite3 or the segment index.

A worker does not open the index: the master's index writer child writes every camera's rows.
Each module a worker imports costs every camera the pages it touches; sqlite3, a connection and
its caches were about 0.9 MiB per worker. Checked in a fresh interpreter, which is what a worker
forked from a small zygote sees (a worker forked from the full master inherits the master's
modules, but touches none of sqlite3's pages: tests/integration/test_index_writer_child.py).
"""

from __future__ import annotations

import json
import subprocess
import sys

NEVER_IN_A_WORKER = ("sqlite3", "_sqlite3", "mirror_supervisor.footage.index", "mirror_supervisor.footage.index_writer",
                     "mirror_supervisor.footage.mp4", "mirror_supervisor.footage.coverage")


def test_the_worker_module_loads_neither_sqlite3_nor_the_index():
    code = "import json, sys; import mirror_supervisor.worker.worker; print(json.dumps(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    loaded = set(json.loads(done.stdout))
    assert "mirror_supervisor.worker.worker" in loaded
    assert loaded.isdisjoint(NEVER_IN_A_WORKER), sorted(loaded & set(NEVER_IN_A_WORKER))
