"""Forward passes shared by SFT, PPO and reward models, correct under left padding."""

from __future__ import annotations

import torch

from prmrl.rl.core import entropy_from_logits, logprobs_from_logits


def position_ids_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """(B, L) positions counting real tokens only, so a left-padded row sees the same positions
    as the unpadded one (generation does the same; a plain forward would not)."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def token_logprobs(model, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                   n_response: int, temperature: float = 1.0,
                   entropy: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Log-probs and entropies of the last ``n_response`` tokens of each row.

    input_ids, attention_mask: (B, L) with the response in the last n_response columns.
    Returns (B, n_response) float32 log-probs of those tokens under
    ``softmax(logits / temperature)`` (differentiable) and (B, n_response) float32 entropies
    (never part of the graph), or None for them with ``entropy=False``.

    Memory: only the response slice of the logits is computed (``logits_to_keep``). The log-probs
    are a selective log-softmax (``core.logprobs_from_logits``): autograd keeps the model's own
    logits and a (B, n_response) logsumexp, never a float32 (B, n_response, V) log-softmax or a
    float32 copy of half-precision logits; the temperature and the float32 upcast are applied
    chunk by chunk. The entropy is a separate no-grad pass over the detached logits, also chunked.
    """
    out = model(input_ids=input_ids, attention_mask=attention_mask,
                position_ids=position_ids_from_mask(attention_mask),
                logits_to_keep=n_response + 1)
    logits = out.logits[:, :-1]                                # (B, n_response, V) predicts next
    del out
    targets = input_ids[:, input_ids.shape[1] - n_response:]   # (not -0: for n_response == 0)
    logprobs = logprobs_from_logits(logits, targets, temperature).float()
    ent = None
    if entropy:
        with torch.no_grad():   # a diagnostic only: keep it out of autograd
            ent = entropy_from_logits(logits.detach(), temperature).float()
    return logprobs, ent


def token_scalars(model, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """(B, L) scalar head output at every position (critic values, reward logits)."""
    out = model(input_ids=input_ids, attention_mask=attention_mask,
                position_ids=position_ids_from_mask(attention_mask))
    return out.logits[..., 0].float()
