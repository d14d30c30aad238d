#!/usr/bin/env python3
"""Write constraints.txt: the exact version of every package installed in a venv.

    python scripts/lock.py                     # from .venv, into constraints.txt
    python scripts/lock.py --python PATH --output FILE

It runs ``pip freeze --exclude-editable`` with the venv's Python, drops prmrl itself, strips local
version labels (``torch==2.13.0+cpu`` -> ``torch==2.13.0``: ``==2.13.0`` still matches the local
CPU build, and a machine without it gets the same release) and writes the result sorted, under a
header with the date, the command and the Python it came from.

``make setup`` installs with ``pip install -c constraints.txt -e ".[test]"``, so a fresh machine
gets this stack; pyproject.toml keeps version ranges for library users. To move the stack on:
upgrade in the venv (``.venv/bin/pip install -U transformers``), rerun the tests, then ``make lock``
and commit constraints.txt with the README's re-measured figures.
"""

from __future__ import annotations

import argparse
import datetime
import re
import shlex
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SELF = {"prmrl"}  # the project itself is never locked
# "name==version" as pip freeze writes it; anything else (a URL, a path) is reported, not written.
PINNED = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;#]+)$")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def freeze(python: Path) -> list[str]:
    out = subprocess.run([str(python), "-m", "pip", "freeze", "--exclude-editable"],
                         check=True, capture_output=True, text=True).stdout
    return [line.strip() for line in out.splitlines() if line.strip() and not line.startswith("#")]


def lock_lines(frozen: list[str]) -> tuple[list[str], list[str]]:
    """(sorted "name==version" lines, lines that are not a plain pin)."""
    pins, other = {}, []
    for line in frozen:
        m = PINNED.match(line)
        if m is None:
            other.append(line)
            continue
        name, version = m.groups()
        if canonical(name) in SELF:
            continue
        pins[canonical(name)] = f"{name}=={version.split('+', 1)[0]}"
    return [pins[k] for k in sorted(pins)], other


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--python", type=Path, default=REPO / ".venv" / "bin" / "python",
                    help="the venv's python (default: .venv/bin/python)")
    ap.add_argument("--output", type=Path, default=REPO / "constraints.txt")
    args = ap.parse_args(argv)
    if not args.python.exists():
        print(f"no python at {args.python}: build the venv first (make setup)", file=sys.stderr)
        return 2
    pins, other = lock_lines(freeze(args.python))
    if other:
        print("not plain pins, so not locked (install them from a release):\n  " + "\n  ".join(other),
              file=sys.stderr)
        return 1
    where = subprocess.run(
        [str(args.python), "-c", "import platform as p; print(p.python_version(), 'on', p.system(), p.machine())"],
        check=True, capture_output=True, text=True).stdout.strip()
    shown = ["python", "scripts/lock.py"] + (argv if argv is not None else sys.argv[1:])
    header = [
        "# Exact versions of the stack the README's figures came from: every package `pip freeze`",
        "# lists in the development venv, prmrl itself excepted. Used as constraints by `make setup`",
        '# (pip install -c constraints.txt -e ".[test]"); pyproject.toml keeps ranges for library users.',
        "# Local version labels are dropped: torch==2.13.0 is installed here as the CPU build 2.13.0+cpu.",
        f"# Generated {datetime.date.today().isoformat()} by `{shlex.join(shown)}` (also `make lock`)",
        f"# from Python {where}. Do not edit by hand.",
    ]
    args.output.write_text("\n".join(header + pins) + "\n", encoding="utf-8")
    print(f"wrote {len(pins)} pins to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
