"""The layers, enforced: every module's imports (top level and inside
functions alike) walked with `ast`, so a back import fails here, not in a
review (issue 14; STYLE: "a test enforces the layering").

    settings, errors      leaves: nothing of looop's
    store/                formats: store, errors, settings only
    wire                  the JSON-lines client: errors and store only
    screen/               the emulators: nothing above it
    tree/                 never the pulse, the CLI, or what reads the tree
                          from outside (registry, inbox, steering)
    pulse/                never the tree or the CLI (its link is a socket)
    cli/                  only `looop` (cli/run.py) imports the root itself
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parent.parent / "looop"


def module_name(path: Path, pkg: Path = PKG) -> str:
    parts = list(path.relative_to(pkg.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, pkg: Path = PKG) -> set[str]:
    """Every looop module (or module.attribute) `path` imports, anywhere in it."""
    me = module_name(path, pkg)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            # `from looop import settings` imports looop.settings
            found.update(f"{base}.{a.name}" for a in node.names)
    return {m for m in found if m == "looop" or m.startswith("looop.")}


def all_imports(pkg: Path = PKG) -> dict[str, set[str]]:
    return {module_name(p, pkg): imports_of(p, pkg) for p in sorted(pkg.rglob("*.py"))}


def layer(mod: str) -> str:
    """`looop.store.paths` → "store", `looop.settings.get` → "settings"."""
    parts = mod.split(".")
    return parts[1] if len(parts) > 1 else ""


# layer → the layers it may import (itself always); None: anything
ALLOWED: dict[str, set[str] | None] = {
    "settings": set(),
    "errors": set(),
    "store": {"errors", "settings"},
    "wire": {"errors", "store"},
    "screen": {"errors", "settings", "store"},
    "tree": {"errors", "settings", "store", "wire", "screen", "ui"},
    "pulse": {"errors", "settings", "store", "wire", "screen", "ui", "registry", "inbox", "steering"},
}
# single imports allowed across an otherwise closed line: (importer, imported)
EXCEPTIONS = {
    ("looop.cli.run", "looop.tree.supervisor.Root"),  # `looop` starts the root
}


def violations(pkg: Path = PKG) -> list[str]:
    bad = []
    for mod, deps in all_imports(pkg).items():
        mine = layer(mod)
        for dep in sorted(deps):
            theirs = layer(dep)
            if theirs in ("", mine) or (mod, dep) in EXCEPTIONS:
                continue
            allowed = ALLOWED.get(mine)
            if allowed is not None and theirs not in allowed:
                bad.append(f"{mod} imports {dep} ({mine} → {theirs})")
            if mine == "cli" and dep.startswith("looop.tree.supervisor"):
                bad.append(f"{mod} imports {dep} (only cli/run.py starts the root)")
    return bad


def test_no_module_imports_across_its_layer():
    assert violations() == []


def test_the_walker_sees_imports_inside_functions_and_relative_ones(tmp_path, monkeypatch):
    """The checker must be able to fail: a back import hidden in a function.
    (On a copy of the package: tests run in parallel, and a probe written
    into the real one would be seen by the other walks.)"""
    import shutil
    pkg = tmp_path / "looop"
    shutil.copytree(PKG, pkg, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.so"))
    (pkg / "store" / "_layering_probe.py").write_text(
        "def f():\n    from looop.tree.title import parse_title\n"
        "    from ..pulse import loop\n    return parse_title, loop\n")
    got = violations(pkg)
    assert "looop.store._layering_probe imports looop.tree.title.parse_title (store → tree)" in got
    assert "looop.store._layering_probe imports looop.pulse.loop (store → pulse)" in got


@pytest.mark.parametrize("mod", ["looop.settings", "looop.errors"])
def test_leaves_import_nothing_of_looop(mod):
    assert not [d for d in all_imports()[mod] if layer(d) not in ("", layer(mod))]
