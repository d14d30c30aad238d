"""The rollout batch: everything one PPO iteration knows about its B responses."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class RolloutBatch:
    """B responses, fields grouped by meaning. T = response length, S = most steps in a row.

    Naming: ``*_scores`` are raw reward-model/grader outputs; ``*_rewards`` are after shaping
    and weighting; ``token_rewards`` also carries the KL penalty.
    """

    # -- text and tokens --
    input_ids: torch.Tensor           # (B, P + T) left-padded prompt, right-padded response
    attention_mask: torch.Tensor      # (B, P + T)
    response_mask: torch.Tensor       # (B, T) 1 on response tokens (EOS included)
    truncated: torch.Tensor           # (B,) bool: hit max_new_tokens without EOS
    questions: list[str]              # B
    golds: list[str]                  # B
    texts: list[str]                  # B decoded responses
    step_texts: list[list[str]]       # B lists of step texts
    # -- steps --
    step_end_index: torch.Tensor      # (B, S) long: response-token index of each step's last token
    step_mask: torch.Tensor           # (B, S) bool
    step_scored: torch.Tensor | None = None    # (B, S) bool: steps the PRM scored (a prefix)
    # -- policy quantities at rollout time --
    old_logprobs: torch.Tensor | None = None   # (B, T)
    ref_logprobs: torch.Tensor | None = None   # (B, T)
    old_values: torch.Tensor | None = None     # (B, T)
    # -- raw scores --
    success_scores: torch.Tensor | None = None  # (B,) float, NaN where ungradable
    orm_scores: torch.Tensor | None = None      # (B,) in [0, 1], NaN where unscorable
    prm_scores: torch.Tensor | None = None      # (B, S) in [0, 1], NaN where unscorable
    # -- shaped rewards --
    answer_rewards: torch.Tensor | None = None  # (B,)
    step_rewards: torch.Tensor | None = None    # (B, S)
    kl: torch.Tensor | None = None              # (B, T) per-token KL estimate
    token_rewards: torch.Tensor | None = None   # (B, T) what GAE sees
    # -- advantages --
    advantages: torch.Tensor | None = None      # (B, T)
    returns: torch.Tensor | None = None         # (B, T)
    extra: dict = field(default_factory=dict)

    @property
    def n_response(self) -> int:
        return self.response_mask.shape[1]

    def __len__(self) -> int:
        return self.input_ids.shape[0]

    def rows(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
        """Rows ``idx`` as (input_ids, attention_mask, T): the columns that are padding in every
        one of them cut off (left of the prompts, right of the responses), so a forward pass
        computes no more than the longest row needs. The response is the last T columns."""
        am = self.attention_mask[idx]
        T = int(self.response_mask[idx].sum(1).max().clamp(min=1))
        cut = self.n_response - T
        prompt_width = am.shape[1] - self.n_response
        first = int(am[:, :prompt_width].any(0).long().argmax()) if prompt_width else 0
        end = am.shape[1] - cut
        return self.input_ids[idx, first:end], am[:, first:end], T

    def minibatch(self, idx: torch.Tensor) -> dict[str, torch.Tensor]:
        """The tensors PPO's update needs, for rows ``idx``, trimmed to the longest response."""
        ids, am, T = self.rows(idx)
        return {
            "input_ids": ids, "attention_mask": am,
            "response_mask": self.response_mask[idx, :T],
            "old_logprobs": self.old_logprobs[idx, :T], "ref_logprobs": self.ref_logprobs[idx, :T],
            "advantages": self.advantages[idx, :T],
            # a critic-free estimator has no values and no returns
            **({"old_values": self.old_values[idx, :T], "returns": self.returns[idx, :T]}
               if self.returns is not None else {}),
        }

    def chunks(self, size: int, n: int = 1) -> list[torch.Tensor]:
        """Row indices in chunks of ``size``, rows of similar length together (for inference
        passes, where the grouping changes nothing but the padding computed). With ``n`` > 1
        (and ``size`` a multiple of it) chunks of whole groups, rows ``g*n .. g*n+n-1`` (a
        prompt's answers, as generated): a chunk's prompts are then computed once each
        (``share_prompts``)."""
        rows = torch.arange(len(self), device=self.response_mask.device)
        order = by_length(rows, self.response_mask.sum(1), n if size % n == 0 else 1)
        return [order[i:i + size] for i in range(0, len(order), size)]


def shuffled_rows(n_rows: int, n: int = 1) -> torch.Tensor:
    """A random order of ``n_rows`` rows (the global RNG): one by one (``n`` = 1), or in whole
    groups of ``n`` consecutive rows (a prompt's answers), each group's rows kept in order.

    Example: n_rows 6, n 2, groups drawn as [2, 0, 1] -> [4, 5, 0, 1, 2, 3]."""
    if n <= 1 or n_rows % n:
        return torch.randperm(n_rows)
    groups = torch.randperm(n_rows // n)
    return (groups[:, None] * n + torch.arange(n)).flatten()


def by_length(rows: torch.Tensor, lengths: torch.Tensor, n: int = 1) -> torch.Tensor:
    """``rows`` reordered by ``lengths`` (one per row, stable), so that consecutive micro-batches
    hold similar lengths; with ``n`` > 1 whole groups of ``n`` consecutive rows move together,
    ordered by their longest row.

    Example: rows [7, 8, 9, 6], lengths [5, 1, 2, 2], n 2 -> groups (7, 8) longest 5 and (9, 6)
    longest 2 -> [9, 6, 7, 8]."""
    if n <= 1 or len(rows) % n:
        return rows[torch.argsort(lengths, stable=True)]
    order = torch.argsort(lengths.view(-1, n).max(1).values, stable=True)
    return rows.view(-1, n)[order.to(rows.device)].flatten()
