"""Critic-free advantage estimators with dense (per-step) rewards, and loss aggregation.

Pure functions on tensors (imports only torch); docs/method.md, "Critic-free estimators".
Conventions as in ``prmrl.rl.core``: response tensors ``(B, T)``, right-padded; ``mask`` true on
real response tokens; outputs 0 on padding. ``group`` ``(B,)`` long: the prompt each response
answers (a prompt's samples share a group id).

An answer i has an outcome reward ``R_i`` (success + ORM, on its last token) and per-step rewards
``s_ik`` (a PRM's, already shaped by Clip / Delta / ...), placed on each step's last token as
``step_tokens`` ``(B, T)``. The estimator decides the baseline, the credit rule how the step
rewards reach the tokens before them:

    estimator    baseline of answer i's return                    (with R alone: the textbook one)
    grpo         (G - mean_group G_0) / std_group G_0             GRPO (Shao et al. 2024)
    rloo         G - mean of the other answers' G_0 in the group  RLOO (Ahmadian et al. 2024)
    reinforce_pp G - mean_group G_0, then whitened over the batch REINFORCE++-baseline (Hu 2025)

    credit rule          token t's return G_t
    return_to_go         R_i + sum of the step rewards of the steps ending at or after t
    min_form             R_i + min of those step rewards (PURE, Cheng et al. 2025; 0 after the last)
    process_supervision  DeepSeekMath 4.1.3: the outcome normalised over the group on its own,
                         every step reward of the group normalised together, and A_t = the
                         normalised outcome + the sum of the normalised step rewards at or after t

``G_0`` is the return at the first token (the whole answer's). A per-token KL penalty in the
reward (``kl_tokens``, already multiplied by beta) is summed forward like a step reward.
"""

from __future__ import annotations

import torch
from torch import Tensor

EPS = 1e-6


def _zero_pad(x: Tensor, mask: Tensor) -> Tensor:
    return torch.where(mask.bool(), x, torch.zeros((), dtype=x.dtype, device=x.device))


# ---- group statistics -------------------------------------------------------------------------

