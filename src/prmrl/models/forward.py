"""Forward passes shared by SFT, PPO and reward models, correct under left padding."""

from __future__ import annotations

import torch


def position_ids_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """(B, L) positions counting real tokens only, so a left-padded row sees the same positions
    as the unpadded one (generation does the same; a plain forward would not)."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def token_logprobs(model, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                   n_response: int, temperature: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probs and entropies of the last ``n_response`` tokens of each row.

    input_ids, attention_mask: (B, L) with the response in the last n_response columns.
    Returns (B, n_response) log-probs of those tokens and (B, n_response) entropies.
    Only the response slice of the logits is materialised in float32.
    """
    out = model(input_ids=input_ids, attention_mask=attention_mask,
                position_ids=position_ids_from_mask(attention_mask),
                logits_to_keep=n_response + 1)
    logits = out.logits[:, :-1].float()                        # (B, n_response, V) predicts next
    if temperature != 1.0:
        logits = logits / temperature
    logp_all = torch.log_softmax(logits, dim=-1)
    targets = input_ids[:, -n_response:]
    logprobs = logp_all.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    with torch.no_grad():       # a diagnostic only: keep its (B, T, V) product out of autograd
        entropy = -(logp_all.exp() * logp_all).sum(-1)
    return logprobs, entropy


def token_scalars(model, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """(B, L) scalar head output at every position (critic values, reward logits)."""
    out = model(input_ids=input_ids, attention_mask=attention_mask,
                position_ids=position_ids_from_mask(attention_mask))
    return out.logits[..., 0].float()
