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


def test_the_zygote_loads_no_logging_and_still_sets_titles():
    """The zygote's image holds no ``logging`` (about 1 MiB, and an at-fork handler in every
    worker): the worker writes its lines itself, and the title comes from setproctitle's C module
    without the package's ``__init__`` (plumbing/proc_title.py), which imports ``logging``."""
    code = ("import json, sys; import mirror_supervisor.worker.zygote\n"
            "from mirror_supervisor.plumbing import proc_title\n"
            "proc_title.set_title('mirror-supervisor: test title')\n"
            "cmdline = open('/proc/self/cmdline', 'rb').read().split(b'\\0')[0].decode()\n"
            "print(json.dumps([sorted(sys.modules), proc_title.get_title(), cmdline]))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    loaded, title, cmdline = json.loads(done.stdout)
    assert "mirror_supervisor.worker.worker" in loaded
    assert "logging" not in loaded and "setproctitle" not in loaded, "the package __init__ was not run"
    assert title == "mirror-supervisor: test title" and cmdline.startswith("mirror-supervisor: test title")
