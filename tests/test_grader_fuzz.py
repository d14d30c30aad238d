"""Fuzz the grader with hostile model output: it must answer True/False/None, never raise, and
never take longer than its deadline (plus the time to hand the answer to a worker).

Examples per test: ``PRMRL_FUZZ_EXAMPLES`` (default 40, to keep the suite fast; the benchmark,
``benchmarks/bench_grader.py --fuzz N``, runs more and prints counts and the worst time).
"""

from __future__ import annotations

import os
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from prmrl.grading import MathGrader, extract_answer

EXAMPLES = int(os.environ.get("PRMRL_FUZZ_EXAMPLES", "40"))
DEADLINE_S = 1.0
# Killing a hung worker and forking its replacement takes milliseconds; allow for a loaded machine.
SLACK_S = 0.5
WORST = {"call_s": 0.0, "calls": 0}

TOKENS = [
    "\\frac", "{", "}", "^", "_", "\\sqrt", "\\left(", "\\right)", "(", ")", "[", "]", "&", "\\\\",
    "\\begin{pmatrix}", "\\end{pmatrix}", "$", "\\text{", "x", "1", "9", "!", "=", ",", "\\infty",
    "\\pi", "\\cdot", "\\le", "\\%", "\\$", "e", "i", "\\in", "\\cup", "\\{", "\\}", "\\dfrac", "0.",
    "-", "+", "\\boxed{", "^\\circ", "\\mathbb{C}", "\\det", "\\sum_{k=1}^{\\infty}", "\\int",
]

digits = st.integers(min_value=1, max_value=99).map(str)
towers = st.builds(
    lambda bases, top: "".join(b + "^{" for b in bases) + top + "}" * len(bases),
    st.lists(st.sampled_from(["9", "10", "2", "99", "e", "x"]), min_size=1, max_size=6),
    digits,
)
nesting = st.builds(
    lambda d, kind: {"brace": "{" * d + "1" + "}" * d,
                     "frac": "\\frac{" * d + "1" + "}{2}" * d,
                     "paren": "(" * d + "1" + ")" * d}[kind],
    st.integers(min_value=1, max_value=200),
    st.sampled_from(["brace", "frac", "paren"]),
)
enormous = st.builds(
    lambda lead, zeros, wrap: wrap.format(n=lead + "0" * zeros),
    st.sampled_from(["1", "9", "-7", "3.5"]),
    st.integers(min_value=10, max_value=20_000),
    st.sampled_from(["{n}", "10^{{{n}}}", "{n}!", "\\frac{{{n}}}{{3}}", "{n}^{{{n}}}"]),
)
factorials = st.builds(
    lambda n, bangs, paren: (f"({n}!)" if paren else f"{n}") + "!" * bangs,
    st.integers(min_value=0, max_value=10**12),
    st.integers(min_value=1, max_value=4),
    st.booleans(),
)
malformed = st.lists(st.sampled_from(TOKENS), min_size=1, max_size=80).map("".join)
anything = st.text(max_size=300)
answers = st.one_of(towers, nesting, enormous, factorials, malformed, anything)
responses = st.one_of(
    answers.map(lambda a: f"Thus \\boxed{{{a}}}."),
    answers.map(lambda a: f"The answer is {a}"),
    answers,
    st.builds(lambda a, n: "Step ready.\n\n" * n + f"\\boxed{{{a}}}", answers,
              st.integers(min_value=0, max_value=20_000)),  # very long output
)
golds = st.sampled_from(
    ["72", "\\frac{1}{2}", "(1,2)", "x^2+1", "\\text{Evelyn}", "[0,\\infty)", "3\\sqrt{2}"]
)


@pytest.fixture(scope="module")
def grader():
    with MathGrader(num_workers=2, timeout_s=DEADLINE_S).start() as g:
        yield g
        print(f"\nfuzz: {WORST['calls']} calls, worst {WORST['call_s']:.3f} s, stats {g.stats}")


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(response=responses, gold=golds)
def test_fuzz_single_calls(grader, response, gold):
    crashes = grader.stats["none_crash"]
    t = time.monotonic()
    out = grader.grade(response, gold)
    dt = time.monotonic() - t
    WORST["call_s"] = max(WORST["call_s"], dt)
    WORST["calls"] += 1
    assert out in (True, False, None)
    assert dt < DEADLINE_S + SLACK_S
    assert grader.stats["none_crash"] == crashes  # no worker died
    assert grader.stats["max_check_s"] < DEADLINE_S


@settings(max_examples=max(1, EXAMPLES // 10), deadline=None, suppress_health_check=list(HealthCheck))
@given(batch=st.lists(st.tuples(responses, golds), min_size=1, max_size=40))
def test_fuzz_batches(grader, batch):
    t = time.monotonic()
    out = grader.grade_batch([r for r, _ in batch], [g for _, g in batch])
    dt = time.monotonic() - t
    assert len(out) == len(batch) and all(o in (True, False, None) for o in out)
    # Each answer gets at most one deadline's worth of a worker; two work side by side.
    assert dt < DEADLINE_S * (len(batch) / 2 + 1) + SLACK_S


@settings(max_examples=EXAMPLES * 5, deadline=None)
@given(text=st.one_of(st.text(max_size=2000), responses))
def test_extract_answer_never_raises_and_is_fast(text):
    t = time.monotonic()
    out = extract_answer(text)
    assert out is None or isinstance(out, str)
    assert time.monotonic() - t < 0.5
