"""Another local user for the tests that run the master or its workers unprivileged."""

from __future__ import annotations

import os
import pwd
import shutil

import pytest


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
