"""Forward passes shared by SFT, PPO and reward models, correct under left padding."""

from __future__ import annotations

import inspect

import torch

from prmrl.rl.core import entropy_from_logits, logprobs_from_logits


def position_ids_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """(B, L) positions counting real tokens only, so a left-padded row sees the same positions
    as the unpadded one (generation does the same; a plain forward would not)."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def token_logprobs(model, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                   n_response: int, temperature: float = 1.0,
                   entropy: bool = True, share_prompts: bool = False
                   ) -> tuple[torch.Tensor, torch.Tensor | None]:
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
    ``share_prompts``: rows with the same prompt (a group's answers) compute it once
    (:func:`response_logits`).
    """
    logits = response_logits(model, input_ids, attention_mask, n_response, share_prompts)
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


def response_scalars(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, n_response: int,
                     share_prompts: bool = False) -> torch.Tensor:
    """(B, n_response) float32 scalar head output (a critic's values) at the positions whose
    logits predict the last ``n_response`` tokens: the state each response token was sampled in.
    ``share_prompts`` as in :func:`response_logits` (each distinct prompt run once)."""
    P = input_ids.shape[1] - n_response
    shared = _shared_prompts(model, input_ids, attention_mask, P, n_response, share_prompts)
    if shared is not None:
        return _shared_prompt_pass(model, input_ids, attention_mask, P, *shared)[..., 0].float()
    return token_scalars(model, input_ids, attention_mask)[:, P - 1: -1]


def response_logits(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, n_response: int,
                    share_prompts: bool = False) -> torch.Tensor:
    """(B, n_response, V) logits predicting each of the last ``n_response`` tokens of each row.

    With ``share_prompts``, when at most half as many distinct prompts (the columns before the
    response) as rows: each distinct prompt is run once (its KV cache then indexed out to its
    rows) and the responses run on top of it, as generation does; the same logits up to float
    rounding, and gradients flow into the shared prompt pass. RL batches hold ``n`` answers
    per prompt, so a micro-batch of whole groups runs each prompt once instead of ``n`` times
    (embedded task, forward + backward of 256 answers in micro-batches of 16: 1.54 -> 1.35 s,
    median of 6). Not with gradient checkpointing (transformers then
    turns the cache off)."""
    P = input_ids.shape[1] - n_response
    shared = _shared_prompts(model, input_ids, attention_mask, P, n_response, share_prompts)
    if shared is not None:
        return _shared_prompt_pass(model, input_ids, attention_mask, P, *shared, logits_to_keep=1)
    out = model(input_ids=input_ids, attention_mask=attention_mask,
                position_ids=position_ids_from_mask(attention_mask), logits_to_keep=n_response + 1)
    return out.logits[:, :-1]


def cache_kwarg(model) -> str:
    """The name ``model.forward`` takes its KV cache by: transformers 5 names it ``cache``
    (``past_key_values`` is deprecated there)."""
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def _shared_prompts(model, input_ids, attention_mask, P: int, n_response: int, share: bool):
    """(distinct prompts with their masks, row -> prompt index) when sharing pays (at most half
    as many distinct prompts as rows), else None."""
    if not (share and P > 0 and n_response > 0 and not _checkpointing(model)):
        return None
    prompts = torch.cat([input_ids[:, :P], attention_mask[:, :P].to(input_ids.dtype)], dim=1)
    uniq, inv = torch.unique(prompts, dim=0, return_inverse=True)
    return (uniq, inv) if 2 * len(uniq) <= len(input_ids) else None


def _shared_prompt_pass(model, input_ids, attention_mask, P: int, uniq: torch.Tensor,
                        inv: torch.Tensor, **head_kwargs) -> torch.Tensor:
    """The model's head output (logits, or a critic's scalars) at the last prompt position and
    the response positions but the last: the distinct prompts once, their KV cache indexed out
    to the rows, the responses on top. ``logits_to_keep=1`` for a causal LM's prompt pass (a
    token classifier computes every position and takes no such argument)."""
    from transformers import DynamicCache

    cache_kw = cache_kwarg(model)
    ids_u, mask_u = uniq[:, :P], uniq[:, P:].to(attention_mask.dtype)
    cache = DynamicCache()
    first = model(input_ids=ids_u, attention_mask=mask_u, position_ids=position_ids_from_mask(mask_u),
                  use_cache=True, **head_kwargs, **{cache_kw: cache}).logits[:, -1:]  # (U, 1, ...)
    cache.batch_select_indices(inv)                                                  # (B, ...)
    out = model(input_ids=input_ids[:, P:], attention_mask=attention_mask,
                position_ids=position_ids_from_mask(attention_mask)[:, P:], use_cache=True,
                **{cache_kw: cache})
    return torch.cat([first[inv], out.logits[:, :-1]], dim=1)


def _checkpointing(model) -> bool:
    flag = getattr(model, "is_activation_checkpointing", None)   # transformers 5's name
    return bool(getattr(model, "is_gradient_checkpointing", False) if flag is None else flag)
