"""The jobs behind the CLI: SFT, PPO, evaluation and the demo, each writing a run folder."""

from __future__ import annotations

import hashlib
import json
import math
import random
import time
from dataclasses import asdict
from pathlib import Path

import torch

from prmrl.config import Config
from prmrl.runs import MetricsLog, start_run, write_json
from prmrl.tasks import Task, make_task


def quiet_transformers() -> None:
    from transformers.utils import logging

    logging.set_verbosity_error()
    logging.disable_progress_bar()


def setup_threads(cfg: Config) -> None:
    if cfg.run.threads > 0:
        torch.set_num_threads(cfg.run.threads)


# ---- SFT --------------------------------------------------------------------------------------

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


# ---- evaluation -------------------------------------------------------------------------------

def evaluate(cfg: Config, policy, tokenizer, task: Task, n_problems: int | None = None,
             n_samples: int | None = None, greedy: bool = True) -> dict[str, float]:
    from prmrl.evaluation.accuracy import evaluate_policy

    e = cfg.eval
    n = min(n_problems or e.n_problems, len(task.test_questions))
    k = n_samples or e.sampling_samples
    return evaluate_policy(
        policy, tokenizer, task.test_questions[:n], task.test_golds[:n], prompt_fn=task.prompt,
        grade_batch=task.grade_batch, delimiter=task.delimiter, n_samples=k,
        pass_k=[x for x in e.pass_k if x <= k], temperature=e.temperature,
        max_new_tokens=e.max_new_tokens, seed=cfg.run.seed, greedy=greedy)


# ---- PPO --------------------------------------------------------------------------------------

def build_scorers(cfg: Config, task: Task):
    from prmrl.rewards.scorers import ORMReward, PRMReward, SuccessReward
    from prmrl.rl.trainer import Scorers

    from prmrl.rl.trainer import _dtype

    r = cfg.reward
    dtype = _dtype(cfg.model.dtype)
    template = "{question}\n" if task.name == "arith" else None
    orm = ORMReward(r.orm, dtype=dtype) if r.orm else None
    prm = PRMReward(r.prm, fmt=r.prm_format, prompt_template=template, delimiter=task.delimiter,
                    dtype=dtype, trust_remote_code=r.trust_remote_code) if r.prm else None
    return Scorers(success=SuccessReward(grade_batch=task.grade_batch), orm=orm, prm=prm)


def run_ppo(cfg: Config, policy_path: str | Path, run_dir: str | Path, *, task: Task | None = None,
            accelerator=None) -> dict:
    """PPO from ``policy_path``; writes metrics, plots and the final policy into ``run_dir``.
    Returns the last iteration's metrics and the path of the trained policy."""
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from tqdm.auto import tqdm

    from prmrl.evaluation.plots import plot_training
    from prmrl.models.factory import load_policy, load_scalar_model, load_tokenizer, save_model
    from prmrl.rl.trainer import PPOTrainer

    gpu = torch.cuda.is_available()
    mixed = {"bfloat16": "bf16", "float16": "fp16"}.get(cfg.model.dtype, "no") if gpu else "no"
    acc = accelerator or Accelerator(cpu=not gpu, mixed_precision=mixed)
    set_seed(cfg.run.seed + acc.process_index, device_specific=False)
    tok = load_tokenizer(policy_path)
    task = task or make_task(cfg.task, tok)
    # Trained weights in float32 whatever the checkpoint's dtype (bf16 AdamW barely moves them);
    # autocast (mixed_precision) does the bf16 compute on GPU.
    policy = load_policy(policy_path, dtype=torch.float32)
    critic = load_scalar_model(cfg.model.critic or policy_path, dtype=torch.float32)
    trainer = PPOTrainer(cfg, policy, critic, tok, build_scorers(cfg, task), task.prompt, acc)

    main = acc.is_main_process
    run = Path(run_dir)
    if main:
        start_run(run, cfg)
        log = MetricsLog(run / "metrics.jsonl")
    rng = random.Random(cfg.run.seed * 1000 + acc.process_index)
    order = list(range(len(task.train_questions)))
    rng.shuffle(order)
    p, e = cfg.ppo, cfg.eval
    bar = tqdm(range(p.iterations), desc="ppo", disable=not (main and cfg.run.progress),
               dynamic_ncols=True)
    metrics: dict = {}
    acc_during = math.nan
    for it in bar:
        idx = [order[(it * p.prompts_per_iteration + j) % len(order)] for j in range(p.prompts_per_iteration)]
        _, metrics = trainer.iteration([task.train_questions[i] for i in idx],
                                       [task.train_golds[i] for i in idx], it)
        metrics["iteration"] = it
        metrics["charts/num_processes"] = acc.num_processes
        metrics["unscorable/success"] = trainer.unscorable["success"]
        metrics["unscorable/prm_steps"] = trainer.unscorable["prm_steps"]
        metrics["unscorable/orm"] = trainer.unscorable["orm"]
        if e.every and ((it + 1) % e.every == 0 or it + 1 == p.iterations) and main:
            ev = evaluate(cfg, acc.unwrap_model(trainer.actor), tok, task,
                          n_problems=e.n_problems_during, n_samples=1, greedy=True)
            metrics.update({f"eval/{k}": v for k, v in ev.items()})
            acc_during = ev["greedy_accuracy"]
        if main:
            log.write(metrics)
            bar.set_postfix(reward=f"{metrics['rollout/token_reward_sum']:.3f}",
                            success=f"{metrics['rollout/success']:.3f}", acc=f"{acc_during:.3f}")
    acc.wait_for_everyone()
    out = run / "policy"
    if main:
        log.close()
        save_model(acc.unwrap_model(trainer.actor), tok, out)
        plot_training(run / "metrics.jsonl", run / "plots")
    acc.wait_for_everyone()
    return {"last": metrics, "policy": str(out)}


# ---- the demo ---------------------------------------------------------------------------------

def demo(cfg: Config) -> dict:
    """SFT, then PPO with the success reward, then evaluation before and after."""
    from prmrl.models.factory import load_policy, load_tokenizer

    t0 = time.time()
    run = Path(cfg.run.out_dir)
    start_run(run, cfg)
    task = make_task(cfg.task)
    sft_path = run_sft(cfg, out_dir=run / "sft")
    tok = load_tokenizer(sft_path)
    before = evaluate(cfg, load_policy(sft_path), tok, task)
    ppo = run_ppo(cfg, sft_path, run / "ppo", task=task)
    after = evaluate(cfg, load_policy(ppo["policy"]), tok, task)
    keys = ("greedy_accuracy", "sampling_accuracy", "steps_per_answer", "mean_response_tokens")
    summary = {
        "before": {k: before[k] for k in keys}, "after": {k: after[k] for k in keys},
        "wall_seconds": round(time.time() - t0, 1),
        "details": {"before": before, "after": after, "sft_policy": str(sft_path),
                    "ppo_policy": ppo["policy"], "n_test_problems": before["n_problems"]},
    }
    write_json(run / "summary.json", summary)
    return summary


def format_table(rows: dict[str, dict[str, float]], keys: list[str]) -> str:
    """A plain-text table: one row per entry, one column per key."""
    names = list(rows)
    w = max(len(n) for n in names + [""]) + 2
    cols = [max(10, len(k) + 2) for k in keys]
    head = "".ljust(w) + "".join(f"{k:>{c}}" for k, c in zip(keys, cols))
    lines = [head, "-" * len(head)]
    for n in names:
        lines.append(n.ljust(w) + "".join(f"{rows[n].get(k, float('nan')):>{c}.3f}" for k, c in zip(keys, cols)))
    return "\n".join(lines)

