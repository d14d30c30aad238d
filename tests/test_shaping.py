"""Step-reward refinements: docs/method.md worked example, edge cases, batched == row-wise, bounds."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from prmrl.rewards.shaping import SHAPING_METHODS, shape_step_rewards, shape_step_rewards_batch

EXAMPLE = [0.7, 0.2, 0.4, 0.8]

# docs/method.md worked example, eta = 0.5: per-step rewards and their sum
WORKED = {
    "none": ([0.7, 0.2, 0.4, 0.8], 2.1),
    "clip": ([0.0, -0.3, -0.1, 0.0], -0.4),
    "delta": ([0.5, -0.2, 0.4, 0.0], 0.7),
    "clip_delta": ([0.3, -0.2, -0.1, 0.0], 0.0),
}


@pytest.mark.parametrize("method", list(WORKED))
def test_worked_example(method):
    per_step, total = WORKED[method]
    out = shape_step_rewards(EXAMPLE, method, eta=0.5)
    assert out == pytest.approx(per_step)
    assert sum(out) == pytest.approx(total, abs=1e-12)


def test_delta_keep_hand():
    # (0.7-0.2, 0.2-0.4, 0.4-0.8, 0.8): the paper's Delta but the last step keeps its score
    assert shape_step_rewards(EXAMPLE, "delta_keep") == pytest.approx([0.5, -0.2, -0.4, 0.8])


def return_to_go(rewards: list[float]) -> list[float]:
    return [sum(rewards[k:]) for k in range(len(rewards))]


def test_delta_return_to_go_is_each_steps_score_but_the_answers():
    """What PPO's advantages see (gamma = lambda = 1): Delta's return-to-go from step k is r_k,
    except the final step's, which is 0. So before the answer line, writing one more step with
    score r is worth r more than writing the answer now; with delta_keep the answer line is
    worth its own score and the difference is r - r_K."""
    answer_now = [0.7, 0.9, 0.6]              # two computations, then the answer (score 0.6)
    one_more = [0.7, 0.9, 0.8, 0.6]           # a check line scored 0.8 before the answer
    assert return_to_go(shape_step_rewards(answer_now, "delta")) == pytest.approx([0.7, 0.9, 0.0])
    # at the choice after step 2: the answer line (index 2) vs the check line (index 2)
    gain = (return_to_go(shape_step_rewards(one_more, "delta"))[2]
            - return_to_go(shape_step_rewards(answer_now, "delta"))[2])
    assert gain == pytest.approx(0.8)
    gain_keep = (return_to_go(shape_step_rewards(one_more, "delta_keep"))[2]
                 - return_to_go(shape_step_rewards(answer_now, "delta_keep"))[2])
    assert gain_keep == pytest.approx(0.8 - 0.6)
    # the totals are the same either way: the pull comes from where the rewards sit
    for m in ("delta", "delta_keep"):
        assert sum(shape_step_rewards(one_more, m)) == pytest.approx(sum(shape_step_rewards(answer_now, m)))
    # Clip-Delta: every clipped score is <= 0, so one more step never pays (a step scored
    # above eta is worth 0, one below it costs)
    for check, expected in ((0.8, 0.0), (0.3, -0.2)):
        longer = [0.7, 0.9, check, 0.6]
        clip_gain = (return_to_go(shape_step_rewards(longer, "clip_delta", eta=0.5))[2]
                     - return_to_go(shape_step_rewards(answer_now, "clip_delta", eta=0.5))[2])
        assert clip_gain == pytest.approx(expected)


def test_normed_and_min_form_hand():
    assert shape_step_rewards(EXAMPLE, "normed") == pytest.approx([0.175, 0.05, 0.1, 0.2])
    assert shape_step_rewards(EXAMPLE, "min_form") == pytest.approx([0.0, 0.2, 0.0, 0.0])
    # ties: the minimum goes on the first step attaining it
    assert shape_step_rewards([0.3, 0.1, 0.1], "min_form") == pytest.approx([0.0, 0.1, 0.0])


def test_delta_sums_telescope():
    scores = [0.9, 0.1, 0.6, 0.3, 0.75]
    assert sum(shape_step_rewards(scores, "delta")) == pytest.approx(scores[0])
    assert sum(shape_step_rewards(scores, "delta_keep")) == pytest.approx(scores[0])
    # eta above the first score, so the clipped first score is not 0
    assert sum(shape_step_rewards(scores, "clip_delta", eta=0.95)) == pytest.approx(0.9 - 0.95)
    assert sum(shape_step_rewards([0.2, 0.9, 0.1], "clip_delta", eta=0.5)) == pytest.approx(-0.3)


@pytest.mark.parametrize(
    "method, k0, k1, k2",
    [
        ("none", [], [0.3], [0.3, 0.9]),
        ("normed", [], [0.3], [0.15, 0.45]),
        ("clip", [], [-0.2], [-0.2, 0.0]),
        ("delta", [], [0.0], [0.3, 0.0]),
        ("clip_delta", [], [0.0], [-0.2, 0.0]),
        ("min_form", [], [0.3], [0.3, 0.0]),
        ("delta_keep", [], [0.3], [-0.6, 0.9]),
    ],
)
def test_small_k(method, k0, k1, k2):
    assert shape_step_rewards([], method) == k0
    assert shape_step_rewards([0.3], method) == pytest.approx(k1)
    assert shape_step_rewards([0.3, 0.9], method) == pytest.approx(k2)


@pytest.mark.parametrize("method", list(SHAPING_METHODS))
def test_list_in_list_out_tensor_in_tensor_out(method):
    as_list = shape_step_rewards(EXAMPLE, method)
    assert isinstance(as_list, list) and all(isinstance(x, float) for x in as_list)
    scores = torch.tensor(EXAMPLE, dtype=torch.float32)
    as_tensor = shape_step_rewards(scores, method)
    assert isinstance(as_tensor, torch.Tensor)
    assert as_tensor.shape == (4,) and as_tensor.dtype == torch.float32
    assert as_tensor.tolist() == pytest.approx(as_list, abs=1e-6)
    assert scores.tolist() == pytest.approx(EXAMPLE)  # input untouched
    assert shape_step_rewards(torch.tensor([]), method).shape == (0,)


def test_unknown_method_names_allowed_values():
    with pytest.raises(ValueError, match="clip_delta"):
        shape_step_rewards(EXAMPLE, "clipdelta")
    with pytest.raises(ValueError, match="clip_delta"):
        shape_step_rewards_batch(torch.zeros(1, 2), torch.ones(1, 2, dtype=torch.bool), "bogus")
    with pytest.raises(ValueError):
        shape_step_rewards(torch.zeros(2, 2), "none")


@pytest.mark.parametrize("method", list(SHAPING_METHODS))
def test_batch_equals_rowwise_on_ragged_input(method):
    torch.manual_seed(0)
    B, S = 7, 6
    n_steps = [6, 0, 1, 2, 3, 5, 4]
    step_mask = torch.arange(S).unsqueeze(0) < torch.tensor(n_steps).unsqueeze(1)
    scores = torch.rand(B, S, dtype=torch.float64)
    noisy = torch.where(step_mask, scores, torch.full_like(scores, float("nan")))  # padding junk
    out = shape_step_rewards_batch(noisy, step_mask, method, eta=0.4)
    assert out.shape == (B, S)
    for b, n in enumerate(n_steps):
        row = shape_step_rewards(scores[b, :n].tolist(), method, eta=0.4)
        assert out[b, :n].tolist() == pytest.approx(row, abs=1e-12)
        assert (out[b, n:] == 0).all()


# --- bounds: extra steps cannot earn more (Gao et al. 2024) ------------------------------

unit = st.floats(0.0, 1.0, allow_nan=False)


def extend(base, extra, at_end):
    """Append ``extra`` at the end, or insert it just before the final step (never before the
    first step, so the first score is the same)."""
    pos = len(base) if at_end else max(len(base) - 1, 1)
    return base[:pos] + extra + base[pos:]


@settings(max_examples=200, deadline=None)
@given(
    base=st.lists(unit, min_size=1, max_size=8),
    extra=st.lists(unit, min_size=1, max_size=6),
    at_end=st.booleans(),
    eta=unit,
)
def test_extra_steps_cannot_raise_bounded_returns(base, extra, at_end, eta):
    longer = extend(base, extra, at_end)
    first_clipped = min(base[0] - eta, 0.0)

    assert sum(shape_step_rewards(longer, "clip", eta)) <= 0.0
    # Delta and Clip-Delta telescope to the first (clipped) score whatever comes after it
    assert sum(shape_step_rewards(longer, "delta", eta)) == pytest.approx(base[0], abs=1e-9)
    assert sum(shape_step_rewards(longer, "delta_keep", eta)) == pytest.approx(base[0], abs=1e-9)
    clip_delta = sum(shape_step_rewards(longer, "clip_delta", eta))
    assert clip_delta == pytest.approx(first_clipped, abs=1e-9)
    assert clip_delta <= 1e-12
    # Delta's bound is r_1 whatever the length (a one-step answer earns 0, below it)
    assert sum(shape_step_rewards(base, "delta", eta)) <= base[0] + 1e-12
    # the naive PRM reward is hackable: every extra step adds its score, so positive ones pay
    naive_gain = sum(shape_step_rewards(longer, "none")) - sum(shape_step_rewards(base, "none"))
    assert naive_gain == pytest.approx(sum(extra), abs=1e-9)
    if sum(extra) > 1e-9:
        assert naive_gain > 0
