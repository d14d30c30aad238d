"""Per-step PRM reward refinements: naive, Normed, Clip, Delta, Clip-Delta, min-form, and
Delta keeping the last step's score.

Gao et al. 2024 (arXiv 2410.15115): a dense PRM reward r_k summed over steps grows with
the number of steps, so PPO learns to emit many short steps. Clip (min(r_k - eta, 0)) and Delta
(r_k - r_{k+1}) make every trajectory's summed reward bounded, so extra steps cannot earn more.

Raw PRM outputs are ``scores``; what comes out is a shaped per-step reward. Each method is a
batched function ``fn(scores (B, S), step_mask (B, S) bool, eta) -> (B, S)`` registered in
``SHAPING_METHODS``; ``step_mask`` is a contiguous prefix of valid steps per row, and masked
steps are 0 in the output. ``shape_step_rewards`` is the 1-D entry point (one answer).
Imports only torch; nothing mutates its inputs.
"""

from __future__ import annotations

from typing import Callable, Sequence, overload

import torch
from torch import Tensor


def _masked(x: Tensor, step_mask: Tensor) -> Tensor:
    # where, not multiply: NaN/inf scores on padding steps must not leak.
    return torch.where(step_mask, x, torch.zeros((), dtype=x.dtype, device=x.device))


def _delta(x: Tensor, step_mask: Tensor, keep_last: bool = False) -> Tensor:
    """d_k = x'_k - x'_{k+1} with x' = x on all valid steps but the last, 0 elsewhere.

    That is exactly the paper's table: x_k - x_{k+1} for k < K-1, x_{K-1} for k = K-1 and 0 for
    k = K, because the last step's score is dropped (the success reward judges the end).
    ``keep_last``: x' = x on every valid step, so step K gets x_K.
    """
    n = step_mask.sum(dim=1, keepdim=True)  # (B, 1) valid steps per row
    pos = torch.arange(x.shape[1], device=x.device).unsqueeze(0)  # (1, S)
    x_prime = _masked(x, pos < (n if keep_last else n - 1))
    next_prime = torch.cat([x_prime[:, 1:], torch.zeros_like(x_prime[:, :1])], dim=1)
    return _masked(x_prime - next_prime, step_mask)


def shape_none(scores: Tensor, step_mask: Tensor, eta: float) -> Tensor:
    """PR (naive): r_k. Summed reward grows with K, hence hackable. ``eta`` unused."""
    return _masked(scores, step_mask)


def shape_normed(scores: Tensor, step_mask: Tensor, eta: float) -> Tensor:
    """PR-Normed: r_k / K (sum = mean score). The paper's baseline; ``eta`` unused."""
    n = step_mask.sum(dim=1, keepdim=True).clamp(min=1).to(scores.dtype)
    return _masked(scores / n, step_mask)


def shape_clip(scores: Tensor, step_mask: Tensor, eta: float) -> Tensor:
    """Clip: c_k = min(r_k - eta, 0), so every step reward is <= 0 and so is the sum."""
    return _masked(torch.clamp(scores - eta, max=0.0), step_mask)


def shape_delta(scores: Tensor, step_mask: Tensor, eta: float) -> Tensor:
    """Delta: r_k - r_{k+1} (k < K-1), r_{K-1} (k = K-1), 0 (k = K); sum telescopes to r_1
    (0 when K = 1). ``eta`` unused."""
    return _delta(scores, step_mask)


def shape_delta_keep(scores: Tensor, step_mask: Tensor, eta: float) -> Tensor:
    """Delta keeping the last step's score (not in the paper): r_k - r_{k+1} (k < K), r_K (k = K);
    the sum still telescopes to r_1. With the paper's Delta the return-to-go from step k is r_k
    for every step but the final one, whose is 0, so PPO pays "one more step before the answer"
    about alpha * r over "the answer now"; here the answer line's return-to-go is its own score
    r_K and that pull is only the difference of two scores. ``eta`` unused."""
    return _delta(scores, step_mask, keep_last=True)


