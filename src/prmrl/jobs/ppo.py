"""`prmrl train`: PPO from a config, a thin adapter over ``prmrl.rl.trainer.PPOTrainer``."""

from __future__ import annotations

import math
import random
from pathlib import Path

import torch

from prmrl.config import Config
from prmrl.runs import MetricsLog, start_run
from prmrl.tasks import Task, make_task
from prmrl.jobs.evaluate import evaluate


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