def group_mean_std(x: Tensor, group: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Per-row mean, std (unbiased, as GRPO implementations use; 0 for a group of one) and size
    of the group each row belongs to. x, group: ``(B,)``. Returns three ``(B,)`` tensors."""
    g = torch.unique(group, return_inverse=True)[1]
    n_groups = int(g.max()) + 1 if len(g) else 0
    x = x.to(torch.float64 if x.dtype == torch.float64 else torch.float32)
    count = torch.zeros(n_groups, dtype=x.dtype, device=x.device).index_add_(0, g, torch.ones_like(x))
    total = torch.zeros(n_groups, dtype=x.dtype, device=x.device).index_add_(0, g, x)
    mean = total / count
    sq = torch.zeros(n_groups, dtype=x.dtype, device=x.device).index_add_(0, g, (x - mean[g]) ** 2)
    var = torch.where(count > 1, sq / (count - 1).clamp(min=1), torch.zeros_like(sq))
    return mean[g], var.sqrt()[g], count[g]


def group_token_scale(dev: Tensor, dev0: Tensor, mask: Tensor, group: Tensor) -> Tensor:
    """GRPO's group std, for returns that vary along an answer. ``dev`` ``(B, T)``: each token's
    return minus its group's baseline; ``dev0`` ``(B,)``: the same for the whole answer (used for
    an empty answer). Each answer's mean squared deviation over its tokens, summed over the group
    and divided by (group size - 1), square-rooted; 0 for a group of one. With returns constant
    along each answer (the outcome alone) this is exactly the unbiased std of the answers'
    returns, textbook GRPO. With dense step rewards the std of the whole-answer returns alone
    can be 0 while the token returns differ (Clip-Delta: every first step above the threshold),
    and dividing by it would blow those differences up by 1/eps (measured: actor gradient norms
    of 10^4); this scale is 0 only when every deviation is."""
    m = mask.to(dev.dtype)
    n_tok = m.sum(1)
    sq = torch.where(n_tok > 0, (dev ** 2 * m).sum(1) / n_tok.clamp(min=1), dev0.to(dev.dtype) ** 2)
    mean_sq, _, count = group_mean_std(sq, group)         # per row: its group's mean and size
    return torch.where(count > 1, mean_sq * count / (count - 1).clamp(min=1), torch.zeros_like(sq)).sqrt()


def leave_one_out_mean(x: Tensor, group: Tensor) -> Tensor:
    """For each row, the mean of the OTHER rows of its group (0 for a group of one)."""
    mean, _, count = group_mean_std(x, group)
    others = count - 1
    return torch.where(others > 0, (mean * count - x) / others.clamp(min=1), torch.zeros_like(mean))


# ---- per-token returns by credit rule ------------------------------------------------------------

def reverse_cumsum(x: Tensor, mask: Tensor) -> Tensor:
    """sum_{t' >= t} x_t' over real tokens; 0 on padding. x, mask: ``(B, T)``."""
    x = _zero_pad(x, mask)
    return _zero_pad(x.flip(1).cumsum(1).flip(1), mask)


def reverse_cummin(step_tokens: Tensor, is_step_end: Tensor, mask: Tensor) -> Tensor:
    """min over the step ends at or after t of the step reward there; 0 where no step ends at or
    after t (the tail after the last step). ``is_step_end`` ``(B, T)`` bool."""
    inf = torch.full((), float("inf"), dtype=step_tokens.dtype, device=step_tokens.device)
    vals = torch.where(is_step_end.bool() & mask.bool(), step_tokens, inf)
    mins = vals.flip(1).cummin(1).values.flip(1)
    return _zero_pad(torch.where(torch.isinf(mins), torch.zeros_like(mins), mins), mask)


def token_returns(outcome: Tensor, step_tokens: Tensor, is_step_end: Tensor, mask: Tensor,
                  credit: str, kl_tokens: Tensor | None = None) -> Tensor:
    """G_t ``(B, T)`` for ``return_to_go`` or ``min_form``: the outcome ``(B,)`` counts at every
    token (it is the answer's last reward), the step rewards by the rule, a KL penalty summed
    forward."""
    if credit == "return_to_go":
        steps = reverse_cumsum(step_tokens, mask)
    elif credit == "min_form":
        steps = reverse_cummin(step_tokens, is_step_end, mask)
    else:
        raise ValueError(f"token_returns: credit {credit!r} has no plain return; allowed: return_to_go, min_form")
    g = outcome.unsqueeze(1) + steps
    if kl_tokens is not None:
        g = g + reverse_cumsum(kl_tokens, mask)
    return _zero_pad(g, mask)


# ---- estimators -------------------------------------------------------------------------------

def _baselined(returns: Tensor, mask: Tensor, group: Tensor, estimator: str, scale: bool) -> Tensor:
    g0 = returns[:, 0]                        # the whole answer's return (0 for an empty answer)
    if estimator == "grpo":
        mean, _, _ = group_mean_std(g0, group)
        adv = _zero_pad(returns - mean.unsqueeze(1).to(returns.dtype), mask)
        if scale:
            adv = adv / (group_token_scale(adv, g0 - mean, mask, group).unsqueeze(1) + EPS)
        return _zero_pad(adv, mask)
    if estimator == "rloo":
        return _zero_pad(returns - leave_one_out_mean(g0, group).unsqueeze(1).to(returns.dtype), mask)
    if estimator == "reinforce_pp":
        mean, _, _ = group_mean_std(g0, group)
        adv = _zero_pad(returns - mean.unsqueeze(1).to(returns.dtype), mask)
        m = mask.bool()
        mu = adv[m].mean() if m.any() else adv.new_zeros(())
        sd = adv[m].std(unbiased=False) if m.sum() > 1 else adv.new_ones(())
        return _zero_pad((adv - mu) / (sd + EPS), mask)
    raise ValueError(f"unknown estimator {estimator!r}; allowed: {sorted(ESTIMATORS)}")


def process_supervision(outcome: Tensor, step_tokens: Tensor, is_step_end: Tensor, mask: Tensor,
                        group: Tensor, kl_tokens: Tensor | None = None) -> Tensor:
    """DeepSeekMath's process supervision (Shao et al. 2024, section 4.1.3). The outcome rewards
    of a group are normalised on their own (mean/std over the group), all step rewards of a
    group's answers together; token t's advantage is the normalised outcome plus the sum of the
    normalised step rewards of the steps ending at or after t (plus the forward-summed KL)."""
    ends = is_step_end.bool() & mask.bool()
    mean_o, std_o, _ = group_mean_std(outcome, group)
    adv_o = (outcome - mean_o) / (std_o + EPS)
    # every step reward of the group, pooled: per-row sums scattered into groups
    gi = torch.unique(group, return_inverse=True)[1]
    n = int(gi.max()) + 1 if len(gi) else 0
    s = torch.where(ends, step_tokens, torch.zeros_like(step_tokens)).float()
    cnt = torch.zeros(n, device=s.device).index_add_(0, gi, ends.sum(1).float())
    tot = torch.zeros(n, device=s.device).index_add_(0, gi, s.sum(1))
    mean_s = (tot / cnt.clamp(min=1))[gi]                                          # (B,)
    sq = torch.where(ends, (s - mean_s.unsqueeze(1)) ** 2, torch.zeros_like(s)).sum(1)
    var = torch.zeros(n, device=s.device).index_add_(0, gi, sq) / (cnt - 1).clamp(min=1)
    std_s = torch.where(cnt > 1, var, torch.zeros_like(var)).sqrt()[gi]
    norm = torch.where(ends, (s - mean_s.unsqueeze(1)) / (std_s.unsqueeze(1) + EPS), torch.zeros_like(s))
    adv = adv_o.unsqueeze(1).to(norm.dtype) + reverse_cumsum(norm, mask)
    if kl_tokens is not None:
        adv = adv + reverse_cumsum(kl_tokens.to(adv.dtype), mask)
    return _zero_pad(adv, mask)


def critic_free_advantages(outcome: Tensor, step_tokens: Tensor, is_step_end: Tensor, mask: Tensor,
                           group: Tensor, *, estimator: str, credit: str = "return_to_go",
                           kl_tokens: Tensor | None = None, scale: bool = True) -> Tensor:
    """Advantages ``(B, T)`` of a critic-free estimator with dense step rewards.

    outcome ``(B,)``: the answer-level reward (success + ORM); step_tokens ``(B, T)``: each step's
    (shaped, weighted) reward on its last token, 0 elsewhere; is_step_end ``(B, T)`` bool; mask
    ``(B, T)``; group ``(B,)``; kl_tokens ``(B, T)`` or None: ``-beta * KL`` per token when the
    KL is a reward. ``scale``: GRPO divides by the group std (False: Dr. GRPO)."""
    if estimator not in ESTIMATORS:
        raise ValueError(f"unknown estimator {estimator!r}; allowed: {sorted(ESTIMATORS)}")
    if credit == "process_supervision":
        return process_supervision(outcome, step_tokens, is_step_end, mask, group, kl_tokens)
    if credit not in CREDIT_RULES:
        raise ValueError(f"unknown credit rule {credit!r}; allowed: {list(CREDIT_RULES)}")
    returns = token_returns(outcome, step_tokens, is_step_end, mask, credit, kl_tokens)
    return _baselined(returns, mask, group, estimator, scale)


ESTIMATORS = ("grpo", "rloo", "reinforce_pp")
"""critic-free estimators (``ppo.advantage``; "gae" is PPO with a critic)"""
CREDIT_RULES = ("return_to_go", "process_supervision", "min_form")
"""how dense step rewards reach the tokens before them (``ppo.credit``)"""


# ---- loss aggregation ------------------------------------------------------------------------------

def aggregate(per_token: Tensor, mask: Tensor, mode: str, *, n_tokens: float, n_seqs: float,
              max_len: int) -> Tensor:
    """Reduce a ``(B, T)`` per-token loss to a scalar whose gradients add up across processes
    and minibatches: each mode divides by a normaliser of the WHOLE batch (``n_tokens`` real
    tokens, ``n_seqs`` answers, all processes together), so the sum of the pieces' losses is
    the whole batch's loss however it is split.

        token_mean             sum over tokens / n_tokens            (PPO, DAPO)
        seq_mean_token_sum     sum over tokens / n_seqs              (per-answer sums, averaged)
        seq_mean_token_mean    sum over answers of (mean over its tokens) / n_seqs    (GRPO paper)
        constant               sum over tokens / (n_seqs * max_len)   (Dr. GRPO)
    """
    x = _zero_pad(per_token, mask)
    if mode == "token_mean":
        return x.sum() / max(n_tokens, 1.0)
    if mode == "seq_mean_token_sum":
        return x.sum() / max(n_seqs, 1.0)
    if mode == "seq_mean_token_mean":
        per_seq = x.sum(1) / mask.bool().sum(1).clamp(min=1).to(x.dtype)
        return per_seq.sum() / max(n_seqs, 1.0)
    if mode == "constant":
        return x.sum() / max(n_seqs * max_len, 1.0)
    raise ValueError(f"unknown loss aggregation {mode!r}; allowed: {list(AGGREGATIONS)}")


AGGREGATIONS = ("token_mean", "seq_mean_token_sum", "seq_mean_token_mean", "constant")
"""loss aggregation modes (``ppo.loss_agg``)"""


def kl_k3(logprobs: Tensor, ref_logprobs: Tensor) -> Tensor:
    """GRPO's KL loss term per token: exp(ref - logp) - (ref - logp) - 1 (>= 0, unbiased for
    KL(pi || pi_ref) under samples of pi), with gradient through ``logprobs``."""
    d = ref_logprobs - logprobs
    return torch.exp(d) - d - 1
