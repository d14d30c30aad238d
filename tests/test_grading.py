"""The success grader: answer extraction, the math-verify worker pool, deadlines, and real golds.

The all-rows tests grade every GSM8K (train+test) and MATH500 gold against itself (True) and
against a wrong answer (False) through ``grade_batch``.
"""

from __future__ import annotations

import multiprocessing
import os
import re
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

import prmrl
from prmrl.grading import MathGrader, _fast_path, extract_answer, grade
from prmrl.tasks.math_data import load_problems

HANG = "\\boxed{9^{9^{9^{9}}}}"  # sympy tries to evaluate 9^(9^387420489): never finishes


@pytest.fixture(scope="module")
def grader():
    with MathGrader(num_workers=2, timeout_s=10.0).start() as g:
        yield g


@pytest.fixture(scope="module")
def quick():
    """A grader with a short deadline, for the hanging inputs."""
    with MathGrader(num_workers=2, timeout_s=1.0).start() as g:
        yield g


# --- extraction ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "response, answer",
    [
        ("We get \\boxed{5}.", "5"),
        ("first \\boxed{1}, then \\boxed{\\frac{1}{2}}", "\\frac{1}{2}"),
        ("\\fbox{x^{2}}", "x^{2}"),
        ("\\boxed{1}\n\nso \\boxed{\\frac{1}{", None),  # last box cut off: no answer
        ("\\boxed{}", None),
        ("The answer is $\\frac{3}{4}$.", "\\frac{3}{4}"),
        ("The final answer is 1,234 apples.", "1,234"),
        ("The answer is $18.", "18"),  # a currency sign, not math mode
        ("The answer is **7**.", "7"),
        ("Answer: x = 3.", "x = 3"),
        ("blah\n#### 72", "72"),
        # a bare number is an answer only for numeric tasks (test_extract_answer_numeric)
        ("3 apples plus 4 pears: 7 fruits", None),
        ("from 3-5 we get", None),
        ("pi is 3.14", None),
        ("no digits here", None),
        ("", None),
    ],
)
def test_extract_answer(response, answer):
    assert extract_answer(response) == answer


@pytest.mark.parametrize("response, answer", [
    ("3 apples plus 4 pears: 7 fruits", "7"),      # numeric task: the last number stands alone
    ("from 3-5 we get", None),                     # never a number cut out of an expression
    ("pi is 3.14", "3.14"),
])
def test_extract_answer_numeric(response, answer):
    assert extract_answer(response, numeric=True) == answer


def test_extract_answer_reads_only_the_tail():
    head = "\\boxed{1} " + "filler " * 5000
    assert extract_answer(head + "\\boxed{2}") == "2"
    assert extract_answer(head, max_chars=100) is None  # the box is outside the tail, no number


@pytest.mark.parametrize(
    "answer, gold, expected",
    [
        ("1,000", "1000", True),
        ("1 000", "1000", True),
        ("18.00", "18", True),
        ("-0", "0", True),
        ("17", "18", False),
        ("19.5", "18", False),
        ("0.333333", "0.3333333", None),  # close floats: math-verify decides (it rounds)
        ("1,2", "12", None),  # a pair, not a thousands comma
        ("\\frac{1}{2}", "0.5", None),
    ],
)
def test_fast_path(answer, gold, expected):
    assert _fast_path(answer, gold) is expected


def test_integer_shortcut_matches_math_verify_parse():
    from math_verify import LatexExtractionConfig, parse

    from prmrl.grading import _parse_boxed

    for latex in ["0", "7", "-18", "007", "1000", "123456789012345678901234567890"]:
        expected = parse(
            "\\boxed{" + latex + "}", [LatexExtractionConfig(boxed_match_priority=0)], parsing_timeout=None
        )
        got = _parse_boxed(latex)
        assert got == expected and [type(x) for x in got] == [type(x) for x in expected]


