"""Score answers with a PRM (one probability per step) or an ORM (one per answer).

One forward pass per answer: the model is causal, so the output at step k's position depends only
on the prefix p_k, and reading all K positions of the full answer gives PRM(q, p_1..p_K) at once
(tests check it equals scoring each prefix alone).

Truncation: an input longer than ``max_length`` tokens keeps its first ``max_length`` tokens;
steps read beyond them score ``None`` ("could not score", never 0), so a PRM answer's scores are
floats followed by ``None``s. Cutting the head instead would drop the question and change every
score. ``max_length`` defaults to the model's ``max_position_embeddings``.
"""

from __future__ import annotations

import os
from typing import Sequence

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForTokenClassification, PreTrainedModel

from prmrl.prompts import QUESTION_TEMPLATE
from prmrl.models.factory import load_scalar_model, load_tokenizer
from prmrl.models.forward import position_ids_from_mask
from prmrl.rm.formats import PRM_FORMATS, make_format


def pad_batch(seqs: Sequence[list[int]], pad_id: int, side: str) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """(B, L) input_ids and attention_mask, and each row's offset (pads before its first token)."""
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    offsets = []
    for b, s in enumerate(seqs):
        off = width - len(s) if side == "left" else 0
        ids[b, off:off + len(s)] = torch.tensor(s, dtype=torch.long)
        mask[b, off:off + len(s)] = 1
        offsets.append(off)
    return ids, mask, offsets


def forward_logits(model: PreTrainedModel, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                   response_mask: torch.Tensor | None = None) -> torch.Tensor:
    """(B, L, C) outputs: C = num_labels for a token head, the vocabulary for a causal LM.
    Position ids count real tokens only, so left and right padding give the same numbers.
    ``response_mask`` (1 on response tokens) goes to models that read it
    (``uses_response_mask``, e.g. ``LikelihoodRewardModel``), which need it."""
    kw = {}
    if getattr(model, "uses_response_mask", False):
        if response_mask is None:
            raise ValueError(f"{type(model).__name__} needs a response mask")
        kw["response_mask"] = response_mask
    out = model(input_ids=input_ids, attention_mask=attention_mask,
                position_ids=position_ids_from_mask(attention_mask), **kw)
    return out.logits if hasattr(out, "logits") else out[0]


def response_mask(shape: torch.Size, offsets: Sequence[int], starts: Sequence[int],
                  lengths: Sequence[int]) -> torch.Tensor:
    """(B, L) long: 1 from each row's first response token (``starts``: tokens before it) to its
    end, in a batch padded with ``offsets`` pads before each row. Example: shape (1, 5), offsets
    [1], starts [2], lengths [4] -> [[0, 0, 0, 1, 1]]."""
    mask = torch.zeros(shape, dtype=torch.long)
    for b, (off, st, n) in enumerate(zip(offsets, starts, lengths)):
        mask[b, off + min(st, n):off + n] = 1
    return mask


def _response_mask_for(model, ids: torch.Tensor, offsets: list[int], seqs: list[list[int]],
                       prompt_length, questions: Sequence[str]) -> torch.Tensor | None:
    """The response mask a model that reads one needs (``uses_response_mask``), else None."""
    if not getattr(model, "uses_response_mask", False):
        return None
    if prompt_length is None:
        raise ValueError(f"{type(model).__name__} reads a response mask: score it in the native format")
    starts = [prompt_length(q) for q in questions]
    return response_mask(ids.shape, offsets, starts, [len(s) for s in seqs]).to(model.device)


def _pad_id(tokenizer) -> int:
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0


def _default_max_length(model: PreTrainedModel) -> int | None:
    return getattr(model.config, "max_position_embeddings", None)


def _check_vocab(model: PreTrainedModel, tokenizer) -> None:
    n_emb = model.get_input_embeddings().num_embeddings
    if len(tokenizer) > n_emb:
        raise ValueError(f"tokenizer has {len(tokenizer)} tokens but the model embeds {n_emb}: "
                         f"call model.resize_token_embeddings(len(tokenizer))")


class PRMScorer:
    """``score(questions, steps)`` -> per answer, one probability per step (None beyond max_length)."""

    def __init__(self, model: PreTrainedModel, tokenizer, fmt, max_length: int | None = None):
        self.model, self.tokenizer, self.fmt = model.eval(), tokenizer, fmt
        self.max_length = max_length if max_length is not None else _default_max_length(model)
        _check_vocab(model, tokenizer)

    @torch.inference_mode()
    def score(self, questions: Sequence[str], steps: Sequence[list[str]], batch_size: int = 8
              ) -> list[list[float | None]]:
        if len(questions) != len(steps):
            raise ValueError(f"{len(questions)} questions but {len(steps)} step lists")
        results: list[list[float | None]] = [[] for _ in questions]
        encoded = {i: self.fmt.encode(questions[i], list(s)) for i, s in enumerate(steps) if s}
        # answers with no step score []; the others in batches of similar length (little padding)
        todo = sorted(encoded, key=lambda i: len(encoded[i].input_ids))
        for start in range(0, len(todo), batch_size):
            idx = todo[start:start + batch_size]
            enc = [encoded[i] for i in idx]
            seqs = [e.input_ids[:self.max_length] if self.max_length else e.input_ids for e in enc]
            ids, mask, offs = pad_batch(seqs, _pad_id(self.tokenizer), self.tokenizer.padding_side)
            resp = _response_mask_for(self.model, ids, offs, seqs, getattr(self.fmt, "prompt_length", None),
                                      [questions[i] for i in idx])
            logits = forward_logits(self.model, ids.to(self.model.device), mask.to(self.model.device), resp)
            for b, (i, e) in enumerate(zip(idx, enc)):
                kept = [p for p in e.positions if p < len(seqs[b])]
                at = torch.tensor([offs[b] + p for p in kept], dtype=torch.long, device=logits.device)
                probs = self.fmt.step_probs(logits[b, at]).tolist() if kept else []
                results[i] = probs + [None] * (len(e.positions) - len(kept))
        return results


