"""Run folders: resolved config, JSONL metrics, versions, atomic writes, a lock per writer.

Files are written whole (temporary file, then rename), so a crash never leaves a half-written
file. Their permissions follow the user's umask like any other file (a temporary file is
created owner-only; it gets the umask's mode before it is renamed into place).
"""

from __future__ import annotations

import contextlib
import errno
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
        _share(tmp)
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
    os.chmod(tmp, file_mode())
    os.replace(tmp, final)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def file_mode() -> int:
    """The mode a plain ``open`` would give a new file under the user's umask."""
    return 0o666 & ~_umask()


def dir_mode() -> int:
    return 0o777 & ~_umask()


def _share(folder: Path) -> None:
    """Give a folder written under a temporary name (``mkdtemp``/``mkstemp``: owner-only), and
    everything in it, the modes the user's umask gives new files and folders."""
    fmode, dmode = file_mode(), dir_mode()
    os.chmod(folder, dmode)
    for root, dirs, files in os.walk(folder):
        for d in dirs:
            os.chmod(os.path.join(root, d), dmode)
        for f in files:
            os.chmod(os.path.join(root, f), fmode)


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


def truncate_metrics(path: str | os.PathLike, before_iteration: int) -> int:
    """Keep only the rows of iterations before ``before_iteration`` (rows without an iteration
    are kept): what a run resumed from a checkpoint does with the rows of the iterations it
    redoes. Returns the number of rows dropped."""
    p = Path(path)
    if not p.exists():
        return 0
    kept, dropped = [], 0
    for line in p.read_text().splitlines():
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:      # a line cut short by a kill
            dropped += 1
            continue
        if isinstance(row, dict) and row.get("iteration", -1) >= before_iteration:
            dropped += 1
        else:
            kept.append(line)
    atomic_write_text(p, "".join(x + "\n" for x in kept))
    return dropped


class RunInUseError(RuntimeError):
    """Another process is writing into this run folder."""


class RunFolderError(ValueError):
    """The run folder holds a run and neither resume nor overwrite was asked for."""


class RunLock:
    """An exclusive lock on a run folder for as long as a run writes into it (``fcntl.flock`` on
    ``.lock``, released by the OS when the process dies, so a kill -9 never leaves it stale)."""

    def __init__(self, run_dir: str | os.PathLike):
        self.path = Path(run_dir) / ".lock"
        self._fd: int | None = None

    def acquire(self) -> "RunLock":
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            if e.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                holder = self.path.read_text().strip() or "another process"
                raise RunInUseError(f"{self.path.parent}: a run is writing into this folder "
                                    f"(pid {holder}); wait for it or choose another run.out_dir") from None
            raise
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            import fcntl

            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


RUN_MARKERS = ("metrics.jsonl", "checkpoints", "policy")
# what any command leaves in its run folder: a resolved config (every job), an evaluation
JOB_MARKERS = (*RUN_MARKERS, "config.yaml", "eval.json")


def holds_run(run_dir: str | os.PathLike) -> bool:
    """Whether a folder already holds the output of a run (training or any other command)."""
    return any((Path(run_dir) / m).exists() for m in JOB_MARKERS)


@contextlib.contextmanager
def job_folder(run_dir: str | os.PathLike, *, resume: bool, overwrite: bool) -> Iterator[Path]:
    """A command's run folder for as long as the command runs: locked (a second writer is
    refused), and refused when it holds an earlier run unless ``resume`` (continue: cached
    parts are reused, a training run continues from its checkpoint) or ``overwrite`` (its files
    are written over) is asked for. Nothing is deleted here."""
    run = Path(run_dir)
    with RunLock(run):
        if holds_run(run) and not (resume or overwrite):
            raise RunFolderError(f"{run}: holds a run already; resume it with run.resume=true, "
                                 f"write over it with run.overwrite=true, or choose another run.out_dir")
        yield run


FIXED_ON_RESUME_EXCEPT = ("run.", "eval.", "ppo.iterations", "save_every")


def _flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(d, dict):
        return {prefix[:-1]: d}
    out: dict[str, Any] = {}
    for k, v in d.items():
        out.update(_flatten(v, f"{prefix}{k}."))
    return out


def resume_changes(run_dir: str | os.PathLike, config: Any) -> list[str]:
    """The settings a resumed run would change against the run's own ``config.yaml``
    (``key: old -> new``), leaving out those a resume may change: the ``run.*`` and ``eval.*``
    sections and ``ppo.iterations`` (to extend a run). Empty when the run has no config yet."""
    import yaml

    path = Path(run_dir) / "config.yaml"
    if not path.exists():
        return []
    old = _flatten(yaml.safe_load(path.read_text()) or {})
    new = _flatten(json.loads(json.dumps(asdict(config) if is_dataclass(config) else config,
                                         default=_jsonable)))
    out = []
    for k in sorted(set(old) | set(new)):
        if k.startswith(FIXED_ON_RESUME_EXCEPT) or _same(old.get(k), new.get(k)):
            continue
        out.append(f"{k}: {old.get(k)!r} -> {new.get(k)!r}")
    return out


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return float(a) == float(b)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def claim_run_dir(run_dir: str | os.PathLike, *, resume: bool, overwrite: bool) -> None:
    """Refuse to start a new run in a folder that holds one, unless asked to overwrite it (its
    run files are then deleted) or to resume it."""
    run = Path(run_dir)
    if resume or not holds_run(run):
        return
    if not overwrite:
        raise RunFolderError(f"{run}: holds a run already (metrics, checkpoints or a policy); "
                             f"resume it with run.resume=true, replace it with run.overwrite=true, "
                             f"or choose another run.out_dir")
    for name in (*RUN_MARKERS, "plots", "config.yaml", "versions.json", "tensorboard",
                 "eval.json"):
        p = run / name
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()
    for pattern in ("metrics.prev-*.jsonl", "config.resume-*.yaml", "versions.resume-*.json"):
        for p in run.glob(pattern):
            p.unlink()


def read_jsonl(path: str | os.PathLike) -> list[dict[str, Any]]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def start_run(run_dir: str | os.PathLike, config: Any, resume: bool = False) -> Path:
    """Create the run folder and write the resolved config and versions into it.

    ``resume``: the run continues; its config.yaml and metrics stay, and this start's config and
    versions go to ``config.resume-N.yaml`` / ``versions.resume-N.json``. Otherwise a folder that already holds a run keeps that run's metrics as ``metrics.prev-N.jsonl``, so the
    new run's ``metrics.jsonl`` (appended to as it trains) holds its own rows only and matches
    the ``config.yaml`` beside it."""
    import yaml

    run = Path(run_dir)
    run.mkdir(parents=True, exist_ok=True)
    old = run / "metrics.jsonl"
    if not resume and old.exists():
        n = 1
        while (run / f"metrics.prev-{n}.jsonl").exists():
            n += 1
        old.rename(run / f"metrics.prev-{n}.jsonl")
    cfg = asdict(config) if is_dataclass(config) else config
    suffix = ""
    if resume and (run / "config.yaml").exists():
        n = 1                                 # each resume records its own config and versions
        while (run / f"config.resume-{n}.yaml").exists():
            n += 1
        suffix = f".resume-{n}"
    atomic_write_text(run / f"config{suffix}.yaml", yaml.safe_dump(cfg, sort_keys=False))
    write_json(run / f"versions{suffix}.json", versions())
    return run
