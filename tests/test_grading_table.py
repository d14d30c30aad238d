"""The success grader against a table of (response, gold) pairs written for prmrl, each with the
verdict a careful grader gives and why (tests/data/grading_pairs.py): every form of answer the
extractor reads, the equivalences math-verify decides, their wrong-answer twins, and responses
that try to farm the reward.

Also: on the table, prmrl agrees with the careful verdict at least as often as math-verify's own
``parse`` + ``verify`` called on the raw strings, and every false positive prmrl makes,
math-verify makes too. (math-verify's default ``parse`` evals with sympy's ``parse_expr``; that
is run here only on the table's own strings, never by prmrl on model text.)
"""

from __future__ import annotations

import logging
import runpy
from collections import Counter
from pathlib import Path

import pytest

from prmrl.grading import MathGrader

TABLE = Path(__file__).parent / "data" / "grading_pairs.py"
PAIRS: list[dict] = runpy.run_path(str(TABLE))["PAIRS"]
KINDS = sorted({p["kind"] for p in PAIRS})

# Pairs where prmrl's verdict is not the careful one, by design or by a known limit: what it
# answers, and why. A change here is a change of behaviour: move a fixed pair out.
KNOWN_MISSES: dict[tuple[str, str, bool], tuple[bool | None, str]] = {
    ("Janet sells 16 - 3 - 4 = 9 eggs a day.\nShe makes 9 * 2 = 18 dollars every day.", "18", False): (
        False, "nothing marks an answer and the task is not numeric: a bare last number is read "
               "only where the task says its answers are numbers (GSM8K)"),
    ("We know $2 + 3 = 5$, but we still need the product.", "5", True): (
        True, "an unfinished response: its last math is read as the answer (math-verify does the "
              "same)"),
}


def _key(p: dict) -> tuple[str, str, bool]:
    return p["response"], p["gold"], p["numeric"]


def _grade_table(grader: MathGrader) -> list[bool | None]:
    out: list[bool | None] = [None] * len(PAIRS)
    for numeric in (False, True):
        idx = [i for i, p in enumerate(PAIRS) if p["numeric"] == numeric]
        got = grader.grade_batch([PAIRS[i]["response"] for i in idx], [PAIRS[i]["gold"] for i in idx],
                                 numeric=numeric)
        for i, v in zip(idx, got):
            out[i] = v
    return out


@pytest.fixture(scope="module")
def verdicts() -> list[bool | None]:
    with MathGrader(num_workers=2, timeout_s=10.0) as g:
        out = _grade_table(g)
        assert g.stats["none_timeout"] == 0 and g.stats["none_crash"] == 0
    return out


@pytest.fixture(scope="module")
def math_verify_verdicts() -> list[bool]:
    from math_verify import parse, verify

    logging.getLogger("math_verify").setLevel(logging.CRITICAL)
    return [bool(verify(parse(p["gold"]), parse(p["response"]))) for p in PAIRS]


def test_table_covers_every_kind_both_ways():
    assert len(PAIRS) >= 300
    assert set(KINDS) == {"issue", "extract", "number", "expr", "relation", "set", "gold", "string",
                          "gsm8k", "adversarial"}
    for kind in KINDS:
        verdicts = Counter(p["verdict"] for p in PAIRS if p["kind"] == kind)
        assert verdicts[True] >= 5 and verdicts[False] >= 5, (kind, verdicts)
    for p in PAIRS:
        assert isinstance(p["verdict"], bool) and p["why"].strip() and p["gold"].strip()
    keys = [_key(p) for p in PAIRS]
    assert len(set(keys)) == len(keys), "a pair is in the table twice"
    assert set(KNOWN_MISSES) <= set(keys)


@pytest.mark.parametrize("kind", KINDS)
def test_every_pair_gets_the_careful_verdict(verdicts, kind):
    wrong = [
        (p["response"][-80:], p["gold"], f"expected {p['verdict']}, got {v}", p["why"])
        for p, v in zip(PAIRS, verdicts)
        if p["kind"] == kind and v is not p["verdict"] and _key(p) not in KNOWN_MISSES
    ]
    assert wrong == []


def test_known_misses_are_unchanged(verdicts):
    for p, v in zip(PAIRS, verdicts):
        known = KNOWN_MISSES.get(_key(p))
        if known is not None:
            assert v is known[0], (p["response"], p["gold"], v)


