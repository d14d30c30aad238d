"""PPO math on hand-computed numbers, plus padding invariances."""

import math

import pytest
import torch

from prmrl.rl.core import (
    KL_ESTIMATORS,
    entropy_from_logits,
    gae,
    kl_penalty,
    logprobs_from_logits,
    masked_mean,
    masked_whiten,
    policy_loss,
    value_loss,
)
from prmrl.rewards.placement import place_rewards


def lengths_to_mask(lengths, T):
    return torch.arange(T).unsqueeze(0) < torch.tensor(lengths).unsqueeze(1)


def corrupt_padding(x, mask, value=float("nan")):
    return torch.where(mask, x, torch.full_like(x, value))


# --- masked reductions -----------------------------------------------------------------------


def test_masked_mean_hand():
    x = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    assert masked_mean(x, mask).item() == pytest.approx(7 / 3)
    assert masked_mean(x, mask, dim=1).tolist() == pytest.approx([1.5, 4.0])
    # padding holding NaN does not leak; an empty mask gives 0, not NaN
    assert masked_mean(corrupt_padding(x, mask.bool()), mask).item() == pytest.approx(7 / 3)
    assert masked_mean(x, torch.zeros_like(mask)).item() == 0.0


def test_masked_whiten_mean0_std1_over_mask():
    torch.manual_seed(0)
    x = torch.randn(4, 7) * 3 + 2
    mask = lengths_to_mask([7, 3, 0, 5], 7)
    w = masked_whiten(x, mask)
    assert w[mask].mean().item() == pytest.approx(0.0, abs=1e-6)
    assert w[mask].std(unbiased=False).item() == pytest.approx(1.0, abs=1e-5)
    assert (w[~mask] == 0).all()
    # padding values do not change the statistics; input untouched
    assert torch.allclose(masked_whiten(corrupt_padding(x, mask, 1e6), mask), w)
    kept = masked_whiten(x, mask, shift_mean=False)
    assert kept[mask].mean().item() == pytest.approx(x[mask].mean().item(), abs=1e-5)


# --- log-probs, entropy, KL ------------------------------------------------------------------


def test_logprobs_from_logits_matches_log_softmax():
    torch.manual_seed(0)
    logits = torch.randn(2, 5, 11)
    labels = torch.randint(0, 11, (2, 5))
    ref = torch.log_softmax(logits, -1).gather(-1, labels.unsqueeze(-1)).squeeze(-1)
    assert torch.allclose(logprobs_from_logits(logits, labels), ref, atol=1e-6)
    half = logprobs_from_logits(logits.bfloat16(), labels)
    assert half.dtype == torch.float32
    assert torch.allclose(half, ref, atol=5e-2)


@pytest.mark.parametrize("chunk_rows", [None, 1, 3])
def test_logprobs_from_logits_gradcheck(monkeypatch, chunk_rows):
    """The custom backward (softmax recomputed per chunk) against finite differences, with a
    temperature, on whole-batch chunks, single positions and 3-position chunks."""
    import prmrl.rl.core as core

    if chunk_rows is not None:
        monkeypatch.setattr(core, "_CHUNK_ELEMS", chunk_rows * 7)
    torch.manual_seed(0)
    logits = torch.randn(2, 5, 7, dtype=torch.float64, requires_grad=True)
    labels = torch.randint(0, 7, (2, 5))
    for tau in (1.0, 0.7):
        assert torch.autograd.gradcheck(lambda x: logprobs_from_logits(x, labels, tau), (logits,))
        ref = torch.log_softmax(logits / tau, -1).gather(-1, labels.unsqueeze(-1)).squeeze(-1)
        out = logprobs_from_logits(logits, labels, tau)
        assert out.dtype == torch.float64 and torch.allclose(out, ref, atol=1e-12)
    # a non-contiguous slice (as token_logprobs passes) and 2-D input
    sl = logits[:, :-1]
    ref = torch.log_softmax(sl, -1).gather(-1, labels[:, :-1, None]).squeeze(-1)
    assert torch.allclose(logprobs_from_logits(sl, labels[:, :-1]), ref, atol=1e-12)
    ref2d = torch.log_softmax(logits[0], -1).gather(-1, labels[0, :, None]).squeeze(-1)
    assert torch.allclose(logprobs_from_logits(logits[0], labels[0]), ref2d, atol=1e-12)


