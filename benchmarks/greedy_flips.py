"""Where two policies' greedy answers part: the answers that flip between right and wrong.

    .venv/bin/python benchmarks/greedy_flips.py SFT_POLICY PPO_POLICY [--problems 500]

Decodes the first N held-out problems greedily with both policies and, for every answer that is
right under one and wrong under the other, prints the line where the two answers first differ,
the token each policy chose there, and both policies' probabilities of those two tokens. Then
counts flips by direction and by the pair of tokens. On the embedded task this shows what RL
changed in the greedy answers (e.g. a subtraction result `1` becoming `0`).
"""

from __future__ import annotations

import argparse
import os
from collections import Counter

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

from prmrl.config import load_config  # noqa: E402
from prmrl.models.factory import quiet_transformers  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("before", help="policy folder (e.g. the cached SFT policy)")
    ap.add_argument("after", help="policy folder (e.g. RUN/ppo/policy)")
    ap.add_argument("--problems", type=int, default=500)
    ap.add_argument("--show", type=int, default=20, help="flips to print")
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_intermixed_args()
    quiet_transformers()

    from prmrl.models.factory import load_policy, load_tokenizer
    from prmrl.models.sampler import generate
    from prmrl.tasks import make_task

    cfg = load_config(None, ["run.progress=false", *args.overrides])
    tok = load_tokenizer(args.before)
    task = make_task(cfg.task, tok)
    n = min(args.problems, len(task.test_questions))
    prompts = [task.prompt(q) for q in task.test_questions[:n]]
    golds = task.test_golds[:n]
    models, texts = {}, {}
    for name, path in (("before", args.before), ("after", args.after)):
        models[name] = load_policy(path).eval()
        texts[name] = generate(models[name], tok, prompts, max_new_tokens=cfg.eval.max_new_tokens,
                               greedy=True).texts
    right = {k: [v is True for v in task.grade_batch(t, golds)] for k, t in texts.items()}

    directions, pairs, shown = Counter(), Counter(), 0
    for i in range(n):
        if right["before"][i] == right["after"][i]:
            continue
        a, b = texts["before"][i], texts["after"][i]
        j = next((k for k in range(min(len(a), len(b))) if a[k] != b[k]), min(len(a), len(b)))
        direction = "right -> wrong" if right["before"][i] else "wrong -> right"
        directions[direction] += 1
        if j >= min(len(a), len(b)):
            continue        # one answer is a prefix of the other
        ids = torch.tensor([tok.encode(prompts[i] + a[:j])])
        probs = {}
        with torch.no_grad():
            for name, m in models.items():
                p = m(ids).logits[0, -1].float().softmax(-1)
                probs[name] = [float(p[tok.convert_tokens_to_ids(c)]) for c in (a[j], b[j])]
        pairs[(a[j], b[j])] += 1
        if shown < args.show:
            shown += 1
            line = a[:j].split("\n")[-1]
            print(f"{direction}: ...{line!r} before {a[j]!r} after {b[j]!r}; "
                  f"P_before = {probs['before'][0]:.2f} / {probs['before'][1]:.2f}, "
                  f"P_after = {probs['after'][0]:.2f} / {probs['after'][1]:.2f}")
    acc = {k: sum(v) / n for k, v in right.items()}
    print(f"greedy accuracy on {n} problems: before {acc['before']:.3f}, after {acc['after']:.3f}")
    print("flips:", dict(directions))
    print("first differing token (before -> after), most common:",
          ", ".join(f"{x!r}->{y!r} x{c}" for (x, y), c in pairs.most_common(8)))


if __name__ == "__main__":
    main()
