"""Setting this process's title (what ``ps`` shows) for the processes that must stay small.

The ``setproctitle`` package's ``__init__`` imports ``logging``, which a worker never uses: in
the zygote that was about 1 MiB of heap every worker maps, and an at-fork handler every worker,
spare and recorder start runs (docs/benchmarks.md, "Worker memory"). The title is set by the
package's C module, loaded here from the package's directory without running its ``__init__``;
where that cannot be done (another layout, another build), by the package as usual.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
from collections.abc import Callable
from typing import Any


def _c_module() -> Any:
    package = importlib.util.find_spec("setproctitle")  # found, not run
    for directory in (package.submodule_search_locations or []) if package is not None else []:
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            path = os.path.join(directory, "_setproctitle" + suffix)
            if os.path.exists(path):
                spec = importlib.util.spec_from_file_location("setproctitle._setproctitle", path)
                if spec is None or spec.loader is None:
                    continue
                module = importlib.util.module_from_spec(spec)
                spec.loader.exec_module(module)
                return module
    raise ImportError("setproctitle's C module not found beside the package")


def _functions() -> tuple[Callable[[str], None], Callable[[], str]]:
    try:
        module = _c_module()
    except (ImportError, OSError):
        import setproctitle as module
    return module.setproctitle, module.getproctitle


set_title, get_title = _functions()
