"""Best-of-N selection, majority voting, step-score aggregation and the rank AUC, on numbers
checked by hand."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from prmrl.evaluation.bon import (AGGREGATIONS, accuracy_at, argmax_first, best_of_n, format_bon_table,
                                  majority_at_n, majority_vote, roc_auc, weighted_vote,
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
