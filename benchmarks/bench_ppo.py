"""Throughput of the PPO loop on the embedded task: completions per second, phase by phase.

    .venv/bin/python benchmarks/bench_ppo.py                      # SFT policy (trained if missing)
    .venv/bin/python benchmarks/bench_ppo.py --iterations 8 --threads 2 ppo.ppo_epochs=1

Runs ``--iterations`` PPO iterations (after one warm-up iteration that is not counted) with the
success reward, or with a PRM (``reward.prm=PATH``), and prints the mean seconds of each phase:
generate (sampling with the KV cache; it also gives the old log-probs), score, shape
(reference log-probs and values: two forward passes), advantages (GAE), update (PPO epochs for
actor and critic), and the whole iteration as completions per second. Overrides are
``section.key=value`` as on the CLI.
"""

from __future__ import annotations

import argparse
import time

# OpenMP's wait policy: as the CLI leaves it for one process (the library default); set
# OMP_WAIT_POLICY=PASSIVE in the environment to measure passive waits.
import torch

from prmrl.config import load_config  # noqa: E402
from prmrl.jobs.ppo import build_trainer  # noqa: E402
from prmrl.jobs.sft import run_sft  # noqa: E402
from prmrl.models.factory import quiet_transformers  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--iterations", type=int, default=6)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--policy", help="policy path (default: the cached SFT policy)")
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args()
    quiet_transformers()
    torch.set_num_threads(args.threads)

    from prmrl.models.factory import load_tokenizer
    from prmrl.tasks import make_task

    cfg = load_config(None, ["run.progress=false", *args.overrides])
    path = args.policy or str(run_sft(cfg))
    task = make_task(cfg.task, load_tokenizer(path))
    trainer = build_trainer(cfg, path, None, task=task)     # no run folder: nothing written
    p = cfg.ppo
    phases = ["generate", "score", "shape", "advantages", "update"]
    totals = dict.fromkeys(phases, 0.0)
    n_done = 0
    for it in range(args.iterations + 1):
        lo = it * p.prompts_per_iteration
        qs = task.train_questions[lo: lo + p.prompts_per_iteration]
        gs = task.train_golds[lo: lo + p.prompts_per_iteration]
        t = {}
        t0 = time.perf_counter()
        b = trainer.generate(qs, gs)
        t["generate"] = time.perf_counter()
        trainer.score(b)
        t["score"] = time.perf_counter()
        trainer.shape(b)
        t["shape"] = time.perf_counter()
        trainer.advantages(b)
        t["advantages"] = time.perf_counter()
        trainer.update(b)
        t["update"] = time.perf_counter()
        if it == 0:
            continue            # warm-up: allocator and thread pools
        prev = t0
        for ph in phases:
            totals[ph] += t[ph] - prev
            prev = t[ph]
        n_done += len(b)
    wall = sum(totals.values())
    n_it = args.iterations
    print(f"policy {path}; {p.prompts_per_iteration} prompts x {p.samples_per_prompt} samples per "
          f"iteration, {p.ppo_epochs} PPO epochs, minibatch {p.minibatch_size}, "
          f"{args.threads} thread(s), {n_it} timed iterations")
    for ph in phases:
        print(f"  {ph:<11} {totals[ph] / n_it:7.3f} s/iteration  ({100 * totals[ph] / wall:4.1f}%)")
    print(f"  {'iteration':<11} {wall / n_it:7.3f} s/iteration")
    print(f"generation alone: {n_done / totals['generate']:.0f} completions/s; "
          f"whole PPO iteration: {n_done / wall:.1f} completions/s")


if __name__ == "__main__":
    main()