def test_agreement_at_least_math_verify_and_no_false_positive_of_our_own(verdicts, math_verify_verdicts):
    ours = sum(v is p["verdict"] for p, v in zip(PAIRS, verdicts))
    theirs = sum(m is p["verdict"] for p, m in zip(PAIRS, math_verify_verdicts))
    assert ours >= theirs, (ours, theirs)
    our_fp = {i for i, (p, v) in enumerate(zip(PAIRS, verdicts)) if v is True and not p["verdict"]}
    their_fp = {i for i, (p, m) in enumerate(zip(PAIRS, math_verify_verdicts)) if m and not p["verdict"]}
    assert our_fp <= their_fp, [(PAIRS[i]["response"], PAIRS[i]["gold"]) for i in our_fp - their_fp]


# --- the extraction API ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "gold, unwrapped",
    [
        ("$[0,1)$", "[0,1)"),
        ("\\boxed{\\frac{1}{2}}", "\\frac{1}{2}"),
        ("She sold 48/2 = <<48/2=24>>24 clips.\n#### 1,000", "1,000"),
        ("\\(3\\)", "3"),
        ("$$x^2+1$$", "x^2+1"),
        ("The answer is $-4$.", "-4"),
        ("\\$18", "18"),
        ("\\text{Evelyn}", "\\text{Evelyn}"),
        ("y = 2x - 3", "y = 2x - 3"),
        ("\\dfrac{3}{4}", "\\frac{3}{4}"),
        ("70,110", "70,110"),  # a list or a number: left to the comparison
    ],
)
def test_extract_gold(gold, unwrapped):
    from prmrl.answers import extract_gold

    assert extract_gold(gold) == unwrapped


@pytest.mark.parametrize(
    "response, numeric, answer",
    [
        ("She makes 9 * 2 = 18 dollars.", True, "18"),
        ("She makes 9 * 2 = 18 dollars.", False, None),
        ("So she has $18 left.", True, "18"),
        ("from 3-5 we get", True, None),
        ("So x = 2y + 5", True, None),
        ("1, 2, 3, 4, 5", True, None),
        ("So the answers are $x = 2$ and $x = 3$.", True, "x = 2, x = 3"),
        ("\\boxed{3} \\boxed{4}", False, "3, 4"),
        ("\\boxed{18}. Wait, that is wrong.", False, None),
        ("\\boxed{17}. Wait, that is wrong. So \\boxed{18}.", False, "18"),
        ("The answer is 17, not $18$.", False, "17"),
        ("The answer is x = $5$", False, "5"),
        ("Final Answer:\n\n$\\frac13$", False, "\\frac13"),
        ("Thus the answer is \\(1\\,000\\).", False, "1000"),
        ("<think>\\boxed{3}</think> The answer is $4$.", False, "4"),
    ],
)
def test_extract_answer_forms(response, numeric, answer):
    from prmrl.answers import extract_answer

    assert extract_answer(response, numeric=numeric) == answer


def test_numeric_option_of_grader_and_grade():
    import prmrl.grading as grading

    response = "She makes 9 * 2 = 18 dollars every day."
    with MathGrader(num_workers=1, numeric_answers=True) as g:
        assert g.grade(response, "18") is True
        assert g.grade(response, "18", numeric=False) is False  # a call may override it
        assert g.stats["no_answer"] == 1
    assert grading.grade(response, "18", numeric=True) is True
    assert grading.grade(response, "18") is False


HOSTILE = {
    "anchors": "the answer is answer is " * 400,
    "dollars": "$ a $ b " * 1000,
    "currency": "$1 and $" * 1000,
    "display": "$$x" * 2000,
    "brackets": "\\[ " * 3000,
    "open boxes": "\\boxed{" * 1500,
    "boxes": "\\boxed{1}" * 900,
    "retractions": "\\boxed{1} oops " * 600,
    "digits": "1-" * 4000,
    "bold": "**1** " * 1500,
    "braces": "{" * 8000,
    "newlines": "\n" * 8000,
    "sentences": "The answer is 5. " * 500,
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_extraction_stays_fast_on_hostile_text(name):
    import time

    from prmrl.answers import extract_answer, extract_gold

    t = time.perf_counter()
    for numeric in (False, True):
        out = extract_answer(HOSTILE[name], numeric=numeric)
        assert out is None or isinstance(out, str)
    assert isinstance(extract_gold(HOSTILE[name][:2000]), str)
    assert time.perf_counter() - t < 0.5  # linear scans: milliseconds here