class ORMScorer:
    """``score(questions, responses)`` -> sigmoid of the scalar head at each input's last token."""

    def __init__(self, model: PreTrainedModel, tokenizer, prompt_template: str = QUESTION_TEMPLATE,
                 max_length: int | None = None):
        self.model, self.tokenizer, self.prompt_template = model.eval(), tokenizer, prompt_template
        self.max_length = max_length if max_length is not None else _default_max_length(model)
        _check_vocab(model, tokenizer)

    def encode(self, question: str, response: str) -> list[int]:
        return self.tokenizer.encode(self.prompt_template.format(question=question) + response)

    def prompt_length(self, question: str) -> int:
        """Tokens before the response (the prompt alone, encoded as :meth:`encode` does)."""
        return len(self.encode(question, ""))

    @torch.inference_mode()
    def score(self, questions: Sequence[str], responses: Sequence[str], batch_size: int = 8
              ) -> list[float | None]:
        if len(questions) != len(responses):
            raise ValueError(f"{len(questions)} questions but {len(responses)} responses")
        results: list[float | None] = []
        for start in range(0, len(questions), batch_size):
            seqs = [self.encode(q, r) for q, r in zip(questions[start:start + batch_size],
                                                       responses[start:start + batch_size])]
            too_long = [self.max_length is not None and len(s) > self.max_length for s in seqs]
            seqs = [s[:self.max_length] if t else s for s, t in zip(seqs, too_long)]
            ids, mask, offs = pad_batch(seqs, _pad_id(self.tokenizer), self.tokenizer.padding_side)
            resp = _response_mask_for(self.model, ids, offs, seqs, self.prompt_length,
                                      questions[start:start + batch_size])
            logits = forward_logits(self.model, ids.to(self.model.device), mask.to(self.model.device), resp)
            last = torch.tensor([o + len(s) - 1 for o, s in zip(offs, seqs)], device=logits.device)
            probs = torch.sigmoid(logits[torch.arange(len(seqs)), last, 0].float()).tolist()
            results += [None if t else p for p, t in zip(probs, too_long)]
        return results


def load_prm(path: str | os.PathLike, fmt: str = "native", dtype: torch.dtype | None = None,
             max_length: int | None = None, trust_remote_code: bool = False,
             device: str | torch.device | None = None, **fmt_kwargs) -> PRMScorer:
    """A PRMScorer from a checkpoint folder (or hub name) holding model and tokenizer.

    native: prmrl's scalar token head; math_shepherd: a causal LM; qwen_prm: a 2-label token
    head. The published Qwen2.5-Math-PRM ships its own head class (remote code), loaded only with
    ``trust_remote_code=True``; loading it as a token classifier would silently start a new head.
    """
    if fmt not in PRM_FORMATS:
        raise ValueError(f"unknown PRM format '{fmt}'; choose one of {sorted(PRM_FORMATS)}")
    tokenizer = load_tokenizer(path)
    if fmt == "native":
        model = load_scalar_model(path, dtype=dtype)
    elif fmt == "math_shepherd":
        model = AutoModelForCausalLM.from_pretrained(str(path), dtype=dtype)
    else:  # qwen_prm
        archs = AutoConfig.from_pretrained(str(path), trust_remote_code=trust_remote_code).architectures or []
        if any(a.endswith("ForTokenClassification") for a in archs):
            model = AutoModelForTokenClassification.from_pretrained(str(path), num_labels=2, dtype=dtype)
        elif trust_remote_code:
            from transformers import AutoModel

            model = AutoModel.from_pretrained(str(path), dtype=dtype, trust_remote_code=True)
        else:
            raise ValueError(f"'{path}' has architectures {archs}: pass trust_remote_code=True to "
                             f"load its own PRM head")
    if device is not None:
        model = model.to(device)
    return PRMScorer(model, tokenizer, make_format(fmt, tokenizer, **fmt_kwargs), max_length=max_length)


def load_orm(path: str | os.PathLike, prompt_template: str = QUESTION_TEMPLATE, dtype: torch.dtype | None = None,
             max_length: int | None = None, device: str | torch.device | None = None) -> ORMScorer:
    model = load_scalar_model(path, dtype=dtype)
    if device is not None:
        model = model.to(device)
    return ORMScorer(model, load_tokenizer(path), prompt_template, max_length)
