"""The repository's own rules that no other test would notice breaking."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_test_modules_have_unique_names():
    """pytest imports test files by base name (no packages here): two ``test_x.py`` in different
    folders make the whole run stop at collection."""
    names = Counter(path.name for path in (ROOT / "tests").rglob("test_*.py"))
    assert [name for name, count in names.items() if count > 1] == []


def test_no_package_module_is_over_400_lines():
    """One module, one responsibility: past 400 lines a module is doing two things."""
    long = {str(p.relative_to(ROOT)): n for p in (ROOT / "mirror_supervisor").rglob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > 400}
    assert long == {}
