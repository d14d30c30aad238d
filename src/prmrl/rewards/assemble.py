"""From raw scores to the (B, T) token rewards PPO sees. Pure functions on tensors
(docs/method.md, "Token-level rewards").

    per answer (B,):  success_weight * success + orm_alpha * orm       -> last response token
    per step  (B, S): prm_alpha * shape(prm scores)                    -> each step's last token
    per token (B, T): the two placed, minus kl_beta * KL(pi || pi_ref)

A score that could not be computed is NaN here, and the caller counts every one (the trainer
logs ``unscorable/*``): an ungradable answer gets ``unscorable_reward``; an answer the ORM could
not score gets no ORM term; a step the PRM could not score gets no step reward.
"""

from __future__ import annotations

import torch
from torch import Tensor

from prmrl.rewards.placement import place_rewards
from prmrl.rewards.shaping import shape_step_rewards_batch


def answer_rewards(success: Tensor, orm: Tensor | None, *, success_weight: float,
                   orm_alpha: float, unscorable_reward: float) -> Tensor:
    """success: (B,) in {0, 1} or NaN; orm: (B,) in [0, 1] or NaN, or None. Returns (B,)."""
    fill = torch.full_like(success, unscorable_reward)
    out = success_weight * torch.where(torch.isnan(success), fill, success)
    if orm is not None:
        out = out + orm_alpha * torch.nan_to_num(orm, nan=0.0)
    return out


def step_rewards(prm: Tensor, step_mask: Tensor, *, method: str, eta: float,
                 alpha: float) -> tuple[Tensor, Tensor]:
    """prm: (B, S) step scores, NaN where unscorable (only ever a suffix: steps past the PRM's
    context). Returns (B, S) shaped and weighted rewards and the (B, S) mask of scored steps.

    Shaping sees the scored steps only, as if the answer ended there: Delta and Clip-Delta drop
    the last *scored* step's score, Normed divides by the scored count, and the unscored tail
    earns nothing (under Clip, nothing is also no penalty). Keep ``max_new_tokens`` within the
    PRM's context so that no step goes unscored; the trainer counts those that do."""
    scored = step_mask.bool() & ~torch.isnan(prm)
    shaped = shape_step_rewards_batch(torch.nan_to_num(prm, nan=0.0), scored, method, eta)
    return alpha * shaped, scored


def token_rewards(answer: Tensor, steps: Tensor, step_end_index: Tensor, step_mask: Tensor,
                  kl: Tensor, response_mask: Tensor, *, kl_beta: float) -> Tensor:
    """(B, T): placed answer and step rewards minus the KL penalty (0 on padding)."""
    placed = place_rewards(answer, steps, step_end_index, step_mask, response_mask)
    return placed - kl_beta * torch.where(response_mask.bool(), kl, torch.zeros_like(kl))
