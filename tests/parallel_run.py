"""A small PPO run through the Python API under `accelerate launch` (2 CPU processes, gloo), for
the FSDP2-vs-DDP test:

    accelerate launch --multi_gpu --num_processes 2 tests/parallel_run.py POLICY OUT ddp|fsdp2 [ITERATIONS [resume]]

The success reward is graded (the share of digits in the answer), not the arith checker, so the
rewards differ between answers from the first iteration on: with all-equal rewards the whitened
advantages would be float noise, and two runs would differ by that noise alone.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

torch.set_num_threads(1)

from prmrl import PPOConfig, PPOTrainer, Task  # noqa: E402
from prmrl.models.factory import quiet_transformers  # noqa: E402
from prmrl.tasks import arith  # noqa: E402


def digits(prompts, completions, **_):
    return [sum(c.isdigit() for c in text) / max(1, len(text)) for text in completions]


def main() -> int:
    policy, out, parallel = sys.argv[1:4]
    iterations = int(sys.argv[4]) if len(sys.argv) > 4 else 2
    resume = len(sys.argv) > 5 and sys.argv[5] == "resume"
    quiet_transformers()
    qs = [f"Start with {a}. (a) {b} more." for a in range(8) for b in range(1, 3)]
    task = Task(name="arith", train_questions=qs, train_golds=["0"] * len(qs), test_questions=[],
                test_golds=[], prompt=arith.prompt, grade_batch=lambda rs, gs: [False] * len(rs),
                delimiter="\n")
    ppo = PPOConfig(iterations=2, prompts_per_iteration=4, samples_per_prompt=2, max_new_tokens=16,
                    minibatch_size=4, micro_batch_size=2, actor_lr=1e-3, critic_lr=1e-3)
    tr = PPOTrainer(policy, task=task, ppo=ppo, success=digits, output_dir=out, seed=0,
                    save_every=1, parallel=parallel)
    tr.fit(resume=resume, iterations=iterations)
    return 0


if __name__ == "__main__":
    sys.exit(main())
