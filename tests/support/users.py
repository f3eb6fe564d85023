"""Another local user for the tests that run the master or its workers unprivileged.

Root may clone the project where no other user can reach it (its home, ``mktemp -d``: mode 0700),
and the suite's interpreter may live there too (a pyenv under ``/root``). Another user then
cannot run ``sys.executable`` or import the package from the checkout: a master started that way
dies at once with ``No module named mirror_supervisor`` (or runs on a mix of two Pythons: the
binary's ``libpython`` is looked up in the system's library path when its own is out of reach).

So a test that starts our code as another user runs :class:`UserPython` instead: the suite's own
interpreter, its standard library, the installed dependencies and a copy of the package source,
laid out as a virtualenv in a temporary directory that every user can reach (hard links where
the file system allows them, copies otherwise; about 0.5 s, once per session), and
:meth:`UserPython.require` first checks that the user really can run it and import every module
of the package, so a test that could not start what it tests says why at once instead of waiting.
"""

from __future__ import annotations

import json
import os
import platform
import pwd
import shutil
import stat
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Mapping
from pathlib import Path

import pytest

import mirror_supervisor


def unprivileged(name: str = "nobody") -> pwd.struct_passwd:
    """``name``'s passwd entry; skips the test where switching to it cannot be done here (not root,
    no ``setpriv``, no such user)."""
    if os.geteuid() != 0:
        pytest.skip("needs root to run as another user")
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is not installed")
    try:
        return pwd.getpwnam(name)
    except KeyError:
        pytest.skip(f"no user {name!r} here")


def as_user(uid: int, gid: int) -> list[str]:
    """The command prefix that runs a command as ``uid``/``gid`` with no supplementary groups.

    Note: setpriv itself still holds root's capabilities when it execs, so it can start a program
    in a directory the user cannot reach; that program then fails to read its own files. Never
    take "it started" as "the user can run it": :meth:`UserPython.require` checks more."""
    return ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups"]


def closed_to_others(path: Path) -> Path | None:
    """The first of ``path`` and its parents that other users cannot search (no ``o+x``), if any."""
    path = path.resolve()
    for part in [*reversed(path.parents), path]:
        if not part.stat().st_mode & stat.S_IXOTH:
            return part
    return None


def shared_tmpdir(prefix: str) -> Path:
    """A fresh directory, mode 0755, that every user can reach: in the temporary directory
    (``TMPDIR``) when that is reachable, else in ``/tmp``; skips, naming why, when neither is."""
    tried = []
    for base in dict.fromkeys([Path(tempfile.gettempdir()), Path("/tmp")]):
        if not base.is_dir():
            tried.append(f"{base} is missing")
            continue
        closed = closed_to_others(base)
        if closed is None:
            path = Path(tempfile.mkdtemp(prefix=prefix, dir=base))
            path.chmod(0o755)
            return path
        tried.append(f"{closed} is mode {stat.S_IMODE(closed.stat().st_mode):04o}")
    pytest.skip(f"no temporary directory that other users can reach: {'; '.join(tried)}")


# What the daemon never imports from the standard library, left out of the copy (and site-packages,
# dist-packages: the dependencies come from the suite's own environment).
_NOT_STDLIB = ("site-packages", "dist-packages", "test", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3",
               "config-*")

_PROBE = """
import importlib, json, pkgutil, sys
print(json.dumps({"version": sys.version, "prefix": sys.prefix}), flush=True)
import psutil, setproctitle, sqlite_utils, prometheus_client
import mirror_supervisor
for module in pkgutil.walk_packages(mirror_supervisor.__path__, "mirror_supervisor."):
    if module.name != "mirror_supervisor.__main__":
        importlib.import_module(module.name)
print(json.dumps({"package": mirror_supervisor.__file__}), flush=True)
"""


def _link(source: str | os.PathLike[str], target: str | os.PathLike[str]) -> None:
    """A hard link (no bytes copied; the files are root's and read-only to everyone else), or a
    copy where the file system refuses one (another device, protected hard links)."""
    try:
        os.link(source, target, follow_symlinks=True)
    except OSError:
        shutil.copy2(source, target)


def _not_ours(directory: str, names: list[str]) -> set[str]:
    """In site-packages: the editable install of the checkout (a path into it), which the copy replaces."""
    return {name for name in names if name.startswith(("__editable__", "mirror_supervisor", "mirror-supervisor"))
            or name.endswith(".egg-link")}


