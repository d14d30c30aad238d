"""The embedded task's SFT policy: trained once per setting, cached, reused by every later job."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path

from prmrl.config import Config
from prmrl.runs import MetricsLog, start_run, write_json
from prmrl.tasks import make_task


def sft_key(cfg: Config) -> str:
    """Cache key of an SFT policy: everything that changes it."""
    from prmrl.tasks.arith import FORMAT_VERSION

    relevant = {"task": asdict(cfg.task), "format": FORMAT_VERSION, "sft": asdict(cfg.sft), "seed": cfg.run.seed,
                "size": [cfg.model.hidden, cfg.model.layers, cfg.model.heads, cfg.model.intermediate]}
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:12]


def sft_policy_path(cfg: Config) -> Path:
    return Path(cfg.run.cache_dir) / "sft" / f"{cfg.task.name}-{sft_key(cfg)}"


def run_sft(cfg: Config, out_dir: str | Path | None = None, force: bool = False) -> Path:
    """Train (or reuse from the cache) the SFT policy of the embedded task; returns its path."""
    from prmrl.models.factory import build_tiny_policy, save_model
    from prmrl.sft import train_sft

    path = sft_policy_path(cfg)
    if (path / "config.json").exists() and not force:
        return path
    task = make_task(cfg.task)
    if task.sft_pairs is None:
        raise ValueError(f"task '{cfg.task.name}' has no SFT corpus; give model.policy instead")
    run = start_run(out_dir or Path(cfg.run.out_dir) / "sft", cfg)
    log = MetricsLog(run / "metrics.jsonl")
    m = cfg.model
    policy, tok = build_tiny_policy(seed=cfg.run.seed, hidden=m.hidden, layers=m.layers,
                                    heads=m.heads, intermediate=m.intermediate)
    s = cfg.sft
    result = train_sft(policy, tok, task.sft_pairs(), steps=s.steps, batch_size=s.batch_size,
                       lr=s.lr, warmup_steps=s.warmup_steps, seed=cfg.run.seed, log_fn=log.write,
                       progress=cfg.run.progress)
    log.close()
    save_model(policy, tok, path)
    write_json(run / "sft.json", {**result, "policy": str(path)})
    return path
