"""PPO math: masked reductions, log-probs, KL estimators, GAE, losses (docs/method.md, "PPO").

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


# Chunks of the logits are processed in turn (rows of the flattened (B*T, V)), each at most
# about this many elements, so the float32 temporaries of the log-prob and entropy passes stay
# bounded (64 MiB in float32) whatever B, T and the logits' dtype are.
_CHUNK_ELEMS = 1 << 24


def _as_btv(x: Tensor) -> Tensor:
    """(..., V) as a 3-D (B, T, V) view (a copy only for >3-D non-viewable input)."""
    if x.dim() == 3:
        return x
    if x.dim() < 3:
        return x.reshape(*([1] * (3 - x.dim())), *x.shape)
    return x.reshape(-1, *x.shape[-2:])


def _row_chunks(B: int, T: int, V: int) -> list[tuple[slice, slice]]:
    """(batch, time) slices covering (B, T), each about ``_CHUNK_ELEMS // V`` rows, so every
    chunk is a view of a (B, T, V) tensor even when it is a non-contiguous slice."""
    rows = max(1, _CHUNK_ELEMS // max(V, 1))
    if T == 0 or B == 0:
        return []
    if T <= rows:
        step = max(1, rows // T)
        return [(slice(b, b + step), slice(None)) for b in range(0, B, step)]
    return [(slice(b, b + 1), slice(t, t + rows)) for b in range(B) for t in range(0, T, rows)]


def _compute_dtype(logits: Tensor) -> torch.dtype:
    return torch.float64 if logits.dtype == torch.float64 else torch.float32


def _scaled(chunk: Tensor, dtype: torch.dtype, temperature: float, copy: bool = False) -> Tensor:
    """``chunk / temperature`` in ``dtype``: at most one new chunk-sized tensor (none for a
    float32 chunk at temperature 1 unless ``copy``)."""
    z = chunk.to(dtype, copy=copy or temperature != 1.0)
    return z.div_(temperature) if temperature != 1.0 else z


def _selective_forward(logits: Tensor, labels: Tensor, temperature: float) -> tuple[Tensor, Tensor]:
    """(log-probs, logsumexp) of 3-D logits, chunk by chunk in float32 (float64 for float64)."""
    B, T, V = logits.shape
    dtype = _compute_dtype(logits)
    logprobs = torch.empty((B, T), dtype=dtype, device=logits.device)
    lse = torch.empty_like(logprobs)
    for bs, ts in _row_chunks(B, T, V):
        z = _scaled(logits[bs, ts], dtype, temperature)
        chunk_lse = torch.logsumexp(z, dim=-1)
        lse[bs, ts] = chunk_lse
        logprobs[bs, ts] = z.gather(-1, labels[bs, ts].unsqueeze(-1)).squeeze(-1) - chunk_lse
        del z            # before the next chunk's: one chunk temporary alive at a time
    return logprobs, lse


class _SelectiveLogSoftmax(torch.autograd.Function):
    """log softmax(logits / temperature)[label], saving only the input logits and the (B, T)
    logsumexp for backward; the backward recomputes the softmax chunk by chunk."""

    @staticmethod
    def forward(ctx, logits: Tensor, labels: Tensor, temperature: float) -> Tensor:
        logprobs, lse = _selective_forward(logits, labels, temperature)
        ctx.save_for_backward(logits, labels, lse)
        ctx.temperature = temperature
        return logprobs

    @staticmethod
    def backward(ctx, grad: Tensor):
        logits, labels, lse = ctx.saved_tensors
        if not ctx.needs_input_grad[0]:
            return None, None, None
        tau = ctx.temperature
        B, T, V = logits.shape
        dtype = _compute_dtype(logits)
        grad_logits = torch.empty(logits.shape, dtype=logits.dtype, device=logits.device)
        grad = grad.to(dtype)
        same = logits.dtype == dtype
        for bs, ts in _row_chunks(B, T, V):
            g = grad[bs, ts].unsqueeze(-1)                                      # (b, t, 1)
            if same:     # work in the output itself: no chunk temporary
                d = grad_logits[bs, ts].copy_(logits[bs, ts])
                if tau != 1.0:
                    d.div_(tau)
            else:        # half precision: one float32 chunk
                d = _scaled(logits[bs, ts], dtype, tau, copy=True)
            d.sub_(lse[bs, ts].unsqueeze(-1)).exp_().mul_(-g)      # -g * softmax
            d.scatter_add_(-1, labels[bs, ts].unsqueeze(-1), g)                # + g * onehot
            if tau != 1.0:
                d.div_(tau)
            if not same:
                grad_logits[bs, ts] = d
            del d
        return grad_logits, None, None


def logprobs_from_logits(logits: Tensor, labels: Tensor, temperature: float = 1.0) -> Tensor:
    """Log-probability of each label under ``softmax(logits / temperature)``.

    logits: ``(B, T, V)`` (any leading dims); labels: ``(B, T)`` long, valid ids everywhere
    (put the pad id on padding, not -100). Returns ``(B, T)`` float32 (float64 if logits are
    float64), differentiable w.r.t. ``logits``.

    Computed as ``z[label] - logsumexp(z)`` (``z = logits / temperature``) chunk by chunk: no
    ``(B, T, V)`` log-softmax exists, half-precision logits are never upcast as a whole (only a
    bounded chunk at a time), and the temperature is applied per chunk (no scaled copy).
    Backward keeps only the input logits and the ``(B, T)`` logsumexp, and recomputes the
    softmax per chunk. Source: trl ``selective_log_softmax``, with a custom backward.
    """
    x = _as_btv(logits)
    lab = labels.reshape(x.shape[:-1])
    if torch.is_grad_enabled() and x.requires_grad:
        out = _SelectiveLogSoftmax.apply(x, lab, float(temperature))
    else:
        out = _selective_forward(x, lab, float(temperature))[0]
    return out.reshape(labels.shape)


def entropy_from_logits(logits: Tensor, temperature: float = 1.0) -> Tensor:
    """Entropy of ``softmax(logits / temperature)`` at each position.

    logits: ``(B, T, V)`` (any leading dims) -> ``(B, T)``, computed in float32 (float64 for
    float64) chunk by chunk, so the temporaries are bounded and half-precision logits are never
    upcast as a whole. ``H = -sum p log p`` with ``log p = z - logsumexp(z)`` (no cancellation
    between large terms, unlike ``logsumexp(z) - sum p z``). Differentiable, but callers
    that only log it should call it under ``torch.no_grad()`` on detached logits.
    Source: verl ``entropy_from_logits``.
    """
    x = _as_btv(logits)
    B, T, V = x.shape
    out = torch.empty((B, T), dtype=_compute_dtype(x), device=x.device)
    in_place = not (torch.is_grad_enabled() and x.requires_grad)    # two chunk temporaries
    for bs, ts in _row_chunks(B, T, V):
        z = _scaled(x[bs, ts], out.dtype, temperature, copy=in_place)
        lse = torch.logsumexp(z, dim=-1, keepdim=True)
        logp = z.sub_(lse) if in_place else z - lse
        p = logp.exp()
        out[bs, ts] = -(p.mul_(logp) if in_place else p * logp).sum(-1)
        del z, logp, p
    return out.reshape(logits.shape[:-1])


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
    per_token, stats = policy_loss_tokens(logprobs, old_logprobs, advantages, mask, clip_eps)
    return masked_mean(per_token, mask), stats


def policy_loss_tokens(
    logprobs: Tensor, old_logprobs: Tensor, advantages: Tensor, mask: Tensor, clip_eps: float
) -> tuple[Tensor, dict[str, Tensor]]:
    """The clipped surrogate per token, ``(B, T)``, 0 on padding (``policy_loss`` before its
    token mean; the critic-free estimators aggregate it their own way), and the same stats."""
    logratio = _zero_pad(logprobs - old_logprobs, mask)
    adv = _zero_pad(advantages, mask)
    ratio = torch.exp(logratio)
    unclipped = -adv * ratio
    clipped = -adv * torch.clamp(ratio, 1.0 - clip_eps, 1.0 + clip_eps)
    per_token = _zero_pad(torch.maximum(unclipped, clipped), mask)
    with torch.no_grad():
        stats = {
            "clipfrac": masked_mean((clipped > unclipped).to(logratio.dtype), mask),
            "approx_kl": masked_mean((ratio - 1) - logratio, mask),
        }
    return per_token, stats


def value_loss(
    values: Tensor, old_values: Tensor, returns: Tensor, mask: Tensor, clip_eps: float
) -> tuple[Tensor, dict[str, Tensor]]:
    """Clipped value loss 0.5 * max((v - R)^2, (v_clip - R)^2), token-mean over the mask.

    values (current, with grad), old_values, returns, mask: ``(B, T)``.
    ``v_clip = old + clip(v - old, -eps, eps)``. Stats: ``clipfrac`` = share of tokens where the
    clipped term is the larger (no gradient there). Source: cleanrl ``ppo.py`` (clip_vloss);
    verl ``compute_value_loss``.
    """
    per_token, stats = value_loss_tokens(values, old_values, returns, mask, clip_eps)
    return masked_mean(per_token, mask), stats


def value_loss_tokens(
    values: Tensor, old_values: Tensor, returns: Tensor, mask: Tensor, clip_eps: float
) -> tuple[Tensor, dict[str, Tensor]]:
    """The clipped value loss per token, ``(B, T)``, 0 on padding (``value_loss`` before its
    token mean: micro-batches divide its sum by their minibatch's token count), and the stats."""
    v = _zero_pad(values, mask)
    old = _zero_pad(old_values, mask)
    ret = _zero_pad(returns, mask)
    v_clipped = old + torch.clamp(v - old, -clip_eps, clip_eps)
    unclipped = (v - ret) ** 2
    clipped = (v_clipped - ret) ** 2
    per_token = _zero_pad(0.5 * torch.maximum(unclipped, clipped), mask)
    with torch.no_grad():
        stats = {"clipfrac": masked_mean((clipped > unclipped).to(v.dtype), mask)}
    return per_token, stats


def _lr_constant(step: int, total: int) -> float:
    return 1.0


def _lr_linear(step: int, total: int) -> float:
    return max(0.0, 1.0 - step / max(1, total))


LR_SCHEDULES: dict[str, Callable[[int, int], float]] = {
    "constant": _lr_constant,
    "linear": _lr_linear,
}
"""name -> ``factor(step, total)``: the learning rate at update ``step`` of ``total`` is
``lr * factor`` (``ppo.lr_schedule``; ``linear`` reaches 0 after the last iteration)."""
