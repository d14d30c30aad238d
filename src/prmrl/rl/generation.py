"""Sampling responses with Hugging Face ``generate``: the one place prmrl produces text."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Generation:
    """A batch of B prompts with one response each, as tensors ready for scoring and PPO.

    prompt_ids, prompt_mask: (B, P) left-padded prompts.
    response_ids: (B, R) right-padded responses (EOS kept as the last real token when emitted).
    response_mask: (B, R) 1 on response tokens, including the EOS token.
    truncated: (B,) True when the response hit max_new_tokens without EOS.
    texts: B decoded responses (special tokens dropped).
    """

    prompt_ids: torch.Tensor
    prompt_mask: torch.Tensor
    response_ids: torch.Tensor
    response_mask: torch.Tensor
    truncated: torch.Tensor
    texts: list[str]

    @property
    def input_ids(self) -> torch.Tensor:      # (B, P + R)
        return torch.cat([self.prompt_ids, self.response_ids], dim=1)

    @property
    def attention_mask(self) -> torch.Tensor:  # (B, P + R)
        return torch.cat([self.prompt_mask, self.response_mask], dim=1)

    def response_lengths(self) -> list[int]:
        return self.response_mask.sum(1).tolist()


def encode_prompts(tokenizer, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    enc = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    return enc["input_ids"], enc["attention_mask"]


@torch.inference_mode()
def generate(model, tokenizer, prompts: list[str], *, max_new_tokens: int, temperature: float = 1.0,
             top_p: float = 1.0, greedy: bool = False, batch_size: int = 512,
             generator_seed: int | None = None) -> Generation:
    """One response per prompt (repeat prompts for several samples). Greedy ignores temperature."""
    if generator_seed is not None:
        torch.manual_seed(generator_seed)
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    parts = []
    for i in range(0, len(prompts), batch_size):
        p_ids, p_mask = encode_prompts(tokenizer, prompts[i: i + batch_size])
        out = model.generate(
            input_ids=p_ids, attention_mask=p_mask, max_new_tokens=max_new_tokens,
            do_sample=not greedy, temperature=None if greedy else temperature,
            top_p=None if greedy or top_p >= 1.0 else top_p, top_k=None,
            eos_token_id=eos, pad_token_id=pad, use_cache=True)
        parts.append((p_ids, p_mask, out[:, p_ids.shape[1]:]))
    P = max(p.shape[1] for p, _, _ in parts)
    R = max(r.shape[1] for _, _, r in parts)
    prompt_ids = torch.cat([_left_pad(p, P, pad) for p, _, _ in parts])
    prompt_mask = torch.cat([_left_pad(m, P, 0) for _, m, _ in parts])
    response_ids = torch.cat([_right_pad(r, R, pad) for _, _, r in parts])
    # Tokens after the first EOS are padding; the EOS itself is a response token.
    is_eos = response_ids == eos
    after_eos = (is_eos.cumsum(1) - is_eos.long()) > 0
    response_mask = (~after_eos).long()
    response_ids = response_ids.masked_fill(after_eos, pad)
    truncated = ~is_eos.any(1)
    texts = tokenizer.batch_decode(response_ids, skip_special_tokens=True)
    return Generation(prompt_ids, prompt_mask, response_ids, response_mask, truncated, texts)


def _left_pad(x: torch.Tensor, width: int, value: int) -> torch.Tensor:
    return torch.nn.functional.pad(x, (width - x.shape[1], 0), value=value)


def _right_pad(x: torch.Tensor, width: int, value: int) -> torch.Tensor:
    return torch.nn.functional.pad(x, (0, width - x.shape[1]), value=value)
