"""Run folders: resolved config, JSONL metrics, versions, atomic writes."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import tempfile
import time
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any, Iterator


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling folder; on success replace ``path`` with it in one rename."""
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    try:
        yield tmp
        if final.exists():
            old = final.with_name(f".{final.name}.old.{os.getpid()}")
            final.rename(old)
            tmp.rename(final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", dir=final.parent)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, final)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_jsonable) + "\n")


def _jsonable(x: Any) -> Any:
    if is_dataclass(x):
        return asdict(x)
    if isinstance(x, Path):
        return str(x)
    if hasattr(x, "item"):
        return x.item()
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")


def versions() -> dict[str, str]:
    """The versions that produced a run."""
    import importlib.metadata as md

    out = {"python": platform.python_version(), "platform": platform.platform()}
    for pkg in ("prmrl", "torch", "transformers", "tokenizers", "accelerate", "math-verify"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = "absent"
    with contextlib.suppress(Exception):
        import subprocess

        here = Path(__file__).resolve().parent
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True,
                             text=True, timeout=5).stdout.strip()
        if sha:
            out["git"] = sha
    return out


class MetricsLog:
    """Append-only JSONL, one line per record, flushed at once so a crash loses nothing."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._f = open(self.path, "a")

    def write(self, record: dict[str, Any]) -> None:
        self._f.write(json.dumps({"time": round(time.time(), 3), **record}, default=_jsonable) + "\n")
        self._f.flush()

    def close(self) -> None:
        self._f.close()


def read_jsonl(path: str | os.PathLike) -> list[dict[str, Any]]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def start_run(run_dir: str | os.PathLike, config: Any) -> Path:
    """Create the run folder and write the resolved config and versions into it.

    A folder that already holds a run keeps that run's metrics as ``metrics.prev-N.jsonl``, so the
    new run's ``metrics.jsonl`` (appended to as it trains) holds its own rows only and matches
    the ``config.yaml`` beside it."""
    import yaml

    run = Path(run_dir)
    run.mkdir(parents=True, exist_ok=True)
    old = run / "metrics.jsonl"
    if old.exists():
        n = 1
        while (run / f"metrics.prev-{n}.jsonl").exists():
            n += 1
        old.rename(run / f"metrics.prev-{n}.jsonl")
    cfg = asdict(config) if is_dataclass(config) else config
    atomic_write_text(run / "config.yaml", yaml.safe_dump(cfg, sort_keys=False))
    write_json(run / "versions.json", versions())
    return run