# --- grading ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "response, gold, expected",
    [
        ("so \\boxed{\\frac{1}{2}}", "0.5", True),
        ("\\boxed{\\dfrac12}", "\\frac{1}{2}", True),
        ("\\boxed{\\$18}", "18", True),
        ("\\boxed{18 \\text{ dollars}}", "18", True),
        ("\\boxed{(1,2)}", "(1, 2)", True),
        ("\\boxed{\\sqrt{2}/2}", "\\frac{\\sqrt2}{2}", True),
        ("\\boxed{\\text{Evelyn}}", "\\text{Evelyn}", True),
        ("\\boxed{[1, 3)}", "[1,3)", True),
        ("\\boxed{(2,1)}", "(1, 2)", False),
        ("\\boxed{\\frac{1}{3}}", "0.5", False),
        ("\\boxed{x^2+1}", "x^2+2", False),
        ("I give up.", "5", False),  # no answer at all is wrong, not undecidable
        # an answer that does not parse against a gold that does is wrong: garbage must never
        # earn reward.unscorable_reward
        ("\\boxed{\\frac{}{}}", "5", False),
        ("\\boxed{@@@}", "5", False),
        ("$-[0,1)$", "$1$", False),
    ],
)
def test_grade_cases(grader, response, gold, expected):
    assert grader.grade(response, gold) is expected


def test_module_level_grade():
    assert prmrl.grade("so the answer is \\boxed{1,000}.", "1000") is True
    assert grade("\\boxed{\\frac{2}{4}}", "\\frac{1}{2}") is True
    assert grade("\\boxed{3}", "4") is False


def test_stats_and_cache(grader):
    before = dict(grader.stats)
    pairs = [("\\boxed{\\frac{6}{8}}", "\\frac{3}{4}")] * 3 + [("\\boxed{\\frac{6}{9}}", "\\frac{3}{4}")]
    assert grader.grade_batch(*map(list, zip(*pairs))) == [True, True, True, False]
    assert grader.grade_batch(*map(list, zip(*pairs))) == [True, True, True, False]
    d = {k: grader.stats[k] - before[k] for k in before}
    assert d["graded"] == 8 and d["true"] == 6 and d["false"] == 2
    assert d["cache_hits"] == 2 + 4  # repeats within the first batch, then the whole second one
    assert d["none_unparseable"] == d["none_timeout"] == d["none_crash"] == 0


def test_batch_checks_lengths_and_types(grader):
    with pytest.raises(ValueError):
        grader.grade_batch(["a"], [])
    with pytest.raises(TypeError):
        grader.grade_batch([None], ["1"])
    assert grader.grade_batch([], []) == []


def test_long_and_deep_answers_are_not_parsed(grader):
    before = grader.stats["too_complex"]
    assert grader.grade("\\boxed{" + "{" * 40 + "1" + "}" * 40 + "}", "1") is None
    assert grader.grade("\\boxed{x+" + "x+" * 1000 + "1}", "1") is None
    assert grader.stats["too_complex"] == before + 2
    assert grader.grade("\\boxed{" + "1" * 5000 + "}", "2") is False  # plain number: fast path


# --- deadlines, crashes, threads, processes -----------------------------------------------------


def test_hanging_check_times_out_and_grader_recovers(quick):
    before = dict(quick.stats)
    t = time.monotonic()
    assert quick.grade(HANG, "1") is None
    assert time.monotonic() - t < quick.timeout_s + 0.5
    assert quick.stats["none_timeout"] == before["none_timeout"] + 1
    # The killed worker's place is taken; a batch mixing hangs with normal answers completes.
    t = time.monotonic()
    out = quick.grade_batch([HANG, "\\boxed{\\frac{1}{2}}", HANG, "\\boxed{7}"], ["1", "0.5", "2", "8"])
    assert out == [None, True, None, False]
    assert time.monotonic() - t < 2 * quick.timeout_s + 1.0
    # (HANG, "1") was not cached: timeouts may come from load, so it is tried again.
    assert quick.stats["none_timeout"] == before["none_timeout"] + 3
    assert quick.grade("\\boxed{\\frac{1}{2}}", "\\frac{2}{4}") is True