def test_entropy_from_logits():
    uniform = torch.zeros(1, 2, 8)
    assert torch.allclose(entropy_from_logits(uniform), torch.full((1, 2), math.log(8)))
    logits = torch.randn(3, 4, 6)
    ref = torch.distributions.Categorical(logits=logits).entropy()
    assert torch.allclose(entropy_from_logits(logits), ref, atol=1e-6)
    ref = torch.distributions.Categorical(logits=logits / 0.7).entropy()
    assert torch.allclose(entropy_from_logits(logits, temperature=0.7), ref, atol=1e-6)
    assert torch.allclose(entropy_from_logits(logits.bfloat16()), torch.distributions.Categorical(
        logits=logits.bfloat16().float()).entropy(), atol=1e-6)
    # differentiable when asked (the no-grad pass works in place, this one must not)
    x = logits.double().requires_grad_()
    assert torch.autograd.gradcheck(lambda z: entropy_from_logits(z, temperature=0.7), (x,))


def test_kl_estimators_hand():
    logp, ref = torch.tensor([-1.0]), torch.tensor([-2.0])
    assert kl_penalty(logp, ref, "k1").item() == pytest.approx(1.0)
    assert kl_penalty(logp, ref, "k2").item() == pytest.approx(0.5)
    assert kl_penalty(logp, ref, "k3").item() == pytest.approx(math.exp(-1))  # e^-1 + 1 - 1
    assert kl_penalty(ref, logp, "abs").item() == pytest.approx(1.0)
    assert kl_penalty(logp, ref).item() == pytest.approx(1.0)  # default k1
    assert set(KL_ESTIMATORS) == {"k1", "k2", "k3", "abs"}
    for kind in KL_ESTIMATORS:  # every estimator is 0 when the policies agree
        assert kl_penalty(logp, logp, kind).item() == 0.0
    with pytest.raises(ValueError, match="k3"):
        kl_penalty(logp, ref, "k4")


# --- reward placement ------------------------------------------------------------------------


def place_example():
    mask = lengths_to_mask([4, 2, 0], 5)
    answer = torch.tensor([1.0, 2.0, 3.0])
    step_rewards = torch.tensor([[0.1, 0.2, 0.3], [0.5, 7.0, 8.0], [9.0, 9.0, 9.0]])
    step_end = torch.tensor([[1, 1, 3], [0, -1, 99], [-1, 0, 4]])
    step_mask = torch.tensor([[True, True, True], [True, False, False], [False, False, False]])
    return answer, step_rewards, step_end, step_mask, mask


def test_place_rewards_hand():
    answer, step_rewards, step_end, step_mask, mask = place_example()
    inputs = [t.clone() for t in (answer, step_rewards, step_end, step_mask, mask)]
    out = place_rewards(answer, step_rewards, step_end, step_mask, mask)
    expected = torch.tensor(
        [
            [0.0, 0.3, 0.0, 1.3, 0.0],  # steps 0 and 1 both end on token 1; answer on token 3
            [0.5, 2.0, 0.0, 0.0, 0.0],  # masked steps with indices -1 and 99 ignored
            [0.0, 0.0, 0.0, 0.0, 0.0],  # empty response: nothing at all
        ]
    )
    assert torch.allclose(out, expected)
    for before, after in zip(inputs, (answer, step_rewards, step_end, step_mask, mask)):
        assert torch.equal(before, after)  # inputs not mutated


def test_place_rewards_ignores_masked_step_values():
    answer, step_rewards, step_end, step_mask, mask = place_example()
    out = place_rewards(answer, step_rewards, step_end, step_mask, mask)
    noisy = corrupt_padding(step_rewards, step_mask, float("nan"))
    assert torch.equal(place_rewards(answer, noisy, step_end, step_mask, mask), out)


