"""Running a test's body in a forked child: a fresh process with this one thread.

Root acts as a directory's owner only while no other thread runs (``plumbing/owner.py``: effective
ids are per process); a test that exercises that in the pytest process would depend on what
earlier tests left running (a daemon thread of a listener or an indexer). The child inherits
everything else (imports, fixtures' files) and reports its exception or its result back.
"""

from __future__ import annotations

import os
import pickle
import select
import signal
import time
import traceback
from collections.abc import Callable
from typing import Any


def in_fork(action: Callable[[], Any], timeout: float = 60.0) -> Any:
    """``action()``'s return value, computed in a fork; its exception re-raised here as an
    AssertionError with the child's traceback."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            os.close(read_end)
            try:
                payload = pickle.dumps((True, action()))
            except BaseException:  # noqa: BLE001 - everything goes back to the test
                payload = pickle.dumps((False, traceback.format_exc()))
            with os.fdopen(write_end, "wb") as pipe:
                pipe.write(payload)
        except BaseException:  # noqa: BLE001
            code = 70
        finally:
            os._exit(code)
    os.close(write_end)
    chunks, deadline = [], time.monotonic() + timeout
    with os.fdopen(read_end, "rb") as pipe:
        while select.select([pipe], [], [], max(0.0, deadline - time.monotonic()))[0]:
            chunk = os.read(pipe.fileno(), 65536)
            if not chunk:
                break
            chunks.append(chunk)
        else:
            os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    data = b"".join(chunks)
    assert data, f"the forked test body ended without an answer within {timeout:g}s (status {status:#x})"
    ok, value = pickle.loads(data)
    if not ok:
        raise AssertionError(f"in the forked test body:\n{value}")
    return value
