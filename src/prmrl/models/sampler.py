"""Sampling responses: the one place prmrl produces text (RL rollouts, evaluation, labelling)."""

from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass
from typing import Callable, Sequence

import torch


@dataclass
class Generation:
    """A batch of B prompts with one response each, as tensors ready for scoring and PPO.

    prompt_ids, prompt_mask: (B, P) left-padded prompts.
    response_ids: (B, R) right-padded responses (EOS kept as the last real token when emitted).
    response_mask: (B, R) 1 on response tokens, including the EOS token.
    truncated: (B,) True when the response hit max_new_tokens without EOS.
    texts: B decoded responses (special tokens dropped).
    logprobs: (B, R) float32 log-prob of each response token under the sampling distribution
    before top-p (softmax(logits / temperature)), 0 on padding: what PPO's ratio needs; None
    unless asked for.
    """

    prompt_ids: torch.Tensor
    prompt_mask: torch.Tensor
    response_ids: torch.Tensor
    response_mask: torch.Tensor
    truncated: torch.Tensor
    texts: list[str]
    logprobs: torch.Tensor | None

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
             top_p: float = 1.0, greedy: bool = False, n: int = 1, batch_size: int = 512,
             generator_seed: int | None = None, logprobs: bool = False) -> Generation:
    """``n`` responses per prompt, prompt-major (prompt i's are rows ``i*n .. i*n+n-1``).
    Greedy ignores temperature. ``generator_seed`` None draws from torch's global generator
    (seeded by the run), so a run is reproducible either way."""
    ids, lengths, truncated, token_logprobs = sample_tokens(
        model, tokenizer, prompts, n=n, budgets=max_new_tokens, temperature=temperature,
        top_p=top_p, greedy=greedy, batch_size=batch_size, seed=generator_seed, logprobs=logprobs)
    prompt_ids, prompt_mask = encode_prompts(tokenizer, prompts)
    prompt_ids = prompt_ids.repeat_interleave(n, 0)
    prompt_mask = prompt_mask.repeat_interleave(n, 0)
    # The EOS, when emitted, is the last response token; the rest of the row is padding.
    response_mask = (torch.arange(ids.shape[1])[None, :] < lengths[:, None]).long()
    texts = tokenizer.batch_decode(ids, skip_special_tokens=True)
    return Generation(prompt_ids, prompt_mask, ids, response_mask,
                      torch.tensor(truncated, dtype=torch.bool), texts, token_logprobs)


