"""The package's layering (docs/design.md, "Package map"): a module imports only from its own
package or from packages below it, never upward.

Read from the source with ``ast``, so an import inside a function (a lazy import) counts as much
as one at the top: it ties the two packages together just the same.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "mirror_supervisor"

# Lowest first. A name is a subpackage or a module directly in mirror_supervisor/; names in one
# tuple share a layer and may import each other.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("__init__", "plumbing"),
    ("cameras",),
    ("footage",),
    ("settings", "setting_values", "cluster"),
    ("worker",),
    ("retention",),
    ("web",),
    ("metrics",),
    ("master",),
    ("check", "status", "coverage_command", "timeargs", "cli", "__main__"),
)


def layer_of(unit: str) -> int:
    for number, names in enumerate(LAYERS):
        if unit in names:
            return number
    raise AssertionError(f"mirror_supervisor/{unit} is in no layer: add it to LAYERS and to docs/design.md")


def unit_of(module: str) -> str:
    """``mirror_supervisor.footage.index`` -> ``footage``; the package itself -> ``__init__``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def module_name(path: Path, root: Path = PACKAGE) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(root: Path, name: str) -> bool:
    return (root / f"{name}.py").is_file() or (root / name / "__init__.py").is_file()


def imported(path: Path, root: Path = PACKAGE) -> set[str]:
    """The mirror_supervisor modules (or packages) that ``path`` imports, absolute."""
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.split(".")[0] == "mirror_supervisor"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            if target.split(".")[0] != "mirror_supervisor":
                continue
            if target == "mirror_supervisor":  # from mirror_supervisor import footage, __version__
                found |= {f"{target}.{alias.name}" if _is_module(root, alias.name) else target for alias in node.names}
            else:
                found.add(target)
    return found


def upward_imports(root: Path = PACKAGE) -> list[str]:
    """Every import that goes up a layer, as ``importer -> imported``."""
    wrong = []
    for path in sorted(root.rglob("*.py")):
        here = unit_of(module_name(path, root))
        for target in sorted(imported(path, root)):
            there = unit_of(target)
            if layer_of(there) > layer_of(here):
                wrong.append(f"{module_name(path, root)} -> {target}")
    return wrong


def test_no_module_imports_a_higher_layer():
    assert upward_imports() == []


def test_every_package_and_top_level_module_has_a_layer():
    units = {path.stem for path in PACKAGE.glob("*.py")} | {path.parent.name for path in PACKAGE.glob("*/__init__.py")}
    for unit in units:
        layer_of(unit)
    # The layers name only what exists, so a renamed package cannot leave a rule that checks nothing.
    assert {name for names in LAYERS for name in names} == units


def test_the_check_sees_an_upward_import(tmp_path):
    """The rule can fail: a plumbing module that imports the master is found."""
    package = tmp_path / "mirror_supervisor"
    (package / "plumbing").mkdir(parents=True)
    (package / "master").mkdir()
    for init in (package / "__init__.py", package / "plumbing" / "__init__.py", package / "master" / "__init__.py"):
        init.write_text("")
    (package / "master" / "loop.py").write_text("from ..plumbing import files\n")
    (package / "plumbing" / "files.py").write_text("def f():\n    from ..master import loop\n")
    assert upward_imports(package) == ["mirror_supervisor.plumbing.files -> mirror_supervisor.master"]


def test_the_design_document_maps_every_package_in_this_order():
    """docs/design.md's "Package map" is this table in words: same packages, same order."""
    text = (PACKAGE.parent / "docs" / "design.md").read_text(encoding="utf-8")
    section = text.split("## Package map", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ") and line[2].isdigit()]
    named = {int(row.split("|")[1]): row.split("|")[2] for row in rows}
    for number, names in enumerate(LAYERS):
        for name in names:
            if name in ("__init__", "__main__"):
                continue
            shown = f"`{name}/`" if (PACKAGE / name).is_dir() else f"`{name}.py`"
            assert shown in named.get(number, ""), f"docs/design.md's package map lacks {shown} in layer {number}"
