"""Supervised fine-tuning on (prompt, response) pairs: loss on response tokens only."""

from __future__ import annotations

import math
import random
import time
from typing import Callable

import torch


def encode_pairs(tokenizer, pairs: list[tuple[str, str]]) -> list[tuple[list[int], int]]:
    """Each pair -> (prompt + response + EOS ids, number of prompt tokens)."""
    prompts = tokenizer([p for p, _ in pairs], add_special_tokens=False)["input_ids"]
    responses = tokenizer([r for _, r in pairs], add_special_tokens=False)["input_ids"]
    return [(p + r + [tokenizer.eos_token_id], len(p)) for p, r in zip(prompts, responses)]


def collate(examples: list[tuple[list[int], int]], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded batch; labels are -100 on prompt and padding."""
    L = max(len(ids) for ids, _ in examples)
    input_ids = torch.full((len(examples), L), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), L), -100, dtype=torch.long)
    attention_mask = torch.zeros((len(examples), L), dtype=torch.long)
    for i, (ids, n_prompt) in enumerate(examples):
        input_ids[i, : len(ids)] = torch.tensor(ids)
        labels[i, n_prompt: len(ids)] = torch.tensor(ids[n_prompt:])
        attention_mask[i, : len(ids)] = 1
    return {"input_ids": input_ids, "labels": labels, "attention_mask": attention_mask}


def sft_loss(model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Mean cross-entropy of the response tokens. Rows are right-padded, so causal attention
    alone keeps every real token from seeing padding, and positions count from 0 as they would
    unpadded: no attention mask is needed, and none is passed (the result is the same; a
    forward+backward step of 32 rows x 110 tokens takes about 100 ms on 2 CPU cores either way)."""
    logits = model(input_ids=batch["input_ids"]).logits
    return torch.nn.functional.cross_entropy(
        logits[:, :-1].flatten(0, 1).float(), batch["labels"][:, 1:].flatten(), ignore_index=-100)


def length_grouped_batches(lengths: list[int], batch_size: int, rng: random.Random,
                           group: int = 8) -> list[list[int]]:
    """One epoch of batches: shuffle, cut into runs of ``group`` batches, sort each run by length
    and split it, then shuffle the batches. Rows of a batch have similar lengths, so a batch
    pads little (600 arith SFT steps: 138 s instead of 190 s with random batches, measured),
    while every batch still comes from a random slice of the data."""
    order = list(range(len(lengths)))
    rng.shuffle(order)
    out = []
    for c in range(0, len(order), batch_size * group):
        run = sorted(order[c:c + batch_size * group], key=lengths.__getitem__)
        out += [run[i:i + batch_size] for i in range(0, len(run), batch_size)]
    rng.shuffle(out)
    return out


def train_sft(model, tokenizer, pairs: list[tuple[str, str]], *, steps: int, batch_size: int,
              lr: float, warmup_steps: int, seed: int, weight_decay: float = 0.0,
              log_fn: Callable[[dict], None] | None = None, progress: bool = True) -> dict:
    """AdamW with linear warm-up and cosine decay; returns final figures."""
    examples = encode_pairs(tokenizer, pairs)
    rng = random.Random(seed)
    torch.manual_seed(seed)
    total = steps
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay, betas=(0.9, 0.95))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / max(1, warmup_steps))
                                              * 0.5 * (1 + math.cos(math.pi * min(1.0, s / total))))
    model.train()
    lengths = [len(ids) for ids, _ in examples]
    batches: list[list[int]] = []
    t0 = time.time()
    bar = _bar(total, progress)
    loss_ema = None
    for step in range(total):
        if not batches:
            batches = length_grouped_batches(lengths, batch_size, rng)
        batch = collate([examples[i] for i in batches.pop()], tokenizer.pad_token_id)
        loss = sft_loss(model, batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        loss_ema = loss.item() if loss_ema is None else 0.95 * loss_ema + 0.05 * loss.item()
        if log_fn is not None and (step % 20 == 0 or step == total - 1):
            log_fn({"step": step, "losses/sft": loss.item(), "charts/lr": sched.get_last_lr()[0]})
        bar.set_postfix(loss=f"{loss_ema:.3f}")
        bar.update(1)
    bar.close()
    model.eval()
    return {"steps": total, "final_loss": loss_ema, "wall_seconds": time.time() - t0}


def _bar(total: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="sft", disable=not enabled, dynamic_ncols=True, leave=False)
