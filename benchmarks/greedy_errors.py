"""What a policy's greedy errors on the embedded task are, by the kind of its first wrong line.

    .venv/bin/python benchmarks/greedy_errors.py POLICY [POLICY ...] [--problems 300] [overrides]

Decodes the first N held-out problems greedily and sorts each wrong answer by its first wrong
computation line: ``confused`` (the SFT corpus's fixed wrong result for a confused fact, see
``prmrl.tasks.arith.confused_result``), ``operand`` (the operation or operand does not match
the question's operation at that label), ``slip`` (any other wrong result), ``other`` (no wrong
computation line: a wrong final line, a missing step, an unparsable answer). Shows what RL fixes
(confused facts) and what it does not (the operand lookup some SFT seeds learn late).
"""

from __future__ import annotations

import argparse
import os
import re
from collections import Counter

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

from prmrl.config import load_config  # noqa: E402
from prmrl.models.factory import quiet_transformers  # noqa: E402

LINE = re.compile(r"^\(([a-z])\) (\d+) [a-z]+(?: [a-z]+)*: (-?\d+)([+\-*])(\d+)=(-?\d+)$")


def first_error(problem, response: str, rate: float) -> str:
    from prmrl.tasks.arith import OPS, confused_result

    for line in response.split("\n"):
        m = LINE.match(line.strip())
        if not m:
            continue
        k = ord(m.group(1)) - ord("a")
        a, op, b, r = int(m.group(3)), m.group(4), int(m.group(5)), int(m.group(6))
        if k >= len(problem.ops) or (op, b) != problem.ops[k] or int(m.group(2)) != b:
            return "operand"
        if r != OPS[op](a, b):
            return "confused" if confused_result(a, op, b, rate) == r else "slip"
    return "other"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("policies", nargs="+", help="policy folders (overrides may follow)")
    ap.add_argument("--problems", type=int, default=300)
    args, overrides = ap.parse_known_args()
    policies = [p for p in args.policies if "=" not in p]
    overrides += [p for p in args.policies if "=" in p]
    quiet_transformers()
    torch.set_num_threads(min(2, os.cpu_count() or 1))

    from prmrl.models.factory import load_policy, load_tokenizer
    from prmrl.models.sampler import generate
    from prmrl.tasks import arith, make_task

    cfg = load_config(None, ["run.progress=false", *overrides])
    task = make_task(cfg.task)
    problems = task.test_problems[: args.problems]
    rate = cfg.task.confusion_rate
    for path in policies:
        gen = generate(load_policy(path), load_tokenizer(path), [task.prompt(p.question) for p in problems],
                       max_new_tokens=cfg.eval.max_new_tokens, greedy=True)
        counts = Counter("right" if arith.grade(text, p.answer) else first_error(p, text, rate)
                         for p, text in zip(problems, gen.texts))
        print(f"{path}: {len(problems)} problems, greedy right {counts['right']}; wrong by first "
              f"error: " + ", ".join(f"{k} {counts[k]}" for k in ("confused", "operand", "slip", "other")))


if __name__ == "__main__":
    main()
