"""Seed sweeps (`prmrl demo --seeds 0-3`, `prmrl bon --seeds 0,1`): one job per (seed, thread
count) in its own spawned process, run side by side, and the spread of each figure.

A result of the embedded task holds for one float order only if it was measured on one; the
SFT policy of a seed differs with the number of torch threads and the CPU. A sweep runs each
seed with each thread count asked for (``--threads 1,2``), ``workers`` processes at a time,
each run in ``<out_dir>/seed<S>-t<T>`` with its own cache (nothing is shared between runs, so
each builds its SFT policy under its own thread count), and writes ``sweep.json`` (every run's figures and
mean / std / min / max of each) beside them.
"""

from __future__ import annotations

import math
import multiprocessing as mp
import os
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from pathlib import Path

from prmrl.config import Config, ConfigError, from_dict
from prmrl.runs import write_json

JOBS = ("demo", "bon")


def parse_ints(text: str, what: str = "--seeds") -> list[int]:
    """``"0-3"`` -> [0, 1, 2, 3]; ``"0,2,5"`` -> [0, 2, 5]; ``"1-2,7"`` -> [1, 2, 7]."""
    import re

    out: list[int] = []
    for part in str(text).split(","):
        m = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if m is None or (m.group(2) is not None and int(m.group(2)) < int(m.group(1))):
            raise ConfigError(f"{what}: {text!r} is not a list of integers like 0-3 or 0,2,5")
        lo = int(m.group(1))
        out.extend(range(lo, int(m.group(2) or lo) + 1))
    if len(set(out)) != len(out):
        raise ConfigError(f"{what}: {text!r} names a value twice")
    return out


def demo_figures(summary: dict) -> dict[str, float]:
    """The figures of one demo run that a sweep compares."""
    b, a = summary["before"], summary["after"]
    return {
        "greedy_before": b["greedy_accuracy"], "greedy_after": a["greedy_accuracy"],
        "greedy_gain": a["greedy_accuracy"] - b["greedy_accuracy"],
        "sampling_before": b["sampling_accuracy"], "sampling_after": a["sampling_accuracy"],
        "sampling_gain": a["sampling_accuracy"] - b["sampling_accuracy"],
        "steps_after": a["steps_per_answer"], "wall_seconds": summary["wall_seconds"],
    }


def bon_figures(result: dict, n: int | None = None) -> dict[str, float]:
    """The figures of one Best-of-N run that a sweep compares, at the largest N."""
    n = n or max(int(k) for k in result["greedy"])
    k = str(n)
    return {
        "prm_step_auc": result.get("prm_step_auc", math.nan),
        "greedy": result["greedy"][k], "majority": result["majority"][k],
        f"prm_min@{n}": result["prm_min"][k], f"prm_prod@{n}": result["prm_prod"][k],
        f"orm@{n}": result["orm"][k], "auto_label_auc": result.get("auto_label_auc_vs_oracle", math.nan),
        "wall_seconds": result.get("seconds", {}).get("total", math.nan),
    }


def spread(values: list[float]) -> dict[str, float]:
    xs = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    if not xs:
        return {"mean": math.nan, "std": math.nan, "min": math.nan, "max": math.nan, "n": 0}
    return {"mean": statistics.fmean(xs), "std": statistics.stdev(xs) if len(xs) > 1 else 0.0,
            "min": min(xs), "max": max(xs), "n": len(xs)}


def summarise(runs: list[dict]) -> dict[str, dict[str, float]]:
    """mean / std / min / max of each figure over the runs (each ``{"figures": {...}}``)."""
    keys = list(dict.fromkeys(k for r in runs for k in r["figures"]))
    return {k: spread([r["figures"].get(k, math.nan) for r in runs]) for k in keys}


def _run_one(job: str, cfg_dict: dict, threads: int) -> dict:
    """One run in a fresh process: ``threads`` torch threads, the job's own run folder."""
    import torch

    from prmrl.models.factory import quiet_transformers

    quiet_transformers()
    torch.set_num_threads(threads)
    cfg = from_dict(cfg_dict)
    if job == "demo":
        from prmrl.jobs.demo import demo

        return demo_figures(demo(cfg))
    from prmrl.jobs.bon import bon_job
    from prmrl.jobs.sft import run_sft

    return bon_figures(bon_job(cfg, policy=cfg.model.policy or str(run_sft(cfg))), max(cfg.rm.bon_n))


def sweep(cfg: Config, job: str, seeds: list[int], threads: list[int], workers: int = 2,
          progress=print) -> dict:
    """Run ``job`` ("demo" or "bon") for every seed x thread count; returns (and writes into
    ``run.out_dir/sweep.json``) each run's figures and their spread."""
    if job not in JOBS:
        raise ValueError(f"sweep: job must be one of {JOBS}, got {job!r}")
    out = Path(cfg.run.out_dir)
    jobs = []
    for seed in seeds:
        for t in threads:
            d = asdict(cfg)
            run = out / f"seed{seed}-t{t}"
            # its own cache: the SFT policy (and what is built on it) differs with the threads
            d["run"].update(seed=seed, threads=t, out_dir=str(run), cache_dir=str(run / "cache"),
                            progress=False)
            jobs.append((seed, t, d))
    t0 = time.time()
    if workers > 1:   # processes side by side: OpenMP threads that sleep (inherited by the workers)
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    runs: list[dict] = []
    with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn")) as pool:
        futures = [(seed, t, pool.submit(_run_one, job, d, t)) for seed, t, d in jobs]
        for i, (seed, t, fut) in enumerate(futures):
            figures = fut.result()
            runs.append({"seed": seed, "threads": t, "figures": figures})
            if progress:
                progress(f"[{i + 1}/{len(jobs)}] seed {seed}, {t} thread(s): "
                         + ", ".join(f"{k} {v:.3f}" for k, v in figures.items()))
    import torch

    report = {"job": job, "seeds": seeds, "threads": threads, "workers": workers, "runs": runs,
              "summary": summarise(runs), "wall_seconds": round(time.time() - t0, 1),
              "machine": _machine(), "torch": torch.__version__}
    write_json(out / "sweep.json", report)
    return report


def format_sweep(report: dict) -> str:
    """mean, std, min and max of each figure, one row each."""
    rows = report["summary"]
    w = max(len(k) for k in [*rows, "figure"]) + 2
    head = "figure".ljust(w) + "".join(f"{c:>9}" for c in ("mean", "std", "min", "max"))
    lines = [head, "-" * len(head)]
    for k, s in rows.items():
        lines.append(k.ljust(w) + "".join(f"{s[c]:>9.3f}" for c in ("mean", "std", "min", "max")))
    lines.append(f"{len(report['runs'])} runs: seeds {report['seeds']} x threads {report['threads']}, "
                 f"{report['workers']} at a time; wall {report['wall_seconds']:.0f} s; {report['machine']}")
    return "\n".join(lines)


def _machine() -> str:
    """The CPU as /proc/cpuinfo names it, with its family and model numbers (two CPUs that
    report the same name, "AMD EPYC", can differ in float order: the same seed gave two SFT
    policies on two such hosts), and the core count."""
    import platform

    cpu = platform.processor() or platform.machine()
    info: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key in ("model name", "cpu family", "model") and key not in info:
                    info[key] = value.strip()
                if len(info) == 3:          # the first processor's three lines
                    break
    except OSError:
        pass
    cpu = info.get("model name", cpu)
    if "cpu family" in info and "model" in info:
        cpu += f" (family {info['cpu family']}, model {info['model']})"
    return f"{cpu}, {os.cpu_count()} cores"
