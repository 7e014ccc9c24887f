"""Dependencies flow one way: low modules never import the layers built on them.

Every ``import`` and ``from ... import`` in the package is read with ``ast`` (function-level, lazy
imports included), so a shortcut taken inside a function body is caught as well.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "nas"

# package (or module) -> packages it must never import
HIGH = ("nas.search", "nas.analysis", "nas.ablation", "nas.confirm", "nas.cli")
FORBIDDEN: dict[str, tuple[str, ...]] = {
    **{low: HIGH for low in ("nas.pareto", "nas.stats", "nas.text", "nas.config_validation", "nas.errors",
                             "nas.runtime", "nas.mixers", "nas.genome", "nas.layers", "nas.models", "nas.cost",
                             "nas.data",
                             "nas.train")},
    "nas.search": ("nas.analysis", "nas.ablation", "nas.confirm", "nas.cli"),
    "nas.analysis": ("nas.ablation", "nas.confirm", "nas.cli"),  # reads a confirmation's written summary only
    "nas.ablation": ("nas.analysis", "nas.confirm", "nas.cli"),
    "nas.confirm": ("nas.cli",),  # above both analysis and ablation: a confirmation is an ablation of a study
    "nas.supernet": ("nas.cli",),  # a one-shot study: trains, searches (nas.search) and confirms (nas.confirm)
}


def _module_name(path: Path, root: Path = PACKAGE) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, root: Path = PACKAGE) -> list[tuple[int, str]]:
    """``(line, imported module)`` for every import in ``path``, relative imports resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    module = _module_name(path, root)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            out.append((node.lineno, base))
            out += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]  # from nas import search
    return out


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _violations(root: Path = PACKAGE) -> list[str]:
    found = []
    for path in sorted(root.rglob("*.py")):
        module = _module_name(path, root)
        rules = [banned for owner, banned in FORBIDDEN.items() if _within(module, owner)]
        for line, imported in _imports(path, root):
            for banned in (b for rule in rules for b in rule):
                if _within(imported, banned):
                    found.append(f"{path.relative_to(root.parent)}:{line} imports {imported} ({banned} is above it)")
    return found


def test_every_import_points_down() -> None:
    assert _violations() == []


def test_nothing_imports_the_cli() -> None:
    importers = [f"{path.relative_to(PACKAGE.parent)}:{line}" for path in sorted(PACKAGE.rglob("*.py"))
                 if not _within(_module_name(path), "nas.cli") and _module_name(path) != "nas.__main__"
                 for line, imported in _imports(path) if _within(imported, "nas.cli")]
    assert importers == []


@pytest.mark.parametrize("source, banned", [
    ("from nas.analysis.pareto import front_trials\n", True),
    ("def f():\n    from ..analysis import pareto\n", True),
    ("from nas.pareto import front_trials\n", False),
])
def test_the_scan_sees_lazy_and_relative_imports(tmp_path: Path, source: str, banned: bool) -> None:
    fake = tmp_path / "nas"
    (fake / "search").mkdir(parents=True)
    (fake / "search" / "mod.py").write_text(source)
    assert bool(_violations(fake)) is banned
