"""Critic-free estimators on numbers checkable by hand; with only an outcome reward they equal
the textbook estimators; loss aggregation adds up however a batch is split."""

from __future__ import annotations

import math

import pytest
import torch

from prmrl.rl.estimators import (AGGREGATIONS, aggregate, critic_free_advantages, group_mean_std,
                                 leave_one_out_mean, process_supervision, token_returns)


def t(*rows):
    return torch.tensor(rows, dtype=torch.float32)


def test_group_mean_std_and_leave_one_out_by_hand():
    x, g = torch.tensor([1.0, 2.0, 3.0, 10.0]), torch.tensor([0, 0, 0, 7])
    mean, std, n = group_mean_std(x, g)
    assert mean.tolist() == [2, 2, 2, 10] and std.tolist() == [1, 1, 1, 0] and n.tolist() == [3, 3, 3, 1]
    assert leave_one_out_mean(x, g).tolist() == [2.5, 2.0, 1.5, 0.0]   # (2+3)/2, (1+3)/2, (1+2)/2


# one answer, T = 4, steps ending at t = 1 and t = 3, outcome 1
MASK = torch.ones(1, 4, dtype=torch.bool)
ENDS = torch.tensor([[False, True, False, True]])
STEPS = t([0.0, -0.5, 0.0, 0.2])


def test_return_to_go_and_min_form_by_hand():
    out = torch.tensor([1.0])
    rtg = token_returns(out, STEPS, ENDS, MASK, "return_to_go")
    assert rtg[0].tolist() == pytest.approx([0.7, 0.7, 1.2, 1.2])     # 1 - 0.5 + 0.2, ..., 1 + 0.2
    mf = token_returns(out, STEPS, ENDS, MASK, "min_form")
    assert mf[0].tolist() == pytest.approx([0.5, 0.5, 1.2, 1.2])      # 1 + min(-0.5, 0.2), 1 + 0.2
    kl = t([-0.1, -0.1, -0.1, -0.1])
    assert token_returns(out, STEPS, ENDS, MASK, "return_to_go", kl)[0].tolist() == pytest.approx(
        [0.3, 0.4, 1.0, 1.1])


def test_min_form_after_the_last_step_is_the_outcome_alone():
    mask = torch.ones(1, 3, dtype=torch.bool)
    ends = torch.tensor([[True, False, False]])
    g = token_returns(torch.tensor([2.0]), t([0.4, 0.0, 0.0]), ends, mask, "min_form")
    assert g[0].tolist() == pytest.approx([2.4, 2.0, 2.0])


@pytest.mark.parametrize("credit", ["return_to_go", "min_form", "process_supervision"])
def test_outcome_only_grpo_is_the_textbook_grpo(credit):
    """No step rewards: every token of answer i gets (R_i - mean) / std of its group."""
    R = torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0, 1.0])
    group = torch.tensor([0, 0, 0, 1, 1, 1])
    lengths = torch.tensor([3, 1, 2, 3, 3, 2])
    mask = torch.arange(3)[None] < lengths[:, None]
    zeros = torch.zeros(6, 3)
    adv = critic_free_advantages(R, zeros, zeros.bool(), mask, group, estimator="grpo", credit=credit)
    mean0, std0 = 1 / 3, math.sqrt(((2 / 3) ** 2 + 2 * (1 / 3) ** 2) / 2)
    want = [(1 - mean0) / std0, -mean0 / std0, -mean0 / std0, 0.0, 0.0, 0.0]
    for i in range(6):
        assert adv[i, : lengths[i]].tolist() == pytest.approx([want[i]] * int(lengths[i]), abs=1e-4)
        assert (adv[i, lengths[i]:] == 0).all()


def test_outcome_only_rloo_is_the_textbook_rloo():
    R = torch.tensor([1.0, 0.0, 0.0, 0.5])
    group = torch.zeros(4, dtype=torch.long)
    mask = torch.ones(4, 2, dtype=torch.bool)
    adv = critic_free_advantages(R, torch.zeros(4, 2), torch.zeros(4, 2, dtype=torch.bool), mask, group,
                                 estimator="rloo")
    # R_i - mean of the other three
    assert adv[:, 0].tolist() == pytest.approx([1 - 0.5 / 3, 0 - 1.5 / 3, 0 - 1.5 / 3, 0.5 - 1 / 3])


def test_outcome_only_reinforce_pp_is_group_baseline_then_batch_whitening():
    R = torch.tensor([1.0, 0.0, 1.0, 1.0])
    group = torch.tensor([0, 0, 1, 1])
    mask = torch.tensor([[1, 1], [1, 0], [1, 1], [1, 0]], dtype=torch.bool)
    adv = critic_free_advantages(R, torch.zeros(4, 2), torch.zeros(4, 2, dtype=torch.bool), mask, group,
                                 estimator="reinforce_pp")
    # baselined: +0.5 (2 tokens), -0.5 (1), 0 (2), 0 (1): mean 1/12, then divide by the std
    vals = torch.tensor([0.5, 0.5, -0.5, 0.0, 0.0, 0.0])
    mu, sd = vals.mean(), vals.std(unbiased=False)
    want = ((vals - mu) / (sd + 1e-6)).tolist()
    assert adv[mask].tolist() == pytest.approx(want, abs=1e-5)
    assert adv[mask].mean().abs() < 1e-6


