"""The layers of docs/architecture.md: every module is in the table, imports only from its own
layer or below, and imports alone (in a fresh interpreter, no other prmrl module loaded)."""

from __future__ import annotations

import ast
import os
import re
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"


def layer_table() -> dict[str, int]:
    """module -> layer number, from the table in docs/architecture.md."""
    text = (REPO / "docs" / "architecture.md").read_text()
    table = {}
    for line in text.splitlines():
        m = re.match(r"\|\s*(\d+) \w+\s*\|(.*?)\|", line)
        if m:
            for mod in re.findall(r"`(prmrl[\w.]*)`", m.group(2)):
                table[mod] = int(m.group(1))
    return table


def modules() -> dict[str, Path]:
    out = {}
    for p in sorted((SRC / "prmrl").rglob("*.py")):
        name = ".".join(p.relative_to(SRC).with_suffix("").parts)
        out[name.removesuffix(".__init__")] = p
    return out


def _type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING")


def imported_prmrl_modules(path: Path, name: str, known: set[str]) -> set[str]:
    """Every prmrl module ``path`` imports, at module level or inside functions (a lazy import is
    still a dependency), except under ``if TYPE_CHECKING:``."""
    tree = ast.parse(path.read_text())
    skip = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and _type_checking(node)
            for child in node.body for n in ast.walk(child)}
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "prmrl"}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            if base.split(".")[0] != "prmrl":
                continue
            for a in node.names:       # `from prmrl.x import y`: y may be a module itself
                found.add(f"{base}.{a.name}" if f"{base}.{a.name}" in known else base)
    return found - {name}


def test_every_module_has_a_layer():
    table, mods = layer_table(), modules()
    assert table, "no layer table found in docs/architecture.md"
    missing = sorted(set(mods) - set(table))
    assert not missing, f"modules without a layer in docs/architecture.md: {missing}"
    stale = sorted(set(table) - set(mods))
    assert not stale, f"docs/architecture.md lists modules that do not exist: {stale}"


def test_no_module_imports_from_a_layer_above_its_own():
    table, mods = layer_table(), modules()
    bad = []
    for name, path in mods.items():
        for dep in sorted(imported_prmrl_modules(path, name, set(mods))):
            if dep in table and table[dep] > table.get(name, 99):
                bad.append(f"{name} (layer {table[name]}) imports {dep} (layer {table[dep]})")
    assert not bad, "\n".join(bad)


def test_the_checker_sees_lazy_imports_and_skips_type_checking(tmp_path):
    p = tmp_path / "m.py"
    p.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from prmrl.cli import x\n"
                 "def f():\n    from prmrl.jobs import demo\n    import prmrl.rl.core\n")
    got = imported_prmrl_modules(p, "prmrl.m", {"prmrl.jobs.demo"})
    assert got == {"prmrl.jobs.demo", "prmrl.rl.core"}


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_every_module_imports_alone():
    """Each module in a forked child of an interpreter that has loaded the third-party stack
    (torch, transformers) but no prmrl module, so an import circle or a missing import of
    a module shows up whatever order the suite imported things in."""
    import subprocess

    code = f"""
import os, sys, importlib, traceback
sys.path.insert(0, {str(SRC)!r})
import torch, transformers, accelerate, yaml  # noqa: the heavy third-party stack, shared by the children
assert not [m for m in sys.modules if m.split('.')[0] == 'prmrl']
failed = []
for name in {sorted(modules())!r}:
    pid = os.fork()
    if pid == 0:
        try:
            importlib.import_module(name)
            os._exit(0)
        except BaseException:
            traceback.print_exc()
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    if status != 0:
        failed.append(name)
print("FAILED", failed)
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "FAILED []" in r.stdout, r.stdout[-500:] + r.stderr[-3000:]
