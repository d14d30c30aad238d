"""Durable training state: a checkpoint folder per save, written whole or not at all.

    <run>/checkpoints/iter-000010/state.pt        models, optimizers, schedulers, counters
    <run>/checkpoints/iter-000010/sharded/        FSDP2: models and optimizers, sharded (DCP)
    <run>/checkpoints/iter-000010/rank0.pt        this process's RNG states and data order
    <run>/checkpoints/iter-000010/trainer_state.json   the iteration and counters, readable
    <run>/checkpoints/latest                      the name of the newest complete checkpoint

A checkpoint is written into a hidden temporary folder and renamed when complete, so a kill
at any moment leaves the previous checkpoint intact; the two newest are kept. Loading uses
``torch.load(weights_only=True)``: a checkpoint holds tensors and plain Python values only.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path

import torch

CHECKPOINT_DIR = "checkpoints"
SHARDED_DIR = "sharded"      # FSDP2: models and optimizers, one file per process (torch.distributed.checkpoint)
KEEP = 2


class TrainingInterrupted(KeyboardInterrupt):
    """SIGTERM or Ctrl-C stopped a run after it wrote a checkpoint."""

    def __init__(self, signum: int, iteration: int, run_dir):
        self.signum, self.iteration, self.run_dir = signum, iteration, run_dir
        super().__init__(f"stopped by signal {signum} after iteration {iteration - 1}; checkpoint in "
                         f"{Path(run_dir) / CHECKPOINT_DIR}; continue with run.resume=true")


def rng_state() -> dict:
    """Every random state a training step draws from: python, numpy (when installed), torch
    CPU and every CUDA device."""
    state = {"python": _py_state_to_list(random.getstate()), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    try:
        import numpy as np

        kind, keys, pos, has_gauss, gauss = np.random.get_state()
        state["numpy"] = [kind, torch.from_numpy(keys.astype("int64")), pos, has_gauss, gauss]
    except ImportError:
        pass
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(_py_state_from_list(state["python"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    if "numpy" in state:
        import numpy as np

        kind, keys, pos, has_gauss, gauss = state["numpy"]
        np.random.set_state((kind, keys.numpy().astype("uint32"), pos, has_gauss, gauss))


def _py_state_to_list(st) -> list:
    version, internal, gauss = st
    return [version, list(internal), gauss]


def _py_state_from_list(st) -> tuple:
    version, internal, gauss = st
    return (version, tuple(internal), gauss)


def _per_rank(state: dict) -> dict:
    return {k: state[k] for k in ("rng", "data_order", "process_index")}


def save_checkpoint(run_dir, state: dict, acc, write_sharded=None) -> Path:
    """Write ``state`` (a trainer's ``state_dict()``) as the checkpoint of its iteration.
    Every process writes its own RNG file; the main process the rest, then renames.
    ``write_sharded(folder)``: called on every process with the temporary folder, to write the
    sharded models and optimizers (FSDP2) beside the rest, inside the same atomic rename."""
    from prmrl.runs import _share, atomic_write_text

    root = Path(run_dir) / CHECKPOINT_DIR
    name = f"iter-{state['iteration']:06d}"
    tmp = root / f".{name}.tmp"
    if acc.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    acc.wait_for_everyone()
    if write_sharded is not None:
        write_sharded(tmp / SHARDED_DIR)
    _save(_per_rank(state), tmp / f"rank{acc.process_index}.pt")
    if acc.is_main_process:
        shared = {k: v for k, v in state.items() if k not in ("rng", "data_order", "process_index")}
        _save(shared, tmp / "state.pt")
        (tmp / "trainer_state.json").write_text(json.dumps(
            {"iteration": state["iteration"], "unscorable": state["unscorable"], "seed": state["seed"],
             "num_processes": acc.num_processes}, indent=1) + "\n")
    acc.wait_for_everyone()
    final = root / name
    if acc.is_main_process:
        _share(tmp)
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
        atomic_write_text(root / "latest", name + "\n")
        for old in sorted(p for p in root.glob("iter-*") if p.is_dir())[:-KEEP]:
            shutil.rmtree(old, ignore_errors=True)
    acc.wait_for_everyone()
    return final


def _save(obj, path: Path) -> None:
    with open(path, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())


def latest_checkpoint(run_dir) -> Path | None:
    root = Path(run_dir) / CHECKPOINT_DIR
    latest = root / "latest"
    if latest.exists():
        p = root / latest.read_text().strip()
        if (p / "state.pt").exists():
            return p
    done = sorted(p for p in root.glob("iter-*") if (p / "state.pt").exists())
    return done[-1] if done else None


def load_checkpoint(path, process_index: int = 0) -> dict:
    path = Path(path)
    files = [path / "state.pt", path / f"rank{process_index}.pt"]
    for f in files:
        if not f.exists():
            raise FileNotFoundError(f"{f}: checkpoint file missing (resume with as many processes "
                                    f"as the run had)")
    state = torch.load(files[0], map_location="cpu", weights_only=True)
    state.update(torch.load(files[1], map_location="cpu", weights_only=True))
    return state
