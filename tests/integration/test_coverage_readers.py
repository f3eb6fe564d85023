"""Coverage read by someone who does not own the segments: an operator in the mirror's group, or
anyone reading the NVR's own recordings (``--primary-dir``). The kernel grants ``O_NOATIME`` to
a file's owner (and root) only, so such a reader must get the same answer as root without it.

Real ffmpeg writes the segments; the reader is the user ``nobody``. Two ways to become it: a
fork of this process that gives up root (runs wherever the tests run as root) and ``setpriv``
with this interpreter, which that user must be able to start (skipped, saying why, where not).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from support import recordings
from support.forked import in_fork
from support.users import unprivileged

from mirror_supervisor import cli
from mirror_supervisor.footage import coverage, coverage_report  # noqa: F401 - imported before a fork uses them
from mirror_supervisor.footage.coverage_report import rfc3339

NVR_UID = 54321  # the NVR's user owns its recordings; no passwd entry needed
SEGMENTS, SECONDS = 3, 3
CHILD_LIMIT = 120  # seconds; a child still running then is killed and the test fails


@pytest.fixture
def recorded():
    """A mirror and a primary dir of real ffmpeg segments, 0644, the mirror's root's, the
    primary's the NVR user's, under a directory anyone can traverse (tmp_path is root's only)."""
    top = Path(tempfile.mkdtemp(prefix="ms-readers-"))
    top.chmod(0o755)
    start = int(time.time()) - 86400
    made = recordings.ffmpeg_segments(top / "mirror" / "cam", start, SEGMENTS, SECONDS)
    (top / "primary" / "cam").mkdir(parents=True)
    for path in made:
        path.chmod(0o644)
        copy = Path(shutil.copy2(path, top / "primary" / "cam" / path.name))
        os.chown(copy, NVR_UID, NVR_UID)
    for directory in (top / "mirror", top / "mirror" / "cam", top / "primary", top / "primary" / "cam"):
        directory.chmod(0o755)
    yield top, start
    shutil.rmtree(top, ignore_errors=True)


def coverage_argv(top: Path, start: int) -> list[str]:
    window = ["--from", rfc3339(float(start)), "--to", rfc3339(float(start + SEGMENTS * SECONDS))]
    return ["coverage", "--mirror-dir", str(top / "mirror"), "--primary-dir", str(top / "primary"),
            "--state-dir", str(top / "state"), "--json", *window]


def in_child(action: Callable[[], str], user: pwd.struct_passwd | None) -> str:
    """``action()``'s text, run in a fork of this process that is ``user`` (no groups) when given."""

    def as_user() -> str:
        if user is not None:
            os.setgroups([])
            os.setresgid(user.pw_gid, user.pw_gid, user.pw_gid)
            os.setresuid(user.pw_uid, user.pw_uid, user.pw_uid)
        return action()

    return in_fork(as_user, timeout=CHILD_LIMIT)


def run_command(argv: list[str]) -> str:
    """The ``coverage`` command as its entry point runs it: exit status and standard output."""
    with contextlib.redirect_stdout(io.StringIO()) as out:
        code = cli.main(argv)
    return json.dumps({"code": code, "out": json.loads(out.getvalue())})


def summary(result: dict) -> dict:
    """What must not depend on who reads: per camera, coverage, gaps, invalid, the primary's seconds."""
    return {cam["id"]: {key: cam[key] for key in ("covered_seconds", "coverage", "gaps", "invalid", "primary", "problem")}
            for cam in result["out"]["cameras"]}


def test_coverage_run_by_a_reader_who_owns_nothing_agrees_with_root(recorded):
    user = unprivileged()
    top, start = recorded
    argv = coverage_argv(top, start)
    as_root = json.loads(in_child(lambda: run_command(argv), None))
    as_reader = json.loads(in_child(lambda: run_command(argv), user))
    cam = summary(as_root)["cam"]
    assert cam["coverage"] > 0.9 and cam["invalid"] == [], cam  # root's answer is the right one
    assert cam["primary"]["both_seconds"] > 0.9 * SEGMENTS * SECONDS, cam
    assert (as_reader["code"], summary(as_reader)) == (as_root["code"], summary(as_root))


def test_the_installed_command_run_as_another_user_agrees_with_root(recorded, user_python):
    """The same through ``setpriv`` and ``python -m mirror_supervisor``: a process that starts as that user
    (from an interpreter it can reach: the checkout may be private to root, see ``support/users.py``)."""
    user = unprivileged()
    top, start = recorded
    env = {**os.environ, "HELDAR_RECORDINGS_DIR": ""}
    outputs = []
    for argv, run_env in (([sys.executable, "-m", "mirror_supervisor", *coverage_argv(top, start)], env),
                          (user_python.argv(user.pw_uid, user.pw_gid, *coverage_argv(top, start)), user_python.env(env))):
        done = subprocess.run(argv, capture_output=True, text=True, timeout=CHILD_LIMIT, env=run_env, cwd="/")
        assert done.returncode == 0, done.stderr
        outputs.append(summary({"out": json.loads(done.stdout)}))
    assert outputs[0]["cam"]["coverage"] > 0.9 and outputs[0]["cam"]["invalid"] == [], outputs[0]
    assert outputs[1] == outputs[0]
