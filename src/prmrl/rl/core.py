"""PPO math: masked reductions, log-probs, KL estimators, GAE, losses.

Pure functions on tensors; imports only torch. Conventions:

- response tensors are ``(B, T)`` and RIGHT-padded;
- ``mask`` ``(B, T)`` (bool or 0/1 float) is true on real response tokens, a contiguous prefix
  of each row (possibly empty);
- padding never influences a result: masked entries are selected away with ``torch.where``
  (not multiplied by 0), so even inf/NaN on padding cannot leak, and outputs are 0 there.

Nothing here mutates its inputs, calls ``.item()`` or reads a config object.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor


def _zero_pad(x: Tensor, mask: Tensor) -> Tensor:
    return torch.where(mask.bool(), x, torch.zeros((), dtype=x.dtype, device=x.device))


def masked_mean(x: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    """Mean of ``x`` over entries where ``mask`` is true.

    x, mask: same shape (e.g. ``(B, T)``). ``dim=None`` reduces everything to a 0-d tensor;
    otherwise reduces ``dim``. An empty mask gives 0 (not NaN), so a batch of empty responses
    yields a zero loss instead of poisoning the step. Source: verl ``verl_F.masked_mean``.
    """
    m = mask.bool()
    return _zero_pad(x, m).sum(dim=dim) / m.sum(dim=dim).clamp(min=1).to(x.dtype)


def masked_whiten(x: Tensor, mask: Tensor, shift_mean: bool = True, eps: float = 1e-8) -> Tensor:
    """Normalise ``x`` to mean 0, std 1 over the masked entries; masked-out entries become 0.

    x, mask: same shape, e.g. ``(B, T)``. Statistics are over ALL masked entries (the whole
    batch). Population variance (divide by n, not n - 1) so a single token gives 0, not NaN.
    ``shift_mean=False`` adds the mean back (scale only). Source: trl/verl ``masked_whiten``.
    """
    mean = masked_mean(x, mask)
    var = masked_mean((x - mean) ** 2, mask)
    whitened = (x - mean) * torch.rsqrt(var + eps)
    if not shift_mean:
        whitened = whitened + mean
    return _zero_pad(whitened, mask)


def logprobs_from_logits(logits: Tensor, labels: Tensor) -> Tensor:
    """Log-probability of each label under ``logits``.

    logits: ``(B, T, V)``; labels: ``(B, T)`` long, valid ids everywhere (put the pad id on
    padding, not -100). Returns ``(B, T)`` float32 (float64 if logits are float64).
    Computed as ``logit[label] - logsumexp(logits)`` so no ``(B, T, V)`` log-softmax is kept;
    half-precision logits go row by row in float32 to bound memory and keep precision.
    Source: trl ``selective_log_softmax``.
    """
    if logits.dtype in (torch.float32, torch.float64):
        picked = torch.gather(logits, -1, labels.unsqueeze(-1)).squeeze(-1)
        return picked - torch.logsumexp(logits, dim=-1)
    rows = [
        torch.log_softmax(row.float(), dim=-1).gather(-1, lab.unsqueeze(-1)).squeeze(-1)
        for row, lab in zip(logits, labels)
    ]
    return torch.stack(rows)


def entropy_from_logits(logits: Tensor) -> Tensor:
    """Entropy of the softmax distribution at each position.

    logits: ``(B, T, V)`` -> ``(B, T)``, computed in float32 (at least).
    ``H = logsumexp(z) - sum softmax(z) * z``. Source: verl ``entropy_from_logits``.
    """
    z = logits if logits.dtype == torch.float64 else logits.float()
    p = torch.softmax(z, dim=-1)
    return torch.logsumexp(z, dim=-1) - (p * z).sum(dim=-1)


def _kl_k1(logprobs: Tensor, ref_logprobs: Tensor) -> Tensor:
    return logprobs - ref_logprobs


def _kl_k2(logprobs: Tensor, ref_logprobs: Tensor) -> Tensor:
    return 0.5 * (logprobs - ref_logprobs) ** 2


def _kl_k3(logprobs: Tensor, ref_logprobs: Tensor) -> Tensor:
    # exp() overflows for very unlikely sampled tokens; capped at 10 as verl's low_var_kl does,
    # so one token cannot swamp the whole reward.
    log_ratio = ref_logprobs - logprobs
    return (torch.exp(log_ratio) - log_ratio - 1).clamp(max=10.0)


def _kl_abs(logprobs: Tensor, ref_logprobs: Tensor) -> Tensor:
    return (logprobs - ref_logprobs).abs()


KL_ESTIMATORS: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "k1": _kl_k1,
    "k2": _kl_k2,
    "k3": _kl_k3,
    "abs": _kl_abs,
}


def kl_penalty(logprobs: Tensor, ref_logprobs: Tensor, kind: str = "k1") -> Tensor:
    """Per-token estimate of KL(pi || pi_ref) from sampled-token log-probs.

    logprobs, ref_logprobs: ``(B, T)`` -> ``(B, T)``. Kinds (see ``KL_ESTIMATORS``):
    ``k1`` = logp - logp_ref; ``k2`` = 0.5 (logp - logp_ref)^2;
    ``k3`` = exp(logp_ref - logp) - (logp_ref - logp) - 1 (capped at 10);
    ``abs`` = |logp - logp_ref|.
    Source: Schulman, "Approximating KL Divergence" (2020); verl ``kl_penalty``.
    """
    if kind not in KL_ESTIMATORS:
        raise ValueError(f"unknown KL estimator {kind!r}; allowed: {sorted(KL_ESTIMATORS)}")
    return KL_ESTIMATORS[kind](logprobs, ref_logprobs)


@torch.no_grad()
def gae(
    token_rewards: Tensor, values: Tensor, mask: Tensor, gamma: float, lam: float
) -> tuple[Tensor, Tensor]:
    """Generalised advantage estimation over right-padded responses.

    token_rewards, values, mask: ``(B, T)``. Returns ``(advantages, returns)``, both ``(B, T)``,
    0 on padding, ``returns = advantages + values``. Rewards and values on padding are zeroed
    first, so the value after a row's last real token is 0 (terminal) and padding changes
    nothing. Runs under no_grad: both outputs are targets, never differentiated.
    Source: Schulman et al. 2016 (GAE); cleanrl ``ppo.py``; verl ``compute_gae_advantage_return``.
    """
    r = _zero_pad(token_rewards, mask)
    v = _zero_pad(values, mask)
    T = r.shape[1]
    next_value = torch.zeros_like(v[:, 0])  # (B,)
    running = torch.zeros_like(v[:, 0])  # (B,): A_{t+1}
    advs_reversed = []
    for t in reversed(range(T)):
        delta = r[:, t] + gamma * next_value - v[:, t]
        running = delta + gamma * lam * running
        advs_reversed.append(running)
        next_value = v[:, t]
    advantages = _zero_pad(torch.stack(advs_reversed[::-1], dim=1), mask)
    return advantages, _zero_pad(advantages + v, mask)


def policy_loss(
    logprobs: Tensor, old_logprobs: Tensor, advantages: Tensor, mask: Tensor, clip_eps: float
) -> tuple[Tensor, dict[str, Tensor]]:
    """PPO clipped surrogate loss, token-mean over the mask.

    logprobs (current, with grad), old_logprobs, advantages, mask: ``(B, T)``.
    loss = mean_t max(-A r, -A clip(r, 1 - eps, 1 + eps)), r = exp(logp - logp_old).
    Stats (0-d, detached): ``clipfrac`` = share of tokens where the clipped term is selected
    (no gradient there); ``approx_kl`` = mean of the k3 estimator (r - 1) - log r of
    KL(old || new). Source: Schulman et al. 2017; cleanrl ``ppo.py``; verl ``compute_policy_loss``.
    """
    logratio = _zero_pad(logprobs - old_logprobs, mask)
    adv = _zero_pad(advantages, mask)
    ratio = torch.exp(logratio)
    unclipped = -adv * ratio
    clipped = -adv * torch.clamp(ratio, 1.0 - clip_eps, 1.0 + clip_eps)
    loss = masked_mean(torch.maximum(unclipped, clipped), mask)
    with torch.no_grad():
        stats = {
            "clipfrac": masked_mean((clipped > unclipped).to(logratio.dtype), mask),
            "approx_kl": masked_mean((ratio - 1) - logratio, mask),
        }
    return loss, stats


def value_loss(
    values: Tensor, old_values: Tensor, returns: Tensor, mask: Tensor, clip_eps: float
) -> tuple[Tensor, dict[str, Tensor]]:
    """Clipped value loss 0.5 * max((v - R)^2, (v_clip - R)^2), token-mean over the mask.

    values (current, with grad), old_values, returns, mask: ``(B, T)``.
    ``v_clip = old + clip(v - old, -eps, eps)``. Stats: ``clipfrac`` = share of tokens where the
    clipped term is the larger (no gradient there). Source: cleanrl ``ppo.py`` (clip_vloss);
    verl ``compute_value_loss``.
    """
    v = _zero_pad(values, mask)
    old = _zero_pad(old_values, mask)
    ret = _zero_pad(returns, mask)
    v_clipped = old + torch.clamp(v - old, -clip_eps, clip_eps)
    unclipped = (v - ret) ** 2
    clipped = (v_clipped - ret) ** 2
    loss = 0.5 * masked_mean(torch.maximum(unclipped, clipped), mask)
    with torch.no_grad():
        stats = {"clipfrac": masked_mean((clipped > unclipped).to(v.dtype), mask)}
    return loss, stats