def shape_clip_delta(scores: Tensor, step_mask: Tensor, eta: float) -> Tensor:
    """Clip-Delta: Delta applied to the clipped c_k; sum telescopes to c_1 <= 0 (K >= 2)."""
    return _delta(shape_clip(scores, step_mask, eta), step_mask)


def shape_min_form(scores: Tensor, step_mask: Tensor, eta: float) -> Tensor:
    """Min-form (PURE, Cheng et al. 2025, "Stop Summation: Min-Form Credit Assignment ..."):
    an answer's return is its weakest step. The minimum score sits on the first step attaining
    it; all other steps get 0. ``eta`` unused."""
    if scores.shape[1] == 0:
        return torch.zeros_like(scores)
    inf = torch.full((), float("inf"), dtype=scores.dtype, device=scores.device)
    filled = torch.where(step_mask, scores, inf)
    at = filled.argmin(dim=1, keepdim=True)  # (B, 1); argmin returns the first minimum
    one_hot = torch.zeros_like(step_mask).scatter(1, at, True) & step_mask
    return _masked(filled.gather(1, at).expand_as(scores), one_hot)


SHAPING_METHODS: dict[str, Callable[[Tensor, Tensor, float], Tensor]] = {
    "none": shape_none,
    "normed": shape_normed,
    "clip": shape_clip,
    "delta": shape_delta,
    "clip_delta": shape_clip_delta,
    "min_form": shape_min_form,
    "delta_keep": shape_delta_keep,
}


def _method(method: str) -> Callable[[Tensor, Tensor, float], Tensor]:
    if method not in SHAPING_METHODS:
        raise ValueError(f"unknown shaping method {method!r}; allowed: {list(SHAPING_METHODS)}")
    return SHAPING_METHODS[method]


def shape_step_rewards_batch(
    scores: Tensor, step_mask: Tensor, method: str, eta: float = 0.5
) -> Tensor:
    """Shape a batch of per-step PRM scores.

    scores: ``(B, S)`` float; step_mask: ``(B, S)`` bool, a contiguous prefix of valid steps per
    row. Returns ``(B, S)``: row b equals ``shape_step_rewards(scores[b, :n_b], method, eta)``
    on its first ``n_b = step_mask[b].sum()`` entries and 0 after. Vectorised over rows.
    """
    return _method(method)(scores, step_mask.bool(), eta)


@overload
def shape_step_rewards(scores: Tensor, method: str, eta: float = 0.5) -> Tensor: ...
@overload
def shape_step_rewards(scores: Sequence[float], method: str, eta: float = 0.5) -> list[float]: ...


def shape_step_rewards(
    scores: Sequence[float] | Tensor, method: str, eta: float = 0.5
) -> list[float] | Tensor:
    """Shape one answer's K per-step PRM scores into K per-step rewards.

    scores: python list of K floats or a 1-D tensor ``(K,)``; the result has the same kind
    (list in -> list of floats out, tensor in -> tensor of the same dtype/device out).
    method: one of ``SHAPING_METHODS``; eta: Clip threshold. Example (docs/method.md, "Per-step reward variants"), scores
    (0.7, 0.2, 0.4, 0.8), eta 0.5: clip -> (0, -0.3, -0.1, 0); delta -> (0.5, -0.2, 0.4, 0);
    clip_delta -> (0.3, -0.2, -0.1, 0).
    """
    fn = _method(method)
    if isinstance(scores, Tensor):
        if scores.dim() != 1:
            raise ValueError(f"scores must be 1-D, got shape {tuple(scores.shape)}")
        x = scores.unsqueeze(0)
        return fn(x, torch.ones_like(x, dtype=torch.bool), eta).squeeze(0)
    # float64 so list results match python arithmetic to the last few ulps.
    x = torch.tensor([list(scores)], dtype=torch.float64).reshape(1, -1)
    return fn(x, torch.ones_like(x, dtype=torch.bool), eta).squeeze(0).tolist()
