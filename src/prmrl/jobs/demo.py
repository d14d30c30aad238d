"""`prmrl demo`: SFT, then RL with the success reward, then evaluation before and after. The
command runs GRPO (``config.COMMAND_DEFAULTS``); ``ppo.advantage=gae`` runs PPO with a critic."""

from __future__ import annotations

import time
from pathlib import Path

from prmrl.config import Config
from prmrl.jobs.evaluate import evaluate
from prmrl.jobs.ppo import run_ppo
from prmrl.jobs.sft import run_sft
from prmrl.runs import start_run, write_json
from prmrl.tasks import make_task


def demo(cfg: Config) -> dict:
    """SFT, then RL (``cfg.ppo``) with the success reward, then evaluation before and after."""
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
