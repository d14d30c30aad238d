"""A small PPO run through the Python API, for the durability tests (run as a subprocess, so
a test can kill it with SIGKILL or SIGTERM in the middle of an iteration).

    python durable_run.py POLICY OUT_DIR [--resume] [--kill-at K] [--term-at K] [--inf-at K]

--kill-at K: SIGKILL itself while scoring iteration K (mid-iteration: after generation, before
the update). --term-at K: SIGTERM itself there (the run should finish K, checkpoint, exit 143).
--inf-at K: the PRM returns inf at iteration K (the run should stop with one line, exit 3).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

torch.set_num_threads(1)

from prmrl import NonFiniteError, PPOConfig, PPOTrainer, RewardConfig, TrainingInterrupted  # noqa: E402
from prmrl.config import TaskConfig  # noqa: E402
from prmrl.models.factory import quiet_transformers  # noqa: E402
from prmrl.tasks import make_task  # noqa: E402

ITERATIONS = 5


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("policy")
    ap.add_argument("out")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--kill-at", type=int, default=-1)
    ap.add_argument("--term-at", type=int, default=-1)
    ap.add_argument("--inf-at", type=int, default=-1)
    args = ap.parse_args()
    quiet_transformers()
    task = make_task(TaskConfig(n_train=200, n_test=10))
    calls = {"n": 0}

    def prm(prompts, steps, **cols):
        it = trainer.iteration_done
        if it == args.kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        if it == args.term_at and calls["n"] == 0:
            calls["n"] += 1
            os.kill(os.getpid(), signal.SIGTERM)
        bad = float("inf") if it == args.inf_at else None
        return [[bad if bad is not None else 0.3 + 0.1 * (k % 3) for k in range(len(s))] for s in steps]

    trainer = PPOTrainer(
        args.policy, task=task, prm=prm, output_dir=args.out, seed=3, save_every=2,
        ppo=PPOConfig(iterations=ITERATIONS, prompts_per_iteration=4, samples_per_prompt=2,
                      max_new_tokens=24, minibatch_size=4, actor_lr=1e-3),
        reward=RewardConfig(shaping="clip_delta", prm="callable", prm_alpha=0.5, eta=0.5))
    try:
        trainer.fit(resume=args.resume)
    except TrainingInterrupted as e:
        print(e, file=sys.stderr)
        return 128 + e.signum
    except NonFiniteError as e:
        print(e, file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
