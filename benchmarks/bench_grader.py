"""Throughput and latency of the success grader on GSM8K-style responses, and an adversarial fuzz.

    .venv/bin/python benchmarks/bench_grader.py                 # rates + latency
    .venv/bin/python benchmarks/bench_grader.py --fuzz 2000     # also fuzz 2000 adversarial inputs

Prints, side by side:
- math-verify called directly on the main thread, pinned to one core (its signal timeouts on),
  on the full responses and on just "\\boxed{<extracted answer>}" (what the workers parse);
- MathGrader (worker processes, per-answer deadline), cold and warm cache, with the exact
  fast path for plain numbers on (the default) and off (every pair goes through math-verify);
- the worst wall time of a single ``grade`` call, and of any check inside the workers.

Responses are built from the real GSM8K golds (train + test): half right, half wrong, the final
answer written in several ways ("1,000", "\\$18", "18 \\text{ dollars}", "The answer is 18.", and a
last sentence with no marked answer, "So she has $18 left.", read as GSM8K's numeric task reads
it). The grader runs as the GSM8K task runs it: ``MathGrader(numeric_answers=True)``.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import sys
import time

from prmrl.grading import MathGrader, extract_answer
from prmrl.tasks.math_data import load_problems


def gsm8k_style_pairs(n: int, seed: int = 0) -> tuple[list[str], list[str], list[bool]]:
    golds = [p.answer for split in ("train", "test") for p in load_problems("gsm8k", split)[0]]
    rng = random.Random(seed)
    responses, out_golds, labels = [], [], []
    for i in range(n):
        gold = golds[i % len(golds)]
        right = i % 2 == 0
        value = int(gold) if right else int(gold) + rng.choice([-10, -1, 1, 2, 7, 100])
        shown = rng.choice(
            [
                str(value),
                f"{value:,}",
                f"\\${value}",
                f"{value} \\text{{ dollars}}",
                f"{value}.00",
                f"\\text{{{value}}}",
            ]
        )
        steps = "\n\n".join(f"Step {k}: we compute {rng.randint(1, 99)} + {k} = something." for k in range(3))
        roll = rng.random()
        if roll < 0.15:
            tail = f"The answer is {value}."
        elif roll < 0.25:
            tail = f"So she has ${value} left."  # no marked answer: the last number (numeric task)
        else:
            tail = f"So the final answer is $\\boxed{{{shown}}}$."
        responses.append(f"{steps}\n\n{tail}")
        out_golds.append(gold)
        labels.append(right)
    return responses, out_golds, labels


def bench_math_verify_direct(responses: list[str], golds: list[str], budget_s: float) -> float:
    """What a caller would do without MathGrader: parse + verify on the main thread, one core."""
    from math_verify import parse, verify

    logging.getLogger("math_verify").setLevel(logging.ERROR)
    old = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(old)})
    try:
        start, n = time.perf_counter(), 0
        for response, gold in zip(responses, golds):
            verify(parse(gold), parse(response))
            n += 1
            if time.perf_counter() - start > budget_s:
                break
        return n / (time.perf_counter() - start)
    finally:
        os.sched_setaffinity(0, old)


def bench_grader(responses, golds, labels, workers, timeout_s, fast_path: bool) -> dict:
    out = {}
    with MathGrader(num_workers=workers, timeout_s=timeout_s, use_fast_path=fast_path,
                    numeric_answers=True) as g:
        t = time.perf_counter()
        g.start()
        out["startup_s"] = time.perf_counter() - t
        for phase in ("cold", "warm"):
            before = dict(g.stats)
            t = time.perf_counter()
            results = g.grade_batch(responses, golds)
            out[phase] = len(responses) / (time.perf_counter() - t)
            out[f"{phase}_agree"] = sum(r == lab for r, lab in zip(results, labels))
            out[f"{phase}_stats"] = {k: g.stats[k] - before[k] for k in before}
        # Single calls, each on a pair not seen before (so nothing is served from the cache).
        worst = 0.0
        for k in range(200):
            t = time.perf_counter()
            g.grade(responses[k] + " ", golds[k] + "0" if k % 2 else golds[k] + ".5")
            worst = max(worst, time.perf_counter() - t)
        out["worst_call_s"] = worst
        out["stats"] = dict(g.stats)
    return out


def _burn(n: int) -> float:
    t = time.perf_counter()
    x = 0
    for i in range(n):
        x += i * i
    return time.perf_counter() - t


def parallel_speedup(n: int = 3_000_000) -> float:
    """Throughput of len(cores) busy Python processes relative to one (2.0 = two real cores)."""
    import multiprocessing

    cores = len(os.sched_getaffinity(0))
    one = _burn(n)
    with multiprocessing.get_context("spawn").Pool(cores) as pool:
        pool.map(_burn, [1000] * cores)  # start-up out of the timing
        t = time.perf_counter()
        pool.map(_burn, [n] * cores)
        many = time.perf_counter() - t
    return cores * one / many


def adversarial_inputs(n: int, seed: int = 0) -> list[str]:
    """Random hostile answers: towers, nesting, huge numbers, factorials, broken LaTeX, length."""
    rng = random.Random(seed)
    tokens = ["\\frac", "{", "}", "^", "_", "\\sqrt", "\\left(", "\\right)", "(", ")", "[", "]",
              "\\begin{pmatrix}", "&", "\\\\", "\\end{pmatrix}", "$", "\\text{", "x", "1", "9",
              "!", "=", ",", "\\infty", "\\pi", "\\cdot", "\\le", "\\%", "\\$", "e", "i", "\\in",
              "\\cup", "\\{", "\\}", "\\dfrac", "0.", "-", "+", "\\boxed{", "\\mbox{", "^\\circ"]
    out = []
    for _ in range(n):
        kind = rng.randrange(7)
        if kind == 0:
            k = rng.randint(1, 6)
            a = "".join(rng.choice(["9^{", "10^{", "2^{", "99^{", "e^{"]) for _ in range(k))
            s = a + str(rng.randint(2, 99)) + "}" * k
        elif kind == 1:
            d = rng.randint(1, 60)
            s = "{" * d + "1" + "}" * d if rng.random() < 0.5 else "\\frac{" * d + "1" + "}{2}" * d
        elif kind == 2:
            s = rng.choice(["1", "9", "-7"]) + "0" * rng.randint(10, 20000)
            s = s if rng.random() < 0.5 else f"10^{{{s}}}"
        elif kind == 3:
            s = f"{rng.randint(1, 10**9)}!" + "!" * rng.randint(0, 3)
            s = s if rng.random() < 0.5 else f"({s})!"
        elif kind == 4:
            s = "".join(rng.choice(tokens) for _ in range(rng.randint(1, 60)))
        elif kind == 5:
            s = "\\sqrt{" * rng.randint(1, 9) + "x^{" + str(rng.randint(1, 10**6)) + "}" * 10
        else:
            s = "blah " * rng.randint(1000, 50000) + "\\boxed{" + str(rng.randint(0, 99)) + "}"
        wrap = rng.randrange(3)
        out.append("\\boxed{" + s + "}" if wrap == 0 else f"The answer is {s}" if wrap == 1 else s)
    return out


def fuzz(n: int, workers: int, timeout_s: float) -> None:
    inputs = adversarial_inputs(n)
    golds = ["72", "\\frac{1}{2}", "(1,2)", "x^2+1", "\\text{Evelyn}"]
    worst, over = 0.0, 0
    with MathGrader(num_workers=workers, timeout_s=timeout_s) as g:
        g.start()
        t0 = time.perf_counter()
        for k, s in enumerate(inputs):
            t = time.perf_counter()
            r = g.grade(s, golds[k % len(golds)])
            dt = time.perf_counter() - t
            assert r in (True, False, None)
            worst = max(worst, dt)
            over += dt > timeout_s + 0.5
        total = time.perf_counter() - t0
        stats = g.stats
    print(f"fuzz: {n} adversarial inputs in {total:.1f} s, one grade() call each, "
          f"deadline {timeout_s} s")
    print(f"  worst call {worst:.3f} s; calls over deadline + 0.5 s: {over}; "
          f"worst finished check {stats['max_check_s']:.3f} s")
    print(f"  outcomes: true {stats['true']}, false {stats['false']}, "
          f"unparseable {stats['none_unparseable']} (too complex {stats['too_complex']}), "
          f"timeout {stats['none_timeout']}, crash {stats['none_crash']}, "
          f"workers started {stats['worker_starts']}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=8792, help="responses to grade (GSM8K train+test = 8792)")
    ap.add_argument("--workers", type=int, default=None, help="grader processes (default: cores)")
    ap.add_argument("--timeout", type=float, default=5.0, help="per-answer deadline, seconds")
    ap.add_argument("--direct-budget", type=float, default=10.0, help="seconds for the direct run")
    ap.add_argument("--fuzz", type=int, default=0, help="adversarial inputs to fuzz (0: skip)")
    ap.add_argument("--fuzz-timeout", type=float, default=1.0)
    args = ap.parse_args()

    responses, golds, labels = gsm8k_style_pairs(args.n)
    print(f"{len(responses)} GSM8K-style responses ({sum(labels)} right), "
          f"{len(os.sched_getaffinity(0))} cores, python {sys.version.split()[0]}")
    direct = bench_math_verify_direct(responses, golds, args.direct_budget)
    print(f"math-verify direct, main thread, 1 core, full responses: {direct:8.0f} answers/s")
    boxed = ["\\boxed{" + (extract_answer(r, numeric=True) or "") + "}" for r in responses]
    direct = bench_math_verify_direct(boxed, golds, args.direct_budget)
    print(f"math-verify direct, main thread, 1 core, \\boxed{{answer}}: {direct:8.0f} answers/s")
    for fast in (True, False):
        r = bench_grader(responses, golds, labels, args.workers, args.timeout, fast)
        name = "MathGrader, fast path on " if fast else "MathGrader, fast path off"
        print(f"{name} ({args.timeout:g} s deadline):  cold {r['cold']:8.0f} answers/s, "
              f"warm cache {r['warm']:8.0f} answers/s  "
              f"(start-up {r['startup_s']:.1f} s, agree with labels {r['cold_agree']}/{len(labels)})")
        c, s = r["cold_stats"], r["stats"]
        checked = len(responses) - c["fast_path"] - c["cache_hits"] - c["no_answer"]
        print(f"    cold run: {c['fast_path']} by the fast path, {c['cache_hits']} repeats of a "
              f"pair in the batch, {checked} math-verify checks in the workers; none: "
              f"unparseable {c['none_unparseable']}, timeout {c['none_timeout']}, "
              f"crash {c['none_crash']}")
        print(f"    worst single grade() call {r['worst_call_s'] * 1000:.1f} ms (200 calls), "
              f"worst check in a worker {s['max_check_s'] * 1000:.1f} ms")
    # Every pair distinct (no repeats, no fast path): the raw rate of math-verify checks.
    distinct_r = [f"So the answer is \\boxed{{\\${int(g) + k}}}." for k, g in enumerate(golds)]
    distinct_labels = [k == 0 for k in range(len(golds))]
    for workers in sorted({1, args.workers or len(os.sched_getaffinity(0))}):
        r = bench_grader(distinct_r, golds, distinct_labels, workers, args.timeout, fast_path=False)
        c = r["cold_stats"]
        print(f"MathGrader, {workers} worker(s), all {len(golds)} pairs distinct, fast path off: "
              f"{r['cold']:6.0f} answers/s ({c['cache_hits']} repeats, {c['fast_path']} fast path)")
    print(f"(parallel speed-up of pure Python here: {parallel_speedup():.2f}x with "
          f"{len(os.sched_getaffinity(0))} processes)")
    if args.fuzz:
        fuzz(args.fuzz, args.workers, args.fuzz_timeout)


if __name__ == "__main__":
    main()