def test_place_rewards_drops_valid_step_outside_response():
    mask = lengths_to_mask([2], 4)
    one_step = (torch.tensor([[5.0]]), torch.tensor([[3]]), torch.tensor([[True]]))
    out = place_rewards(torch.tensor([0.0]), *one_step, mask)
    assert (out == 0).all()  # index 3 is padding: nothing lands there


# --- GAE -------------------------------------------------------------------------------------


def gae_loop_reference(rewards, values, lengths, gamma, lam):
    """Plain per-row python loop over the real tokens only."""
    B, T = rewards.shape
    adv = torch.zeros(B, T, dtype=torch.float64)
    for b in range(B):
        running, next_v = 0.0, 0.0
        for t in reversed(range(lengths[b])):
            delta = rewards[b, t].item() + gamma * next_v - values[b, t].item()
            running = delta + gamma * lam * running
            adv[b, t] = running
            next_v = values[b, t].item()
    return adv


def test_gae_hand():
    mask = torch.ones(1, 3, dtype=torch.bool)
    rewards = torch.tensor([[0.0, 0.0, 1.0]])
    values = torch.tensor([[0.5, 0.5, 0.5]])
    adv, ret = gae(rewards, values, mask, gamma=1.0, lam=1.0)
    assert adv.tolist()[0] == pytest.approx([0.5, 0.5, 0.5])
    assert ret.tolist()[0] == pytest.approx([1.0, 1.0, 1.0])
    # gamma 0.9, lam 0.5: deltas (-0.05, -0.05, 0.5); A2 = 0.5, A1 = -0.05 + 0.45 * 0.5 = 0.175,
    # A0 = -0.05 + 0.45 * 0.175 = 0.02875
    adv, ret = gae(rewards, values, mask, gamma=0.9, lam=0.5)
    assert adv.tolist()[0] == pytest.approx([0.02875, 0.175, 0.5])
    assert ret.tolist()[0] == pytest.approx([0.52875, 0.675, 1.0])


def test_gae_padded_row_is_terminal_after_last_real_token():
    mask = lengths_to_mask([2], 3)
    rewards, values = torch.tensor([[0.0, 1.0, 99.0]]), torch.tensor([[0.5, 0.5, 99.0]])
    adv, ret = gae(rewards, values, mask, 1.0, 1.0)
    assert adv.tolist()[0] == pytest.approx([0.5, 0.5, 0.0])
    assert ret.tolist()[0] == pytest.approx([1.0, 1.0, 0.0])


def test_gae_reward_to_go_with_zero_values():
    torch.manual_seed(1)
    lengths = [6, 3, 0, 1]
    mask = lengths_to_mask(lengths, 6)
    rewards = torch.where(mask, torch.randn(4, 6), torch.zeros(()))
    adv, ret = gae(rewards, torch.zeros(4, 6), mask, gamma=1.0, lam=1.0)
    to_go = rewards.flip(1).cumsum(1).flip(1)
    assert torch.allclose(adv, to_go, atol=1e-6)
    assert torch.allclose(ret, to_go, atol=1e-6)


def test_gae_matches_loop_reference_and_ignores_padding():
    torch.manual_seed(2)
    B, T = 5, 9
    lengths = [9, 4, 0, 1, 7]
    mask = lengths_to_mask(lengths, T)
    rewards = torch.randn(B, T, dtype=torch.float64)
    values = torch.randn(B, T, dtype=torch.float64)
    for gamma, lam in [(1.0, 1.0), (0.99, 0.95), (0.9, 0.0)]:
        adv, ret = gae(rewards, values, mask, gamma, lam)
        ref = gae_loop_reference(rewards, values, lengths, gamma, lam)
        assert torch.allclose(adv, ref)
        assert torch.allclose(ret, torch.where(mask, ref + values, torch.zeros(())))
        noisy_r, noisy_v = corrupt_padding(rewards, mask, 1e3), corrupt_padding(values, mask)
        adv2, ret2 = gae(noisy_r, noisy_v, mask, gamma, lam)
        assert torch.equal(adv2, adv) and torch.equal(ret2, ret)


