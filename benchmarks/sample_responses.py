"""Responses sampled from a prmrl policy on the embedded task, as JSONL for the grader
agreement benchmark (``benchmarks/grader_agreement.py --responses FILE``).

    .venv/bin/python benchmarks/sample_responses.py POLICY --problems 500 --samples 2 --out s.jsonl

Each line: ``response``, ``gold`` and ``verdict``, the embedded task's own exact checker
(``prmrl.tasks.arith.grade``: the last boxed integer equals the gold), so a general math grader
can be scored against it on what prmrl's policies actually write (at T = 1, garbled lines too).
"""

from __future__ import annotations

import argparse
import json
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

from prmrl.config import TaskConfig  # noqa: E402
from prmrl.models.factory import load_policy, load_tokenizer, quiet_transformers  # noqa: E402
from prmrl.models.sampler import generate  # noqa: E402
from prmrl.tasks import arith, make_task  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("policy")
    ap.add_argument("--problems", type=int, default=500)
    ap.add_argument("--samples", type=int, default=2)
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    quiet_transformers()
    torch.manual_seed(args.seed)
    task = make_task(TaskConfig())
    qs, golds = task.test_questions[: args.problems], task.test_golds[: args.problems]
    gen = generate(load_policy(args.policy), load_tokenizer(args.policy), [task.prompt(q) for q in qs],
                   n=args.samples, max_new_tokens=128, temperature=args.temperature,
                   generator_seed=args.seed)
    golds = [g for g in golds for _ in range(args.samples)]
    with open(args.out, "w") as f:
        for text, gold in zip(gen.texts, golds):
            f.write(json.dumps({"response": text, "gold": gold, "verdict": arith.grade(text, gold),
                                "numeric": False}) + "\n")
    right = sum(arith.grade(t, g) is True for t, g in zip(gen.texts, golds))
    print(f"{len(gen.texts)} responses from {args.policy} ({right} right) -> {args.out}")


if __name__ == "__main__":
    main()
