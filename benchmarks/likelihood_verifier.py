"""How good a verifier the policy's own likelihood is: the ceiling of a PRM built on its layers.

    .venv/bin/python benchmarks/likelihood_verifier.py POLICY [--problems 300] [--n 16] [--temperature 1.0]

Samples ``--n`` answers per held-out problem from POLICY and scores each step by the lowest
token probability (at T = 1) in its prefix, i.e. the step and every step before it. Prints that
score's step AUC against the arith step checker's labels, then Best-of-N accuracy when answers
are picked by the answer's lowest token probability or its summed log-probability, against
majority vote, greedy and pass@N. If even this score does not pass greedy, a verifier that
only re-reads the policy's own layers cannot either.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

from prmrl.config import load_config  # noqa: E402
from prmrl.models.factory import quiet_transformers  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("policy")
    ap.add_argument("--problems", type=int, default=300)
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_intermixed_args()
    quiet_transformers()
    torch.set_num_threads(args.threads)

    from prmrl.answers import extract_boxed
    from prmrl.evaluation.bon import best_of_n, majority_at_n, roc_auc
    from prmrl.models.factory import load_policy, load_tokenizer
    from prmrl.models.forward import token_logprobs
    from prmrl.models.sampler import generate
    from prmrl.steps import steps_for_batch
    from prmrl.tasks import make_task
    from prmrl.tasks.arith import check_steps

    cfg = load_config(None, ["run.progress=false", *args.overrides])
    tok = load_tokenizer(args.policy)
    task = make_task(cfg.task, tok)
    policy = load_policy(args.policy)
    n, N = args.problems, args.n
    qs, golds = task.test_questions[:n], task.test_golds[:n]
    prompts = [task.prompt(q) for q in qs]
    gen = generate(policy, tok, prompts, n=N, max_new_tokens=cfg.eval.max_new_tokens,
                   temperature=args.temperature, generator_seed=cfg.run.seed)
    R = gen.response_ids.shape[1]
    with torch.no_grad():
        lp = torch.cat([token_logprobs(policy, gen.input_ids[i:i + 256], gen.attention_mask[i:i + 256], R)[0]
                        for i in range(0, len(gen.texts), 256)])
    lp = lp.masked_fill(gen.response_mask == 0, 0.0)

    step_scores, step_labels = [], []
    for b, s in enumerate(steps_for_batch(tok, gen.response_ids.tolist(), task.delimiter)):
        labels = [v.label for v in check_steps(task.test_problems[b // N], s.texts)]
        start, running = 0, 0.0
        for end, label in zip(s.end_tokens, labels):
            running = min(running, lp[b, start:end + 1].min().item())
            step_scores.append(running)
            step_labels.append(label)
            start = end + 1
    print(f"{args.policy}: {n} problems x {N} samples at T = {args.temperature}")
    print(f"step AUC of the prefix's lowest token log-prob vs oracle labels: {roc_auc(step_scores, step_labels):.4f} "
          f"({len(step_labels)} steps, {sum(x < 0.5 for x in step_labels)} wrong)")

    verdicts = task.grade_batch(gen.texts, [g for g in golds for _ in range(N)])
    correct = [[verdicts[r] is True for r in range(p * N, (p + 1) * N)] for p in range(n)]
    answers = [[extract_boxed(gen.texts[r]) for r in range(p * N, (p + 1) * N)] for p in range(n)]
    per_problem = lambda xs: [xs[p * N:(p + 1) * N] for p in range(n)]  # noqa: E731
    scores = {"lowest token prob": per_problem(lp.min(1).values.tolist()),
              "sum of log-probs": per_problem(lp.sum(1).tolist())}
    greedy = generate(policy, tok, prompts, max_new_tokens=cfg.eval.max_new_tokens, greedy=True)
    print(f"greedy: {sum(v is True for v in task.grade_batch(greedy.texts, golds)) / n:.3f}")
    ks = [k for k in (1, 2, 4, 8, 16, 32, 64) if k <= N]
    print("pick by".ljust(20) + "".join(f"N={k:<6}" for k in ks))
    for name, sc in scores.items():
        print(name.ljust(20) + "".join(f"{best_of_n(sc, correct, k):<8.3f}" for k in ks))
    print("majority".ljust(20) + "".join(f"{majority_at_n(answers, correct, k):<8.3f}" for k in ks))
    print("pass@N".ljust(20) + "".join(f"{sum(any(c[:k]) for c in correct) / n:<8.3f}" for k in ks))


if __name__ == "__main__":
    main()
