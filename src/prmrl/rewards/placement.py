"""Placement: per-answer and per-step rewards onto the response tokens they belong to.

Pure function on tensors (imports only torch); see docs/method.md, "Steps and placement".
"""

from __future__ import annotations

import torch
from torch import Tensor


def place_rewards(
    answer_rewards: Tensor,
    step_rewards: Tensor,
    step_end_index: Tensor,
    step_mask: Tensor,
    mask: Tensor,
) -> Tensor:
    """Spread per-answer and per-step rewards onto response tokens.

    answer_rewards: ``(B,)``, placed on each row's last real token (index ``mask.sum(1) - 1``);
    rows with no response tokens get nothing.
    step_rewards: ``(B, S)``; step_end_index: ``(B, S)`` long, token index of each step's last
    token; step_mask: ``(B, S)`` bool. Step rewards are ADDED at their index (two steps ending on
    one token accumulate). Masked steps contribute nothing whatever their index (-1, >= T, ...).
    A valid step whose index is not a real response token is dropped too, so the output stays 0
    on padding: callers must test their step/token alignment (docs/method.md, "Pitfalls").
    mask: ``(B, T)``. Returns a new ``(B, T)`` float tensor. Source: Gao et al. 2024
    (PRM reward on the last token of each step); trl PRM ``tokenize_row``.
    """
    tok = mask.bool()
    B, T = tok.shape
    dtype = torch.promote_types(answer_rewards.dtype, step_rewards.dtype)
    dtype = torch.promote_types(dtype, torch.float32)
    lengths = tok.sum(dim=1)  # (B,)

    idx = step_end_index.long()
    in_range = (idx >= 0) & (idx < lengths.unsqueeze(1))  # (B, S): lands on a real token
    keep = step_mask.bool() & in_range
    zero = torch.zeros((), dtype=dtype, device=tok.device)
    vals = torch.where(keep, step_rewards.to(dtype), zero)
    out = torch.zeros(B, T, dtype=dtype, device=tok.device)
    if T == 0:
        return out
    out = out.scatter_add(1, idx.clamp(0, T - 1), vals)

    last = (lengths - 1).clamp(min=0).unsqueeze(1)  # (B, 1)
    ans = torch.where(lengths > 0, answer_rewards.to(dtype), zero)
    return out.scatter_add(1, last, ans.unsqueeze(1))
