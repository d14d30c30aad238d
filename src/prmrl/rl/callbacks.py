"""Callbacks and metric sinks of the trainer.

A callback is an object with any of ``on_fit_start(trainer)``, ``on_iteration_end(trainer,
iteration, metrics)`` (it may add entries to ``metrics`` before they are logged),
``on_checkpoint(trainer, iteration)`` and ``on_fit_end(trainer, metrics)``; a plain callable is
taken as ``on_iteration_end``. Sinks (``report_to``) receive every iteration's metrics beside
``metrics.jsonl``: TensorBoard, wandb or trackio, each when its package is installed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

from prmrl.config import REPORT_SINKS


class Callback:
    def on_fit_start(self, trainer) -> None:
        pass

    def on_iteration_end(self, trainer, iteration: int, metrics: dict) -> None:
        pass

    def on_checkpoint(self, trainer, iteration: int) -> None:
        pass

    def on_fit_end(self, trainer, metrics: dict) -> None:
        pass


class _FnCallback(Callback):
    def __init__(self, fn: Callable):
        self.fn = fn

    def on_iteration_end(self, trainer, iteration: int, metrics: dict) -> None:
        self.fn(trainer, iteration, metrics)


def as_callbacks(items: Sequence) -> list[Callback]:
    out = []
    for c in items or ():
        if isinstance(c, Callback):
            out.append(c)
        elif any(hasattr(c, m) for m in ("on_iteration_end", "on_fit_start", "on_checkpoint", "on_fit_end")):
            base = Callback()
            for m in ("on_fit_start", "on_iteration_end", "on_checkpoint", "on_fit_end"):
                if not hasattr(c, m):
                    setattr(c, m, getattr(base, m))
            out.append(c)
        elif callable(c):
            out.append(_FnCallback(c))
        else:
            raise TypeError(f"callback {c!r}: not a Callback or a callable")
    return out


SINKS = REPORT_SINKS


def check_sinks(report_to: Sequence[str]) -> None:
    """Each name is a sink and its package is installed: checked before a run writes anything."""
    import importlib.util

    for name in report_to:
        if name not in SINKS:
            raise ValueError(f"report_to: {name!r} is not one of {list(SINKS)}")
        if importlib.util.find_spec(name) is None:
            raise ImportError(f"report_to: {name!r} needs the {name} package (pip install {name})")


def _scalars(metrics: dict) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "iteration"}


class TensorBoardSink:
    def __init__(self, run_dir: Path, start: int):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ImportError("report_to: 'tensorboard' needs the tensorboard package "
                              "(pip install tensorboard)") from None
        # purge_step drops events at or after the resume point that a killed run left behind
        self.w = SummaryWriter(str(run_dir / "tensorboard"), purge_step=start or None)

    def log(self, metrics: dict, step: int) -> None:
        for k, v in _scalars(metrics).items():
            self.w.add_scalar(k, v, step)
        self.w.flush()

    def close(self) -> None:
        self.w.close()


class _ModuleSink:
    """wandb and trackio share ``init / log(dict, step=) / finish``."""

    def __init__(self, module: str, run_dir: Path):
        try:
            self.m = __import__(module)
        except ImportError:
            raise ImportError(f"report_to: '{module}' needs the {module} package (pip install {module})") from None
        self.run = self.m.init(project="prmrl", name=run_dir.name, dir=str(run_dir)) if module == "wandb" \
            else self.m.init(project="prmrl", name=run_dir.name)

    def log(self, metrics: dict, step: int) -> None:
        self.m.log(_scalars(metrics), step=step)

    def close(self) -> None:
        self.m.finish()


def make_sinks(report_to: Sequence[str], run_dir: Path, start: int) -> list:
    sinks = []
    for name in report_to:
        if name not in SINKS:
            raise ValueError(f"report_to: {name!r} is not one of {list(SINKS)}")
        sinks.append(TensorBoardSink(run_dir, start) if name == "tensorboard" else _ModuleSink(name, run_dir))
    return sinks