@torch.inference_mode()
def sample_tokens(model, tokenizer, prompts: Sequence[str], *, n: int = 1, budgets: int | Sequence[int],
                  temperature: float = 1.0, top_p: float = 1.0, greedy: bool = False,
                  batch_size: int = 512, seed: int | None = 0,
                  progress: Callable[[int], None] | None = None, logprobs: bool = False
                  ) -> tuple[torch.Tensor, torch.Tensor, list[bool], torch.Tensor | None]:
    """``n`` continuations of each prompt, at most ``budgets[i]`` new tokens each, prompt-major.

    Returns ``(B*n, R)`` token ids, right-padded with the pad id, EOS kept where it was emitted;
    ``(B*n,)`` lengths (tokens written, EOS included); and whether each row hit its budget
    without EOS; and, with ``logprobs``, ``(B*n, R)`` log-probs of the written tokens under
    softmax(logits / temperature) (temperature 1 for greedy), 0 after a row's end (else None).
    Sampling is softmax(logits / temperature), then nucleus (top-p) filtering, as ``model.generate`` does; only a stop token (:func:`stop_token_ids`) or the budget stops a
    row. Cheaper than ``model.generate`` for short answers, which is what RL and labelling sample:

    - a prompt is encoded once and its KV cache repeated for its ``n`` samples (one prefill);
    - rows that stopped are dropped from the batch (when a quarter of it has), instead of
      decoding padding until the longest row ends;
    - tokens go straight into one preallocated tensor: no per-token Python work.
    """
    from prmrl.models.forward import cache_kwarg, position_ids_from_mask

    cache_kw = cache_kwarg(model)
    total = len(prompts)
    budget = [budgets] * total if isinstance(budgets, int) else list(budgets)
    if len(budget) != total:
        raise ValueError(f"{len(budget)} budgets for {total} prompts")
    device = next(model.parameters()).device
    stop = stop_token_ids(tokenizer, model)
    pad = tokenizer.pad_token_id
    stop_set = torch.tensor(stop)
    gen = None if seed is None else torch.Generator(device=device).manual_seed(seed)
    width = max([0, *budget])
    out_ids = torch.full((total * n, width), pad, dtype=torch.long)
    out_logprobs = torch.zeros((total * n, width), dtype=torch.float32) if logprobs else None
    lengths = torch.zeros(total * n, dtype=torch.long)       # tokens written, EOS included
    # Longest prompts first: a batch holds similar lengths (little padding, similar budgets).
    order = sorted(range(total), key=lambda i: -len(prompts[i]))
    per_batch = max(1, batch_size // n)
    with _decode_attention(model, device):
        for c in range(0, total, per_batch):
            idx = order[c:c + per_batch]
            enc = tokenizer([prompts[i] for i in idx], return_tensors="pt", padding=True,
                            add_special_tokens=False)
            mask = enc["attention_mask"].to(device)                                    # (B, P)
            # Filled in place by every forward below, with room for the longest answer at once.
            cache = growing_cache(mask.shape[1] + max(budget[i] for i in idx))
            out = model(input_ids=enc["input_ids"].to(device), attention_mask=mask,
                        position_ids=position_ids_from_mask(mask), use_cache=True, logits_to_keep=1,
                        **{cache_kw: cache})
            cache.batch_repeat_interleave(n)
            logits = out.logits[:, -1].float().repeat_interleave(n, 0)                 # (b, V)
            mask = mask.repeat_interleave(n, 0)                                        # (b, P)
            pos = mask.sum(1) - 1                                                      # (b,) last position
            rows = torch.tensor([i * n + j for i in idx for j in range(n)])            # (b,) global rows
            left = torch.tensor([budget[i] for i in idx for _ in range(n)])            # (b,) tokens allowed
            alive = left > 0
            step = 0
            while alive.any():
                nxt = _next_tokens(logits, greedy, temperature, top_p, gen)            # (b,)
                nxt_host = nxt.cpu()                     # one device-to-host copy per step
                live = alive.nonzero().squeeze(1)
                out_ids[rows[live], step] = nxt_host[live]
                if out_logprobs is not None:             # (and one more for PPO's log-probs)
                    logp = torch.log_softmax(logits if greedy else logits / temperature, -1)
                    out_logprobs[rows[live], step] = logp.gather(1, nxt.unsqueeze(1)).squeeze(1).cpu()[live]
                lengths[rows[live]] = step + 1
                left -= 1
                stopped = alive & (torch.isin(nxt_host, stop_set) | (left <= 0))
                alive &= ~stopped
                if progress is not None and stopped.any():
                    progress(int(stopped.sum()))
                if not alive.any():
                    break
                step += 1
                if (~alive).sum() * 4 >= len(alive):   # compact: drop rows that stopped
                    keep = alive.nonzero().squeeze(1)
                    cache.batch_select_indices(keep.to(device))
                    rows, left, alive, nxt = rows[keep], left[keep], alive[keep], nxt[keep]
                    mask, pos = mask[keep], pos[keep]
                mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
                pos = pos + 1
                out = model(input_ids=nxt.to(device).unsqueeze(1), attention_mask=mask,
                            position_ids=pos.unsqueeze(1), use_cache=True, **{cache_kw: cache})
                logits = out.logits[:, -1].float()
    used = int(lengths.max()) if len(lengths) else 0
    # A row ended by a stop token has it as its last written token (true even when pad is one).
    last = out_ids[torch.arange(len(lengths)), (lengths - 1).clamp(min=0)] if width else lengths
    truncated = (lengths == 0) | ~torch.isin(last, stop_set)
    keep = max(used, 1)
    return (out_ids[:, :keep], lengths, truncated.tolist(),
            None if out_logprobs is None else out_logprobs[:, :keep])


@contextlib.contextmanager
def _decode_attention(model, device):
    """On CPU, sample with transformers' eager attention instead of SDPA: for one query token
    against the KV cache (a strided view of the growing buffers) SDPA's CPU flash kernel took
    ~2-3 ms a call at 256 rows x 100 positions where eager's matmul-softmax-matmul takes
    ~1.6-2.2 (measured on the embedded policy: sampling 64 prompts x 4 answers 9% faster,
    median of 5); the same probabilities up to float rounding. Elsewhere (GPU), or for a model
    without ``set_attn_implementation``, nothing changes."""
    impl = getattr(getattr(model, "config", None), "_attn_implementation", None)
    if torch.device(device).type != "cpu" or impl != "sdpa" or not hasattr(model, "set_attn_implementation"):
        yield
        return
    model.set_attn_implementation("eager")
    try:
        yield
    finally:
        model.set_attn_implementation(impl)


def growing_cache(capacity: int | None = None):
    """A KV cache like transformers' ``DynamicCache`` whose layers append into buffers with
    spare room instead of concatenating the whole cache at every decoded token: the same keys
    and values, without copying O(length) memory per step. ``capacity``: the most positions a
    row will hold (prompt + token budget), reserved at once; beyond it (or without it) the room
    doubles as needed."""
    from transformers import DynamicCache

    cache = DynamicCache()
    cache.layer_class_to_replicate = functools.partial(_growing_layer_class(), capacity=capacity)
    return cache


@functools.cache
def _growing_layer_class():
    from transformers.cache_utils import DynamicLayer

    class GrowingLayer(DynamicLayer):
        """Keys and values live in (b, heads, capacity, head_dim) buffers; ``keys`` and
        ``values`` are views of the filled part, so ``get_seq_length`` and the attention see
        exactly what ``DynamicLayer`` would give them."""

        def __init__(self, capacity: int | None = None, **kwargs):
            super().__init__(**kwargs)
            self._capacity = capacity

        def lazy_initialization(self, key_states, value_states) -> None:
            super().lazy_initialization(key_states, value_states)
            self._kbuf = self._vbuf = None
            self._n = 0

        def _reserve(self, k: torch.Tensor, v: torch.Tensor, need: int) -> None:
            cap = self._capacity if self._capacity and need <= self._capacity else max(2 * need, 64)
            kb = k.new_empty((*k.shape[:2], cap, k.shape[-1]))
            vb = v.new_empty((*v.shape[:2], cap, v.shape[-1]))
            if self._n:
                kb[:, :, :self._n] = self._kbuf[:, :, :self._n]
                vb[:, :, :self._n] = self._vbuf[:, :, :self._n]
            self._kbuf, self._vbuf = kb, vb

        def _views(self) -> None:
            self.keys = self._kbuf[:, :, :self._n]
            self.values = self._vbuf[:, :, :self._n]

        def update(self, key_states, value_states, *args, **kwargs):
            if not self.is_initialized:
                self.lazy_initialization(key_states, value_states)
            new = key_states.shape[-2]
            if self._kbuf is None or self._n + new > self._kbuf.shape[-2]:
                self._reserve(key_states, value_states, self._n + new)
            self._kbuf[:, :, self._n:self._n + new] = key_states
            self._vbuf[:, :, self._n:self._n + new] = value_states
            self._n += new
            self._views()
            return self.keys, self.values

        def _rebuild(self, keys: torch.Tensor, values: torch.Tensor) -> None:
            self._n = 0
            self._reserve(keys, values, keys.shape[-2])
            self._kbuf[:, :, :keys.shape[-2]] = keys
            self._vbuf[:, :, :keys.shape[-2]] = values
            self._n = keys.shape[-2]
            self._views()

        def batch_repeat_interleave(self, repeats: int) -> None:
            if self.get_seq_length() > 0:
                self._rebuild(self.keys.repeat_interleave(repeats, 0), self.values.repeat_interleave(repeats, 0))

        def batch_select_indices(self, indices: torch.Tensor) -> None:
            # Only the filled part is copied, into fresh buffers with the same room: indexing
            # whole buffers copied their unused room too (256 rows, room 214, 120 filled:
            # 8.2 ms for whole buffers, 1.1 ms for the filled part into a buffer, measured).
            if self.get_seq_length() > 0:
                n = self._n
                kb = self._kbuf.new_empty((len(indices), *self._kbuf.shape[1:]))
                vb = self._vbuf.new_empty((len(indices), *self._vbuf.shape[1:]))
                torch.index_select(self._kbuf[:, :, :n], 0, indices, out=kb[:, :, :n])
                torch.index_select(self._vbuf[:, :, :n], 0, indices, out=vb[:, :, :n])
                self._kbuf, self._vbuf = kb, vb
                self._views()

        def crop(self, tokens_to_remove: int) -> None:
            super().crop(tokens_to_remove)
            if self.is_initialized and tokens_to_remove:
                self._n = self.keys.shape[-2]

        def reset(self) -> None:
            super().reset()
            self._kbuf = self._vbuf = None
            self._n = 0

    return GrowingLayer


def stop_token_ids(tokenizer, model=None) -> list[int]:
    """The ids that end an answer: the tokenizer's EOS first, then every id of the checkpoint's
    ``generation_config.eos_token_id`` (an int or a list: Qwen2.5 checkpoints list both
    ``<|im_end|>`` and ``<|endoftext|>``, and a base policy ends with the second)."""
    ids = [tokenizer.eos_token_id]
    gen_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if gen_eos is not None:
        ids += [gen_eos] if isinstance(gen_eos, int) else list(gen_eos)
    out = [int(i) for i in dict.fromkeys(ids) if i is not None]
    if not out:
        raise ValueError("the tokenizer has no EOS token and the model's generation_config names "
                         "none: nothing would stop an answer")
    return out


def _next_tokens(logits: torch.Tensor, greedy: bool, temperature: float, top_p: float,
                 gen: torch.Generator | None) -> torch.Tensor:
    """(b, V) logits -> (b,) next tokens: argmax, or a sample of softmax(logits / T) restricted
    to the smallest set of tokens whose probability reaches top_p."""
    if greedy:
        return logits.argmax(-1)
    probs = torch.softmax(logits / temperature, dim=-1)
    if top_p < 1.0:
        sorted_p, sorted_i = probs.sort(-1, descending=True)
        drop = sorted_p.cumsum(-1) - sorted_p >= top_p       # mass before it already reaches p
        sorted_p = sorted_p.masked_fill(drop, 0.0)
        probs = torch.zeros_like(probs).scatter(-1, sorted_i, sorted_p)
    return torch.multinomial(probs, 1, generator=gen).squeeze(1)