def test_gae_outputs_carry_no_grad():
    values = torch.zeros(1, 2, requires_grad=True)
    adv, ret = gae(torch.ones(1, 2), values, torch.ones(1, 2), 1.0, 1.0)
    assert not adv.requires_grad and not ret.requires_grad


# --- losses ----------------------------------------------------------------------------------


def test_policy_loss_clipping_hand():
    # token 0: A=+1, ratio 1.5 > 1.2 -> clipped, loss -1.2, no gradient
    # token 1: A=+1, ratio 0.5 -> min(0.5, 0.8) = 0.5 is unclipped, loss -0.5, grad -0.5
    # token 2: A=-1, ratio 1.5 -> max(1.5, 1.2) = 1.5 is unclipped, loss 1.5, grad 1.5
    logprobs = torch.log(torch.tensor([[1.5, 0.5, 1.5]])).requires_grad_()
    old = torch.zeros(1, 3)
    adv = torch.tensor([[1.0, 1.0, -1.0]])
    mask = torch.ones(1, 3)
    loss, stats = policy_loss(logprobs, old, adv, mask, clip_eps=0.2)
    assert loss.item() == pytest.approx((-1.2 - 0.5 + 1.5) / 3)
    loss.backward()
    assert logprobs.grad.tolist()[0] == pytest.approx([0.0, -0.5 / 3, 1.5 / 3])
    assert stats["clipfrac"].item() == pytest.approx(1 / 3)
    k3 = [(r - 1) - math.log(r) for r in (1.5, 0.5, 1.5)]
    assert stats["approx_kl"].item() == pytest.approx(sum(k3) / 3)
    assert all(v.dim() == 0 and not v.requires_grad for v in stats.values())


def test_policy_loss_ignores_padding():
    torch.manual_seed(3)
    mask = lengths_to_mask([4, 2], 4)
    logp, old, adv = torch.randn(2, 4), torch.randn(2, 4), torch.randn(2, 4)
    loss, stats = policy_loss(logp, old, adv, mask, 0.2)
    noisy_logp = corrupt_padding(logp, mask, 50.0).requires_grad_()
    noisy_old, noisy_adv = corrupt_padding(old, mask), corrupt_padding(adv, mask)
    loss2, stats2 = policy_loss(noisy_logp, noisy_old, noisy_adv, mask, 0.2)
    assert loss2.item() == pytest.approx(loss.item())
    for key in ("clipfrac", "approx_kl"):
        assert stats2[key].item() == pytest.approx(stats[key].item())
    loss2.backward()
    assert (noisy_logp.grad[~mask] == 0).all()


def test_value_loss_hand():
    # token 0: v=1, old=0, R=2, eps 0.2: unclipped 1, clipped (0.2 - 2)^2 = 3.24 -> 3.24, no grad
    # token 1: v=0.1, old=0, R=-1: unclipped 1.21, v_clip = 0.1 too -> 1.21, grad v - R = 1.1
    values = torch.tensor([[1.0, 0.1]], requires_grad=True)
    returns, mask = torch.tensor([[2.0, -1.0]]), torch.ones(1, 2)
    loss, stats = value_loss(values, torch.zeros(1, 2), returns, mask, 0.2)
    assert loss.item() == pytest.approx(0.5 * (3.24 + 1.21) / 2)
    loss.backward()
    assert values.grad.tolist()[0] == pytest.approx([0.0, 1.1 / 2])
    assert stats["clipfrac"].item() == pytest.approx(0.5)


def test_value_loss_ignores_padding():
    torch.manual_seed(4)
    mask = lengths_to_mask([3, 1, 0], 3)
    v, old, ret = torch.randn(3, 3), torch.randn(3, 3), torch.randn(3, 3)
    loss, _ = value_loss(v, old, ret, mask, 0.2)
    noisy = [corrupt_padding(x, mask) for x in (v, old, ret)]
    loss2, _ = value_loss(*noisy, mask, 0.2)
    assert loss2.item() == pytest.approx(loss.item())
