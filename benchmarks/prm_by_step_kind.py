"""What a PRM has learned on the embedded task: its mean score for each kind of step.

    .venv/bin/python benchmarks/prm_by_step_kind.py --prm cache/rm/prm-XXXX
    .venv/bin/python benchmarks/prm_by_step_kind.py --prm PATH model.policy=PATH run.seed=1

Samples 4 answers for each of the first 500 test problems from the policy (default: the cached
SFT policy), scores every step with the PRM, and groups the steps with the arith step checker:
right computation steps, the first wrong step by cause (a confused fact's fixed wrong result,
another arithmetic slip, the wrong operation copied, a wrong running value), steps after an
error, restatement/check lines, final answers; for each kind, how many an answer has and how
often it is the step right before the answer line (where Delta shaping's bias shows: see the
README's ablation section).
A PRM that verifies gives slips and wrong copies low scores; one that has learned only step
types gives them nearly the scores of right steps, and every final answer the base rate.
Prints the step-level AUC against the oracle labels too, and the share of right and of wrong
steps scored below a few Clip thresholds eta.
"""

from __future__ import annotations

import argparse
import os
from collections import defaultdict

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from prmrl.config import load_config  # noqa: E402
from prmrl.evaluation.bon import roc_auc  # noqa: E402
from prmrl.jobs.sft import run_sft  # noqa: E402
from prmrl.models.factory import quiet_transformers  # noqa: E402
from prmrl.tasks.arith import PROMPT_TEMPLATE  # noqa: E402


def step_kinds(problem, steps: list[str], confusion_rate: float = 0.0) -> list[str]:
    """The kind of each step of one answer, from the arith checker's point of view; every step
    after the first wrong one is "after an error"."""
    from prmrl.tasks.arith import _STEP, OPS, check_steps, confused_result, marker, words_agree

    truth, k, kinds, dead = problem.values(), 0, [], False
    for step, verdict in zip(steps, check_steps(problem, steps)):
        if dead:
            kinds.append("after an error")
            continue
        dead = verdict.label == 0.0
        line = step.strip()
        m = _STEP.match(line)
        if m and not line.startswith("Check: "):
            a, op, b, c = int(m[4]), m[5], int(m[6]), int(m[7])
            if k >= len(problem.ops):
                kind = "wrong: extra computation"
            elif a != truth[k]:
                kind = "wrong running value"
            elif (op, b) != problem.ops[k] or not words_agree(m):
                kind = "wrong operation copied"
            elif OPS[op](a, b) != c:
                confused = confused_result(a, op, b, confusion_rate) == c
                kind = "confused fact (its wrong result)" if confused else "slip (arithmetic)"
            elif m[1] is not None and f"({m[1]})" != marker(k):
                kind = "wrong label"
            else:
                kind, k = "right", k + 1
        elif line.startswith("Check: "):
            kind = f"check line ({'true' if verdict.label else 'false'})"
        elif line.startswith("Start: "):
            kind = f"restatement ({'true' if verdict.label else 'false'})"
        elif "\\boxed" in line:
            kind = f"answer: {'right' if verdict.label else 'wrong'}"
        elif verdict.kind == "malformed":
            kind = "malformed line"
        else:
            kind = f"other line ({'true' if verdict.label else 'false'})"
        kinds.append(kind)
    return kinds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--prm", required=True, help="a native-format PRM folder")
    ap.add_argument("--problems", type=int, default=500)
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args()
    quiet_transformers()

    from prmrl.models.factory import load_policy, load_tokenizer
    from prmrl.rm.label import oracle_step_labels, sample_answers
    from prmrl.rewards.reward_models import load_prm
    from prmrl.tasks import make_task

    cfg = load_config(None, ["run.progress=false", *args.overrides])
    policy = cfg.model.policy or str(run_sft(cfg))
    tok = load_tokenizer(policy)
    task = make_task(cfg.task, tok)
    n = min(args.problems, len(task.test_questions))
    answers, _ = sample_answers(load_policy(policy), tok, task.test_questions[:n], task.test_golds[:n],
                                prompt_fn=task.prompt, grade_batch=task.grade_batch,
                                delimiter=task.delimiter, n_samples=4, temperature=1.0,
                                max_new_tokens=cfg.eval.max_new_tokens, seed=cfg.run.seed + 7)
    prm = load_prm(args.prm, "native", prompt_template=PROMPT_TEMPLATE, delimiter=task.delimiter)
    scores = prm.score([task.test_questions[a.problem] for a in answers], [a.steps for a in answers],
                       batch_size=256)
    oracle = oracle_step_labels(task.test_problems, answers)
    by_kind: dict[str, list[float]] = defaultdict(list)
    before_answer: dict[str, int] = defaultdict(int)   # kind of the step right before the answer
    for a, ss in zip(answers, scores):
        kinds = step_kinds(task.test_problems[a.problem], a.steps, cfg.task.confusion_rate)
        for kind, s in zip(kinds, ss):
            if s is not None:
                by_kind[kind].append(s)
        if len(kinds) >= 2 and kinds[-1].startswith("answer"):
            before_answer[kinds[-2]] += 1
    xs = [s for ss, ys in zip(scores, oracle) for s, y in zip(ss, ys) if s is not None]
    ys = [y for ss, yy in zip(scores, oracle) for s, y in zip(ss, yy) if s is not None]
    print(f"PRM {args.prm}; policy {policy}; {len(answers)} answers, {len(xs)} steps")
    print(f"step AUC against the oracle labels: {roc_auc(xs, ys):.3f}")
    right = [x for x, y in zip(xs, ys) if y >= 0.5]
    wrong = [x for x, y in zip(xs, ys) if y < 0.5]
    for eta in (0.2, 0.3, 0.4, 0.5):   # what a Clip threshold eta penalises
        print(f"scored below {eta}: {sum(x < eta for x in right) / max(1, len(right)):.1%} of right "
              f"steps, {sum(x < eta for x in wrong) / max(1, len(wrong)):.1%} of wrong ones")
    print(f"{'kind of step':<28}{'steps':>7}{'per answer':>12}{'mean score':>12}{'before answer':>15}")
    for kind in sorted(by_kind, key=lambda k: -sum(by_kind[k]) / len(by_kind[k])):
        v = by_kind[kind]
        print(f"{kind:<28}{len(v):>7}{len(v) / len(answers):>12.3f}{sum(v) / len(v):>12.3f}"
              f"{before_answer[kind] / len(answers):>15.3f}")


if __name__ == "__main__":
    main()