class UserPython:
    """The suite's interpreter with this package, runnable by any user: ``python`` and ``env()``."""

    def __init__(self, root: Path) -> None:
        """Lays it out in ``root`` (a directory every user can reach)."""
        self.root = root
        version = f"python{sys.version_info.major}.{sys.version_info.minor}"
        # The base interpreter (a venv's python is a link to it), its libpython when it has one,
        # and its standard library where the binary looks for it (lib/pythonX.Y next to bin/).
        base = root / "python"
        binary = Path(os.path.realpath(getattr(sys, "_base_executable", sys.executable)))
        (base / "bin").mkdir(parents=True)
        _link(binary, base / "bin" / binary.name)
        shutil.copytree(sysconfig.get_paths()["stdlib"], base / "lib" / version, symlinks=True,
                        ignore=shutil.ignore_patterns(*_NOT_STDLIB), copy_function=_link)
        self._env: dict[str, str] = {}
        libdir, soname = sysconfig.get_config_var("LIBDIR"), sysconfig.get_config_var("INSTSONAME")
        if libdir and soname and os.path.isfile(os.path.join(libdir, soname)):
            _link(os.path.join(libdir, soname), base / "lib" / soname)
            # The binary's run path names the original directory, which the user may not reach;
            # the loader would then take the system's libpython of another patch release.
            self._env["LD_LIBRARY_PATH"] = str(base / "lib")
        # A virtualenv on it: the installed dependencies, and this package copied from the
        # checkout in place of its editable install.
        venv = root / "venv"
        site = venv / "lib" / version / "site-packages"
        (venv / "bin").mkdir(parents=True)
        (venv / "bin" / "python").symlink_to(base / "bin" / binary.name)
        (venv / "pyvenv.cfg").write_text(f"home = {base / 'bin'}\ninclude-system-site-packages = false\n"
                                         f"version = {platform.python_version()}\n")
        shutil.copytree(sysconfig.get_paths()["purelib"], site, symlinks=True, ignore=_not_ours, copy_function=_link)
        package = Path(mirror_supervisor.__file__).parent
        shutil.copytree(package, site / package.name)  # copies, with their mtimes: the .pyc files stay valid
        self.python = venv / "bin" / "python"
        self.package = site / package.name
        self._ready: set[tuple[int, int]] = set()

    def env(self, base: Mapping[str, str]) -> dict[str, str]:
        """``base`` plus what the interpreter needs (its library path)."""
        env = dict(base)
        for name, value in self._env.items():
            env[name] = f"{value}:{env[name]}" if env.get(name) else value
        return env

    def argv(self, uid: int, gid: int, *args: str) -> list[str]:
        """``python -m mirror_supervisor ARGS`` as ``uid``/``gid``, checked first (:meth:`require`).
        Run it with ``cwd`` outside the checkout (``-m`` puts the working directory on the path)."""
        self.require(uid, gid)
        return [*as_user(uid, gid), str(self.python), "-m", "mirror_supervisor", *args]

    def require(self, uid: int, gid: int) -> None:
        """Skips the test when ``uid`` cannot run the interpreter at all (the reason, and where it
        lies, in one line); fails it when the interpreter runs but is not the suite's, or cannot
        import every module of the package. Checked once per user and session."""
        if (uid, gid) in self._ready:
            return
        try:
            who = f"user {pwd.getpwuid(uid).pw_name} (uid {uid})"
        except KeyError:
            who = f"uid {uid}"
        closed = closed_to_others(self.python.parent)
        if closed is not None:
            pytest.skip(f"{who} cannot reach the test interpreter {self.python}: {closed} is not searchable by others")
        run = subprocess.run([*as_user(uid, gid), str(self.python), "-c", _PROBE], capture_output=True, text=True,
                             timeout=60, cwd="/", env=self.env({"PATH": os.environ.get("PATH", "/usr/bin:/bin")}))
        lines = run.stdout.splitlines()
        error = (run.stderr.strip().splitlines() or [f"exit status {run.returncode}"])[-1]
        if not lines:
            pytest.skip(f"{who} cannot run the test interpreter {self.python}: {error}")
        started = json.loads(lines[0])
        venv = self.python.parent.parent
        if Path(started["prefix"]) != venv:  # it started, but could not read its pyvenv.cfg
            pytest.skip(f"{who} cannot read the test interpreter's {venv / 'pyvenv.cfg'} (it ran with prefix "
                        f"{started['prefix']})")
        if started["version"] != sys.version:
            pytest.fail(f"{who} runs another Python from {self.python}: {started['version']!r}, not {sys.version!r}")
        if run.returncode != 0 or len(lines) < 2:
            pytest.fail(f"{who} cannot import mirror_supervisor from {self.package}: {error}")
        if not json.loads(lines[1])["package"].startswith(f"{self.package}{os.sep}"):
            pytest.fail(f"{who} imports mirror_supervisor from elsewhere: {lines[1]}")
        self._ready.add((uid, gid))