def test_process_supervision_by_hand():
    """DeepSeekMath 4.1.3 on a group of two answers: outcomes normalised on their own, the three
    step rewards pooled and normalised together, advantage = outcome + future normalised steps."""
    R = torch.tensor([1.0, 0.0])
    group = torch.tensor([0, 0])
    mask = torch.ones(2, 3, dtype=torch.bool)
    ends = torch.tensor([[True, False, True], [False, True, False]])
    steps = t([0.8, 0.0, 0.6], [0.0, 0.1, 0.0])
    adv = process_supervision(R, steps, ends, mask, group)
    o = 1 / math.sqrt(0.5)                        # (1 - 0.5) / std([1, 0]) (unbiased: 0.7071)
    m = 0.5
    sd = math.sqrt(((0.8 - m) ** 2 + (0.6 - m) ** 2 + (0.1 - m) ** 2) / 2)
    n = [(x - m) / sd for x in (0.8, 0.6, 0.1)]
    assert adv[0].tolist() == pytest.approx([o / 2 + n[0] + n[1], o / 2 + n[1], o / 2 + n[1]], abs=1e-4)
    assert adv[1].tolist() == pytest.approx([-o / 2 + n[2], -o / 2 + n[2], -o / 2], abs=1e-4)


def test_padding_changes_nothing():
    R = torch.tensor([1.0, 0.0])
    group = torch.tensor([0, 0])
    steps = t([0.3, 0.0, 0.0, 0.0], [0.0, -0.2, 0.0, 0.0])
    ends = steps != 0
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 0]], dtype=torch.bool)
    noisy = steps + torch.where(mask, 0.0, 99.0)
    for credit in ("return_to_go", "min_form", "process_supervision"):
        for est in ("grpo", "rloo", "reinforce_pp"):
            a = critic_free_advantages(R, steps, ends, mask, group, estimator=est, credit=credit)
            b = critic_free_advantages(R, noisy, ends | ~mask, mask, group, estimator=est, credit=credit)
            assert torch.allclose(a, b) and (a[~mask] == 0).all(), (est, credit)


@pytest.mark.parametrize("mode", AGGREGATIONS)
def test_aggregation_adds_up_however_the_batch_is_split(mode):
    """Two processes (or minibatches) with global normalisers: their losses and gradients add
    up to the whole batch's."""
    torch.manual_seed(0)
    x = torch.randn(6, 5, requires_grad=True)
    mask = torch.arange(5)[None] < torch.tensor([5, 2, 4, 1, 3, 5])[:, None]
    norm = dict(n_tokens=float(mask.sum()), n_seqs=6.0, max_len=5)
    whole = aggregate(x * 2, mask, mode, **norm)
    (g_whole,) = torch.autograd.grad(whole, x)
    parts = [aggregate(x[i] * 2, mask[i], mode, **norm) for i in (slice(0, 2), slice(2, 6))]
    (g_parts,) = torch.autograd.grad(sum(parts), x)
    assert torch.allclose(sum(parts), whole) and torch.allclose(g_parts, g_whole)


def test_aggregation_modes_by_hand():
    x = t([1.0, 2.0, 3.0], [4.0, 0.0, 0.0])
    mask = torch.tensor([[1, 1, 1], [1, 0, 0]], dtype=torch.bool)
    kw = dict(n_tokens=4.0, n_seqs=2.0, max_len=3)
    assert aggregate(x, mask, "token_mean", **kw).item() == pytest.approx(10 / 4)
    assert aggregate(x, mask, "seq_mean_token_sum", **kw).item() == pytest.approx(10 / 2)
    assert aggregate(x, mask, "seq_mean_token_mean", **kw).item() == pytest.approx((2 + 4) / 2)
    assert aggregate(x, mask, "constant", **kw).item() == pytest.approx(10 / 6)


def test_grpo_scales_a_group_s_kl_noise_to_unit_advantages_when_the_kl_is_a_reward():
    """Why ``ppo.kl_mode=reward`` is refused with grpo: four answers, all right (outcome 1), whose
    only differences are KL penalties of 1e-4 get advantages of size ~1, as a real success
    would; with the KL in the loss they get 0."""
    mask = torch.ones(4, 2)
    zeros = torch.zeros(4, 2)
    ends = torch.tensor([[False, True]] * 4)
    group = torch.zeros(4, dtype=torch.long)
    kl = torch.tensor([[0.0, -1e-4], [0.0, 1e-4], [0.0, 0.0], [0.0, 0.0]])
    noisy = critic_free_advantages(torch.ones(4), zeros, ends, mask, group, estimator="grpo", kl_tokens=kl)
    assert noisy[:, 0].abs().max() > 0.9
    clean = critic_free_advantages(torch.ones(4), zeros, ends, mask, group, estimator="grpo")
    assert clean.abs().max() == 0


def test_grpo_scale_with_dense_returns_by_hand():
    """Two right answers whose whole returns are equal (std 0) while A's returns differ along it:
    A's step rewards -0.2 then +0.2 (Clip-Delta-like), B's none. Returns A [1.0, 1.2], B [1, 1];
    baseline 1. The scale is sqrt((mean(0^2, 0.2^2) + 0) / (2 - 1)) = sqrt(0.02), so A's second
    token gets 0.2 / 0.1414 = 1.414 and not 0.2 / eps."""
    mask = torch.ones(2, 2, dtype=torch.bool)
    ends = torch.tensor([[True, True], [True, True]])
    steps = torch.tensor([[-0.2, 0.2], [0.0, 0.0]])
    adv = critic_free_advantages(torch.ones(2), steps, ends, mask, torch.zeros(2, dtype=torch.long),
                                 estimator="grpo")
    assert adv.tolist() == [pytest.approx([0.0, math.sqrt(2)], abs=1e-4), [0.0, 0.0]]