def test_crashed_worker_gives_none_and_is_counted(quick):
    before = dict(quick.stats)

    def kill_busy_worker():
        time.sleep(0.3)
        for w in list(quick._pool.workers):
            if w.inflight:
                os.kill(w.pid, signal.SIGKILL)

    threading.Thread(target=kill_busy_worker).start()
    t = time.monotonic()
    assert quick.grade(HANG, "1") is None
    assert time.monotonic() - t < 0.9 * quick.timeout_s  # noticed at once, not at the deadline
    assert quick.stats["none_crash"] == before["none_crash"] + 1
    assert quick.stats["none_timeout"] == before["none_timeout"]
    assert quick.grade("\\boxed{\\frac{1}{2}}", "0.5") is True


def test_a_killed_zygote_is_replaced(quick):
    old = quick._pool.zygote.proc
    old.kill()
    old.wait()
    assert quick.grade("\\boxed{\\frac{3}{6}}", "0.5") is True  # its workers died with it
    assert quick._pool.zygote.proc is not old and quick._pool.zygote.proc.poll() is None


def test_workers_run_under_a_memory_limit(grader):
    assert grader._pool.workers
    for w in grader._pool.workers:
        limits = open(f"/proc/{w.pid}/limits").read()
        line = next(x for x in limits.splitlines() if x.startswith("Max address space"))
        assert re.findall(r"\d+", line)[:2] == [str(grader.memory_mb * 1024 * 1024)] * 2


def _gone(pid: int, wait_s: float = 3.0) -> bool:
    end = time.monotonic() + wait_s
    while time.monotonic() < end:
        try:
            if open(f"/proc/{pid}/stat").read().split(")")[-1].split()[0] == "Z":
                return True  # exited, waiting to be reaped
        except FileNotFoundError:
            return True
        time.sleep(0.05)
    return False


def test_close_ends_the_workers():
    g = MathGrader(num_workers=2)
    assert g.grade("\\boxed{\\frac{1}{2}}", "0.5") is True
    pids = [w.pid for w in g._pool.workers] + [g._pool.zygote.proc.pid]
    g.close()
    assert all(_gone(pid) for pid in pids)
    with pytest.raises(RuntimeError):
        g.grade("\\boxed{1}", "1")


def test_grade_from_threads_with_deadline(quick):
    responses = [HANG] + ["\\boxed{%d}" % i for i in range(20)]
    responses += ["\\boxed{\\frac{%d}{2}}" % i for i in range(20)]
    golds = ["1"] + [str(i) for i in range(20)] + [str(i / 2) for i in range(20)]
    t = time.monotonic()
    with ThreadPoolExecutor(4) as pool:  # math-verify's signal timeout would raise here
        out = list(pool.map(quick.grade, responses, golds))
    assert out == [None] + [True] * 40
    assert time.monotonic() - t < quick.timeout_s + 5.0


def test_grade_inside_a_daemonic_pool_worker():
    # multiprocessing pool workers are daemonic and may not start multiprocessing children;
    # the grader's workers are plain subprocesses, so grade() works there too.
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(1) as pool:
        out = pool.starmap(grade, [("\\boxed{\\frac{1}{2}}", "0.5"), ("\\boxed{3}", "4")])
    assert out == [True, False]


# --- every real gold ----------------------------------------------------------------------------


def _wrong_integer(gold: str) -> str:
    return str(int(gold) + 1)


