"""Best-of-N selection, majority voting, step-score aggregation and the rank AUC, on numbers
checked by hand."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from prmrl.evaluation.bon import (AGGREGATIONS, accuracy_at, argmax_first, best_of_n, bon_metrics,
                                  format_bon_table, majority_at_n, majority_vote, roc_auc, weighted_vote,
                                  weighted_vote_at_n)


# ---- roc_auc ----------------------------------------------------------------------------------

def test_auc_hand_checked():
    # Pairs (pos, neg): (0.35, 0.1) yes, (0.35, 0.4) no, (0.8, 0.1) yes, (0.8, 0.4) yes -> 3/4.
    assert roc_auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == pytest.approx(0.75)
    assert roc_auc([0.9, 0.8, 0.1], [1, 1, 0]) == 1.0
    assert roc_auc([0.1, 0.2, 0.9], [1, 1, 0]) == 0.0


def test_auc_ties_count_half():
    # Pos 0.5 vs neg 0.5: tie (1/2); pos 0.5 vs neg 0.2: win; pos 0.9 beats both -> 3.5/4.
    assert roc_auc([0.5, 0.9, 0.5, 0.2], [1, 1, 0, 0]) == pytest.approx(3.5 / 4)
    assert roc_auc([0.3, 0.3, 0.3], [1, 0, 1]) == pytest.approx(0.5)


def test_auc_soft_labels_threshold_and_one_class_is_nan():
    assert roc_auc([0.2, 0.7], [0.25, 0.75]) == 1.0        # labels >= 0.5 are positive
    assert math.isnan(roc_auc([0.2, 0.7], [1, 1]))
    assert math.isnan(roc_auc([], []))


@given(st.lists(st.tuples(st.integers(0, 5), st.booleans()), min_size=2, max_size=30))
def test_auc_equals_pair_count(pairs):
    scores = [float(s) for s, _ in pairs]
    labels = [float(y) for _, y in pairs]
    pos = [s for s, y in zip(scores, labels) if y]
    neg = [s for s, y in zip(scores, labels) if not y]
    if not pos or not neg:
        assert math.isnan(roc_auc(scores, labels))
        return
    brute = sum(1.0 if p > q else 0.5 if p == q else 0.0 for p, q in itertools.product(pos, neg))
    assert roc_auc(scores, labels) == pytest.approx(brute / (len(pos) * len(neg)))


def test_accuracy_at_threshold():
    assert accuracy_at([0.6, 0.4, 0.5, 0.1], [1, 1, 0, 0]) == pytest.approx(0.5)


# ---- aggregation --------------------------------------------------------------------------------

def test_aggregations():
    s = [0.9, 0.5, 0.8]
    assert AGGREGATIONS["min"](s) == 0.5
    assert AGGREGATIONS["last"](s) == 0.8
    assert AGGREGATIONS["prod"](s) == pytest.approx(0.36)
    assert AGGREGATIONS["mean"](s) == pytest.approx(2.2 / 3)
    assert set(AGGREGATIONS) == {"min", "last", "prod", "mean"}


def test_aggregations_skip_unscorable_and_empty_is_nan():
    assert AGGREGATIONS["last"]([0.9, 0.4, None]) == 0.4
    assert AGGREGATIONS["min"]([None, 0.7]) == 0.7
    for fn in AGGREGATIONS.values():
        assert math.isnan(fn([]))
        assert math.isnan(fn([None]))


# ---- selection ----------------------------------------------------------------------------------

def test_majority_vote_ties_go_to_first_seen():
    assert majority_vote(["3", "5", "5", "3"]) == 0          # 2-2 tie: "3" was seen first
    assert majority_vote(["3", "5", "5"]) == 1
    assert majority_vote([None, None, "7"]) == 2             # no answer does not vote
    assert majority_vote([None, None]) == 0
    assert majority_vote(["1", "2", "3"]) == 0


def test_majority_at_n_uses_first_n():
    answers = [["4", "5", "5", "5"], ["1", "1", "2", "2"]]
    correct = [[True, False, False, False], [False, False, True, True]]
    assert majority_at_n(answers, correct, 1) == 0.5
    assert majority_at_n(answers, correct, 2) == 0.5          # tie -> first seen: "4" right, "1" wrong
    assert majority_at_n(answers, correct, 4) == 0.0


def test_weighted_vote_sums_scores_per_answer():
    # "3": 0.2 + 0.3 = 0.5 against "5": 0.9 -> "5" wins though "3" has more votes
    assert weighted_vote(["3", "5", "3"], [0.2, 0.9, 0.3]) == 1
    # "3": 0.6 + 0.5 = 1.1 against 0.9
    assert weighted_vote(["3", "5", "3"], [0.6, 0.9, 0.5]) == 0
    assert weighted_vote(["3", "5"], [0.5, 0.5]) == 0            # tie: the answer seen first
    assert weighted_vote([None, "4"], [5.0, 0.1]) == 1           # no answer does not vote
    # an unscorable score adds nothing; the answer still stands if others score it
    assert weighted_vote(["3", "5", "3"], [float("nan"), 0.4, 0.3]) == 1
    assert weighted_vote(["3", "5", "3"], [None, 0.2, 0.3]) == 0
    assert weighted_vote([None], [1.0]) == 0
    with pytest.raises(ValueError):
        weighted_vote(["1"], [0.1, 0.2])


def test_weighted_vote_at_n_uses_first_n():
    answers = [["3", "5", "5"], ["1", "2", "2"]]
    weights = [[0.9, 0.3, 0.3], [0.1, 0.4, 0.4]]
    correct = [[True, False, False], [False, True, True]]
    assert weighted_vote_at_n(answers, weights, correct, 1) == 0.5
    assert weighted_vote_at_n(answers, weights, correct, 3) == 1.0   # 0.9 > 0.6; 0.8 > 0.1
    assert weighted_vote_at_n(answers, [[0.1, 0.3, 0.3], [0.1, 0.4, 0.4]], correct, 3) == 0.5


def test_best_of_n_picks_highest_score():
    scores = [[0.1, 0.9, 0.5], [0.7, 0.2, 0.8]]
    correct = [[False, True, False], [True, False, False]]
    assert best_of_n(scores, correct, 2) == 1.0               # picks 0.9 (right) and 0.7 (right)
    assert best_of_n(scores, correct, 3) == 0.5               # second problem now picks 0.8 (wrong)


def test_best_of_n_ties_and_unscorable():
    assert argmax_first([0.5, 0.5, 0.2]) == 0
    assert argmax_first([None, 0.1, math.nan]) == 1
    assert argmax_first([None, None]) == 0


@given(st.lists(st.lists(st.tuples(st.floats(0, 1), st.booleans()), min_size=3, max_size=3),
                min_size=1, max_size=10))
def test_n1_equals_first_sample_accuracy(problems):
    scores = [[s for s, _ in p] for p in problems]
    correct = [[c for _, c in p] for p in problems]
    first = sum(c[0] for c in correct) / len(correct)
    assert best_of_n(scores, correct, 1) == pytest.approx(first)
    assert majority_at_n([["a", "b", "c"]] * len(correct), correct, 1) == pytest.approx(first)


def test_best_of_n_needs_n_samples():
    with pytest.raises(ValueError):
        best_of_n([[0.1]], [[True]], 2)


def test_format_table_has_every_method():
    acc = {"1": 0.5, "2": 0.75}
    result = {m: acc for m in ("greedy", "majority", "orm", "prm_min", "prm_last", "prm_prod", "prm_mean")}
    text = format_bon_table({**result, "prm_step_auc": 0.9})
    assert "prm_prod" in text and "N=2" in text and "0.750" in text and "prm_step_auc" in text


# ---- the whole table ------------------------------------------------------------------------------

# Two problems, three samples each. Per sample: right?, final answer, ORM score, PRM step scores,
# oracle step labels.
#   p0: s0 wrong "4" orm 0.9 steps [0.9, 0.1]  oracle [1, 0]   min 0.1  last 0.1  prod 0.09   mean 0.5
#       s1 right "5" orm 0.2 steps [0.6, 0.7]  oracle [1, 1]   min 0.6  last 0.7  prod 0.42   mean 0.65
#       s2 right "5" orm 0.3 steps [0.5, 0.9]  oracle [1, 1]   min 0.5  last 0.9  prod 0.45   mean 0.7
#   p1: s0 right "7" orm 0.4 steps [0.8, 0.9]  oracle [1, 1]   min 0.8  last 0.9  prod 0.72   mean 0.85
#       s1 wrong "8" orm 0.6 steps [0.7, 0.95] oracle [1, 0]   min 0.7  last 0.95 prod 0.665  mean 0.825
#       s2 wrong "8" orm --- steps [---, 0.3]  oracle [0, 0]   min 0.3  last 0.3  prod 0.3    mean 0.3
# Greedy: p0 right, p1 wrong.
HAND = dict(
    correct=[[False, True, True], [True, False, False]],
    finals=[["4", "5", "5"], ["7", "8", "8"]],
    orm_scores=[[0.9, 0.2, 0.3], [0.4, 0.6, None]],
    step_scores=[[[0.9, 0.1], [0.6, 0.7], [0.5, 0.9]], [[0.8, 0.9], [0.7, 0.95], [None, 0.3]]],
    greedy_correct=[True, False],
)
ORACLE = [[[1.0, 0.0], [1.0, 1.0], [1.0, 1.0]], [[1.0, 1.0], [1.0, 0.0], [0.0, 0.0]]]


def test_bon_metrics_by_hand():
    r = bon_metrics([3, 1], **HAND, oracle=ORACLE)
    # N=1 is each problem's first sample (p0 wrong, p1 right) for every picker: 0.5
    expected_n3 = {
        "greedy": 0.5,       # p0 right, p1 wrong, whatever N
        "majority": 0.5,     # p0 "5" x2 (right); p1 "8" x2 (wrong)
        "orm": 0.0,          # p0 0.9 -> s0 (wrong); p1 0.6 -> s1 (wrong; None ranks last)
        "prm_min": 1.0,      # p0 0.6 -> s1 (right); p1 0.8 -> s0 (right; None step skipped: 0.3)
        "prm_last": 0.5,     # p0 0.9 -> s2 (right); p1 0.95 -> s1 (wrong)
        "prm_prod": 1.0,     # p0 0.45 -> s2; p1 0.72 -> s0
        "prm_mean": 1.0,     # p0 0.7 -> s2; p1 0.85 -> s0
        "orm_vote": 0.0,     # p0 "4" 0.9 > "5" 0.2 + 0.3; p1 "8" 0.6 + (None: 0) > "7" 0.4
        "prm_vote": 0.5,     # by min: p0 "5" 0.6 + 0.5 > "4" 0.1; p1 "8" 0.7 + 0.3 > "7" 0.8
        "pass": 1.0,         # each problem has a right sample among its three
    }
    for method, acc in expected_n3.items():
        assert list(r[method]) == ["1", "3"], method                 # N sorted, as strings
        assert r[method]["3"] == pytest.approx(acc), method
        assert r[method]["1"] == pytest.approx(0.5), method
    # Steps with a score: 11 (one None left out); positives 0.9 0.6 0.7 0.5 0.9 0.8 0.9 0.7, each
    # above the negatives 0.1 and 0.3 but below 0.95 -> AUC 16/24. At 0.5: only 0.95 (label 0)
    # is on the wrong side -> 10/11.
    assert r["n_steps_scored"] == 11
    assert r["prm_step_auc"] == pytest.approx(2 / 3)
    assert r["prm_step_accuracy"] == pytest.approx(10 / 11)
    assert r["oracle_step_positive_rate"] == pytest.approx(8 / 11)
    assert r["sampling_accuracy"] == pytest.approx(3 / 6)
    assert r["n_problems"] == 2
    assert "prm_step_auc" in format_bon_table(r)


def test_bon_metrics_without_oracle_and_shape_checks():
    r = bon_metrics([1, 2], **HAND)
    assert math.isnan(r["prm_step_auc"]) and "prm_step_accuracy" not in r and "n_steps_scored" not in r
    assert r["prm_last"] == {"1": 0.5, "2": 0.5}       # N=2: p0 0.7 -> s1 (right); p1 0.95 -> s1 (wrong)
    with pytest.raises(ValueError):                      # more samples asked for than drawn
        bon_metrics([4], **HAND)
    with pytest.raises(ValueError):                      # oracle for one problem only
        bon_metrics([1], **HAND, oracle=ORACLE[:1])


def test_plot_bon_writes_a_png(tmp_path):
    from prmrl.evaluation.plots import plot_bon

    path = plot_bon(bon_metrics([1, 2, 3], **HAND, oracle=ORACLE), tmp_path / "sub" / "bon.png")
    assert path.stat().st_size > 1000


def test_evaluation_bon_imports_nothing_from_prmrl():
    """The metrics module sits at the bottom of the package: no prmrl import, lazy or not."""
    import ast

    import prmrl.evaluation.bon as bon

    tree = ast.parse(open(bon.__file__).read())
    modules = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    modules += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    assert modules and not [m for m in modules if m.split(".")[0] == "prmrl"]
