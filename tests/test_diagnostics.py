"""Hacking diagnostics on hand-counted batches."""

import pytest

from prmrl.diagnostics import (
    hacking_metrics,
    normalize_step,
    repeated_step_count,
    repeated_step_rate,
)


def test_normalize_step():
    assert normalize_step("  x =\n\t 1  ") == "x = 1"
    assert normalize_step("") == ""


def test_repeated_steps():
    steps = ["x = 1", "x  =\n1", "Step ready.", "x = 1", " Step ready. "]
    assert repeated_step_count(steps) == 3  # only repeats of an EARLIER step count
    assert repeated_step_count(["a", "b"]) == 0
    assert repeated_step_rate([steps, [], ["a"]]) == pytest.approx(3 / 6)
    assert repeated_step_rate([]) == 0.0
    assert repeated_step_rate([[], []]) == 0.0


def test_hacking_metrics_hand():
    steps = [["a", "a", "b"], ["c"], []]
    metrics = hacking_metrics(
        steps,
        response_tokens=[30, 10, 5],
        truncated=[True, False, False],
        success=[1.0, 0.0, None],
        prm_scores=[[0.9, 0.6, 0.7], [0.8], []],
    )
    assert metrics == pytest.approx(
        {
            "steps_per_answer": 4 / 3,
            "repeated_step_rate": 1 / 4,
            "tokens_per_step": 45 / 4,
            "mean_response_tokens": 15.0,
            "truncation_rate": 1 / 3,
            "prm_mean_score": 3.0 / 4,
            # answer 0: min 0.6 >= 0.5 and success -> agree; answer 1: 0.8 vs failure -> disagree;
            # answer 2 has no steps and no grade -> excluded
            "prm_success_agreement": 0.5,
        }
    )


def test_hacking_metrics_without_prm_and_empty():
    keys = {"steps_per_answer", "repeated_step_rate", "tokens_per_step", "mean_response_tokens",
            "truncation_rate"}
    metrics = hacking_metrics([["a"]], [4], [False], [None])
    assert set(metrics) == keys
    empty = hacking_metrics([], [], [], [], prm_scores=[])
    assert set(empty) == keys          # nothing scored: the PRM metrics are undefined, not 0
    assert all(v == 0.0 for v in empty.values())
    # answers without steps: no division by zero
    assert hacking_metrics([[]], [3], [True], [1.0], [[]])["tokens_per_step"] == 0.0


def test_unscored_steps_are_left_out_not_guessed():
    """None = a step the PRM could not score: it counts in neither the mean nor a verdict."""
    m = hacking_metrics([["a", "b"], ["c", "d"]], [4, 4], [False, False], [1.0, 0.0],
                        prm_scores=[[0.9, None], [0.2, 0.8]])
    assert m["prm_mean_score"] == pytest.approx((0.9 + 0.2 + 0.8) / 3)
    # answer 0 is not fully scored: only answer 1 is judged (min 0.2 < 0.5, failure: agree)
    assert m["prm_success_agreement"] == 1.0
    m = hacking_metrics([["a"]], [4], [False], [1.0], prm_scores=[[None]])
    assert "prm_mean_score" not in m and "prm_success_agreement" not in m


def test_hacking_metrics_rejects_misaligned_inputs():
    with pytest.raises(ValueError):
        hacking_metrics([["a"]], [1, 2], [False], [1.0])
    with pytest.raises(ValueError):
        hacking_metrics([["a", "b"]], [1], [False], [1.0], prm_scores=[[0.5]])