def _integer_golds_grade(grader, golds: list[str], every: int) -> None:
    """Each gold boxed is True and gold+1 is False; every ``every``-th, written with thousands
    commas and graded by math-verify in the workers (fast path off), agrees."""
    right = [f"Step 1.\n\nSo the answer is \\boxed{{{g}}}." for g in golds]
    wrong = [f"Step 1.\n\nSo the answer is \\boxed{{{_wrong_integer(g)}}}." for g in golds]
    out = grader.grade_batch(right + wrong, golds + golds)
    assert out[: len(golds)] == [True] * len(golds)
    assert out[len(golds):] == [False] * len(golds)
    # Those all took the exact fast path; check that math-verify agrees on a sample, with the
    # thousands comma put back in ("1,000"), through the worker processes.
    sample = golds[::every]
    shown = [f"\\boxed{{{int(g):,}}}" for g in sample] + [f"\\boxed{{{_wrong_integer(g)}}}" for g in sample]
    fast_before = grader.stats["fast_path"]
    grader.use_fast_path = False
    try:
        out = grader.grade_batch(shown, sample + sample)
    finally:
        grader.use_fast_path = True
    assert grader.stats["fast_path"] == fast_before
    assert out == [True] * len(sample) + [False] * len(sample)


def test_written_integer_golds_grade_true_and_a_wrong_one_false(grader):
    _integer_golds_grade(grader, ["72", "0", "-5", "18", "999", "1000", "4321", "1000000"], every=1)


@pytest.mark.needs_shared("data/gsm8k/train.jsonl", "data/gsm8k/test.jsonl")
def test_every_gsm8k_gold_grades_true_and_a_wrong_one_false(grader):
    golds = [p.answer for s in ("train", "test") for p in load_problems("gsm8k", s)[0]]
    assert len(golds) == 7473 + 1319
    _integer_golds_grade(grader, golds, every=40)


def _plain(answer: str) -> str:
    """For choosing a wrong answer that differs: no spaces, no leading "x =" (math-verify reads
    "x=5" as the value 5, by design)."""
    return re.sub(r"^[a-z]\s*=\s*", "", answer.replace(" ", ""))


def _math_golds_grade(grader, golds: list[str]) -> None:
    """Each gold boxed is True; the gold of the next row whose answer differs is False."""
    wrong = []
    for i, g in enumerate(golds):
        j = (i + 1) % len(golds)
        while _plain(golds[j]) == _plain(g):
            j = (j + 1) % len(golds)
        wrong.append(golds[j])
    responses = [f"Therefore, the final answer is $\\boxed{{{g}}}$." for g in golds + wrong]
    before = dict(grader.stats)
    out = grader.grade_batch(responses, golds + golds)
    n = len(golds)
    not_true = [g for g, r in zip(golds, out) if r is not True]
    not_false = [(g, w) for g, w, r in zip(golds, wrong, out[n:]) if r is not False]
    assert not_true == [] and not_false == []
    assert grader.stats["none_timeout"] == before["none_timeout"]


# MATH-style gold answers of the usual kinds, written for this test.
MATH_GOLDS = ["\\frac{1}{2}", "-\\frac{7}{4}", "\\left( 2, \\frac{3\\pi}{2} \\right)", "[1,3)", "3\\sqrt{5}",
              "\\frac{\\pi}{6}", "x^2+1", "\\text{Evelyn}", "12", "0.25", "90^\\circ", "\\{1, 2, 4\\}",
              "y = 2x - 3", "\\begin{pmatrix} 1 \\\\ 0 \\end{pmatrix}"]


def test_written_math_golds_grade_true_and_a_wrong_one_false(grader):
    _math_golds_grade(grader, MATH_GOLDS)


@pytest.mark.needs_shared("data/math500/test.jsonl")
def test_every_math500_gold_grades_true_and_a_wrong_one_false(grader):
    problems, report = load_problems("math500", "test")
    golds = [p.answer for p in problems]
    assert len(golds) == 500 and report.num_skipped == 0
    # The wrong answer of row i is the gold of the next row whose answer differs.
    _math_golds_grade(grader, golds)
