"""Agreement of prmrl's success grader and of math-verify's own ``parse`` + ``verify`` with the
right verdict.

    .venv/bin/python benchmarks/grader_agreement.py                       # table + GSM8K + MATH500
    .venv/bin/python benchmarks/grader_agreement.py --responses s.jsonl   # + sampled responses

Sets (each pair has a known right verdict):

- table: tests/data/grading_pairs.py, pairs written for prmrl with a careful grader's verdict;
- gsm8k: the GSM8K test solutions as responses (their last line is "#### X"), right and with
  the final number changed, plus the golds written the ways models write them ("The answer is
  X.", "\\boxed{X}", "So she has $X left."); graded as a numeric task;
- math500: the MATH500 reference solutions (they end in \\boxed{}) against their gold and against
  the next row's different gold, plus the golds written the ways models write them;
- prm800k: the GPT-4 solutions in the PRM800K sample records, labelled by hand below;
- --responses FILE: JSONL of sampled responses with ``response``, ``gold`` and optionally
  ``verdict`` (bool) and ``numeric`` (bool); without verdicts only the two graders'
  agreement with each other is printed. (No policy samples ship with the project.)

math-verify is called as a new user would: ``verify(parse(gold), parse(response))`` on the raw
strings (its default extraction, LaTeX and plain expressions, with its own timeouts, on the main
thread), and, as a fairer baseline, with a gold that has no ``$`` or box wrapped in ``$..$`` as
its README shows. Agreement counts prmrl's None (cannot decide; the trainer gives it
``reward.unscorable_reward``) as a miss; "reward" agreement reads None as no reward (False).
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import re
import runpy
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"

Pair = dict  # response, gold, verdict, numeric, kind


def table_pairs() -> list[Pair]:
    return runpy.run_path(str(ROOT / "tests" / "data" / "grading_pairs.py"))["PAIRS"]


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def gsm8k_pairs(path: Path, seed: int = 0) -> list[Pair]:
    rng = random.Random(seed)
    out = []
    for row in _jsonl(path):
        solution = row["answer"]
        gold = solution.rsplit("####", 1)[1].strip().replace(",", "")
        wrong = str(int(gold) + rng.choice([-10, -1, 1, 2, 7, 100]))
        body = solution.rsplit("####", 1)[0].strip()
        steps = re.sub(r"<<[^>]*>>", "", body)  # the calculator notes, as a model would not write them
        out.append(dict(kind="gsm8k solution", response=solution, gold=gold, verdict=True, numeric=True))
        out.append(dict(kind="gsm8k solution", response=f"{body}\n#### {wrong}", gold=gold, verdict=False,
                        numeric=True))
        for value, verdict in ((gold, True), (wrong, False)):
            shown = f"{int(value):,}" if rng.random() < 0.3 else value
            style = rng.choice([
                f"{steps}\nThe answer is {shown}.",
                f"{steps}\nSo the final answer is $\\boxed{{{shown}}}$.",
                f"{steps}\nSo she has ${shown} left.",
                f"{steps}\nTherefore, the total is **{shown}**.",
            ])
            out.append(dict(kind="gsm8k styles", response=style, gold=gold, verdict=verdict, numeric=True))
    return out


def _differs(a: str, b: str) -> bool:
    norm = lambda s: re.sub(r"^[a-z]\s*=\s*", "", s.replace(" ", ""))  # noqa: E731
    return norm(a) != norm(b)


def math500_pairs(path: Path, seed: int = 0) -> list[Pair]:
    rng = random.Random(seed)
    rows = _jsonl(path)
    golds = [r["answer"] for r in rows]
    out = []
    for i, row in enumerate(rows):
        gold = golds[i]
        j = (i + 1) % len(golds)
        while not _differs(golds[j], gold):
            j = (j + 1) % len(golds)
        other = golds[j]
        out.append(dict(kind="math500 solution", response=row["solution"], gold=gold, verdict=True,
                        numeric=False))
        out.append(dict(kind="math500 solution", response=row["solution"], gold=other, verdict=False,
                        numeric=False))
        for shown, verdict in ((gold, True), (other, False)):
            style = rng.choice([
                f"Putting everything together, the final answer is $\\boxed{{{shown}}}$.",
                f"Therefore, the answer is ${shown}$.",
                f"Final Answer: The final answer is ${shown}$. I hope it is correct.",
                f"Thus we obtain\n\\[\n{shown}\n\\]",
                f"## Step 2: Conclude\nThe final answer is: $\\boxed{{{shown}}}$",
            ])
            out.append(dict(kind="math500 styles", response=style, gold=gold, verdict=verdict, numeric=False))
    return out


# PRM800K sample records: GPT-4's solutions, step by step (the chosen or first completion of
# each step). Verdicts read by hand: "solution" records end in "# Answer" with the ground truth;
# "give_up" / "found_error" records stop without an answer (wrong).
PRM800K_VERDICTS = {"solution": True, "give_up": False, "found_error": False}


def prm800k_pairs(path: Path) -> list[Pair]:
    out = []
    for rec in _jsonl(path):
        gold = rec["question"].get("ground_truth_answer")
        finish = rec["label"].get("finish_reason")
        if gold is None or finish not in PRM800K_VERDICTS:
            continue
        texts = []
        for step in rec["label"]["steps"]:
            chosen = step.get("chosen_completion")
            if chosen is not None:
                texts.append(step["completions"][chosen]["text"])
            elif step.get("human_completion"):
                texts.append(step["human_completion"]["text"])
            elif step["completions"]:
                texts.append(step["completions"][0]["text"])
        out.append(dict(kind="prm800k", response="\n".join(texts), gold=gold,
                        verdict=PRM800K_VERDICTS[finish], numeric=False))
    return out


def response_pairs(path: Path) -> list[Pair]:
    return [dict(kind="responses", response=r["response"], gold=str(r["gold"]), verdict=r.get("verdict"),
                 numeric=bool(r.get("numeric", False))) for r in _jsonl(path)]


# ---------------------------------------------------------------------------------------------


def grade_prmrl(pairs: list[Pair], workers: int, timeout_s: float) -> tuple[list, float]:
    from prmrl.grading import MathGrader

    out: list = [None] * len(pairs)
    with MathGrader(num_workers=workers, timeout_s=timeout_s) as g:
        g.start()
        t = time.perf_counter()
        for numeric in (False, True):
            idx = [i for i, p in enumerate(pairs) if p["numeric"] == numeric]
            got = g.grade_batch([pairs[i]["response"] for i in idx], [pairs[i]["gold"] for i in idx],
                                numeric=numeric)
            for i, v in zip(idx, got):
                out[i] = v
        return out, time.perf_counter() - t


def _wrapped(gold: str) -> str:
    return gold if "$" in gold or "\\boxed" in gold or "\\(" in gold or "\\[" in gold else f"${gold}$"


def grade_math_verify(pairs: list[Pair], wrap_gold: bool) -> list[bool]:
    from math_verify import parse, verify

    out = []
    for p in pairs:
        gold = _wrapped(p["gold"]) if wrap_gold else p["gold"]
        try:
            out.append(bool(verify(parse(gold), parse(p["response"]))))
        except Exception:  # noqa: BLE001 -- a crash of the baseline is a wrong verdict
            out.append(False)
    return out


def _summary(name: str, pairs: list[Pair], got: list) -> dict:
    n = len(pairs)
    agree = sum(v is p["verdict"] for p, v in zip(pairs, got))
    reward = sum(bool(v) == p["verdict"] for p, v in zip(pairs, got))
    fp = sum(v is True and p["verdict"] is False for p, v in zip(pairs, got))
    fn = sum(v is not True and p["verdict"] is True for p, v in zip(pairs, got))
    none = sum(v is None for v in got)
    return dict(name=name, n=n, agree=agree, reward=reward, fp=fp, fn=fn, none=none)


def report(title: str, pairs: list[Pair], columns: dict[str, list]) -> None:
    labelled = [i for i, p in enumerate(pairs) if p["verdict"] is not None]
    print(f"\n{title}: {len(pairs)} pairs" + ("" if len(labelled) == len(pairs) else
                                               f" ({len(labelled)} with a verdict)"))
    if labelled:
        sub = [pairs[i] for i in labelled]
        print(f"  {'grader':34} {'agree':>14} {'reward agree':>14} {'false +':>8} {'false -':>8} {'None':>5}")
        for name, got in columns.items():
            s = _summary(name, sub, [got[i] for i in labelled])
            print(f"  {name:34} {s['agree']:5}/{s['n']:<5} {100 * s['agree'] / s['n']:5.1f}% "
                  f"{100 * s['reward'] / s['n']:12.1f}% {s['fp']:8} {s['fn']:8} {s['none']:5}")
    names = list(columns)
    if len(names) >= 2:
        a, b = columns[names[0]], columns[names[1]]
        same = sum(bool(x) == bool(y) for x, y in zip(a, b))
        print(f"  {names[0]} and {names[1]} give the same reward on {same}/{len(pairs)}")


def by_kind(pairs: list[Pair], columns: dict[str, list]) -> None:
    kinds = defaultdict(list)
    for i, p in enumerate(pairs):
        kinds[p["kind"]].append(i)
    names = list(columns)
    print(f"  by kind (agree): " + ", ".join(names))
    for kind, idx in sorted(kinds.items()):
        cells = [f"{sum(columns[n][i] is pairs[i]['verdict'] for i in idx):4}/{len(idx):<4}" for n in names]
        print(f"    {kind:22} " + "  ".join(cells))


def false_positives(pairs: list[Pair], columns: dict[str, list]) -> None:
    names = list(columns)
    fps = {n: {i for i, (p, v) in enumerate(zip(pairs, columns[n])) if v is True and p["verdict"] is False}
           for n in names}
    ours = fps[names[0]]
    for other in names[1:]:
        print(f"  false positives of {names[0]} that {other} does not make: {len(ours - fps[other])}")
    for i in sorted(ours):
        print(f"    {names[0]} false positive: {pairs[i]['response'][-70:]!r} vs {pairs[i]['gold']!r}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--responses", type=Path, help="JSONL of sampled responses (response, gold[, verdict, numeric])")
    ap.add_argument("--data", type=Path, default=DATA, help="the shared data folder (gsm8k/, math500/, prm800k/)")
    ap.add_argument("--limit", type=int, default=0, help="use only the first N rows of GSM8K and MATH500")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=5.0)
    ap.add_argument("--show", type=int, default=0, help="print up to N pairs where prmrl is wrong, per set")
    args = ap.parse_args()
    logging.getLogger("math_verify").setLevel(logging.CRITICAL)
    logging.getLogger("latex2sympy2_extended").setLevel(logging.CRITICAL)

    sets: list[tuple[str, list[Pair]]] = [("table (tests/data/grading_pairs.py)", table_pairs())]
    for name, sub, build in [("GSM8K test", "gsm8k/test.jsonl", gsm8k_pairs),
                             ("MATH500", "math500/test.jsonl", math500_pairs),
                             ("PRM800K samples (GPT-4 solutions)", "prm800k/samples_prm800k_records.jsonl",
                              prm800k_pairs)]:
        path = args.data / sub
        if not path.exists():
            print(f"skipping {name}: {path} is missing")
            continue
        pairs = build(path)
        if args.limit and name != "PRM800K samples (GPT-4 solutions)":
            pairs = pairs[: 6 * args.limit]
        sets.append((name, pairs))
    if args.responses:
        sets.append((f"sampled responses ({args.responses})", response_pairs(args.responses)))

    print(f"python {sys.version.split()[0]}; prmrl with {args.workers} workers, {args.timeout:g} s deadline")
    for title, pairs in sets:
        ours, secs = grade_prmrl(pairs, args.workers, args.timeout)
        t = time.perf_counter()
        raw = grade_math_verify(pairs, wrap_gold=False)
        mv_secs = time.perf_counter() - t
        wrapped = grade_math_verify(pairs, wrap_gold=True)
        columns = {"prmrl": ours, "math-verify (raw strings)": raw, "math-verify (gold in $..$)": wrapped}
        report(title, pairs, columns)
        print(f"  time: prmrl {secs:.1f} s ({len(pairs) / secs:.0f}/s), math-verify raw {mv_secs:.1f} s")
        if all(p["verdict"] is not None for p in pairs):
            by_kind(pairs, columns)
            false_positives(pairs, columns)
        if args.show:
            wrong = [(p, v) for p, v in zip(pairs, ours) if p["verdict"] is not None and v is not p["verdict"]]
            for p, v in wrong[: args.show]:
                print(f"    prmrl {v} (right: {p['verdict']}): {p['response'][-90:]!r} vs {p['gold']!r}")


if __name__ == "__main__":
    main()
