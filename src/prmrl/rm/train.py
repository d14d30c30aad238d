"""Train an ORM or a native PRM: binary cross-entropy with logits on float (soft) labels.

Both are a scalar token head (``AutoModelForTokenClassification``, num_labels=1). A PRM label
sits on the token the scorer reads for that step (``fmt.encode(...).positions``, same padding),
an ORM label on the last token, so training and scoring cannot disagree about placement.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from transformers import PreTrainedModel

from prmrl.rm.formats import NativeFormat
from prmrl.rm.records import OutcomeRecord, StepLabelRecord
from prmrl.rm.scoring import _pad_id, forward_logits, pad_batch


def _label_batch(tokenizer, seqs: list[list[int]], positions: list[list[int]], labels: list[list[float]],
                 max_length: int | None) -> dict[str, torch.Tensor]:
    if max_length is not None:  # same rule as the scorer: keep the head, drop labels beyond it
        seqs = [s[:max_length] for s in seqs]
    ids, mask, offs = pad_batch(seqs, _pad_id(tokenizer), tokenizer.padding_side)
    lab = torch.zeros(ids.shape, dtype=torch.float32)           # (B, L)
    lab_mask = torch.zeros(ids.shape, dtype=torch.bool)         # (B, L) True where a label sits
    for b, (pos, ys) in enumerate(zip(positions, labels)):
        for p, y in zip(pos, ys):
            if p < len(seqs[b]):
                lab[b, offs[b] + p] = float(y)
                lab_mask[b, offs[b] + p] = True
    return {"input_ids": ids, "attention_mask": mask, "labels": lab, "label_mask": lab_mask}


def dense_positions(positions: list[int], labels: list[float], start: int) -> tuple[list[int], list[float]]:
    """Spread each step's label over the tokens of that step where the label is already known.

    A step whose label equals the previous step's (or the first step, labelled 1) only carries
    the state of its prefix (still right / already wrong), so every token of it gets that label:
    ``positions[k-1] + 1 .. positions[k]`` (from ``start`` for the first step). A step where the
    label changes is where something happened inside it; only its scored token gets the label.
    About 8x the supervision of one label per step, with no label that the step-end reading
    would not also give. Example: positions [4, 7, 9], labels [1, 1, 0], start 2 ->
    positions [2, 3, 4, 5, 6, 7, 9], labels [1, 1, 1, 1, 1, 1, 0].
    """
    out_p, out_y = [], []
    prev_pos, prev_y = start - 1, 1.0
    for p, y in zip(positions, labels):
        lo = prev_pos + 1 if y == prev_y else p
        out_p += list(range(lo, p + 1))
        out_y += [float(y)] * (p + 1 - lo)
        prev_pos, prev_y = p, y
    return out_p, out_y


def prm_training_batch(tokenizer, fmt, records: Sequence[StepLabelRecord], max_length: int | None = None,
                       dense: bool = False) -> dict[str, torch.Tensor]:
    """input_ids, attention_mask (B, L); labels (B, L) float32, 0 where ``label_mask`` is False.

    Example (char tokenizer, native format, prompt "{question}\\n", delimiter "\\n"):
    question "Q", steps ["ab", "c"], labels [1.0, 0.25] -> text "Q\\nab\\nc";
    label_mask is True at tokens 3 ("b") and 5 ("c") with labels 1.0 and 0.25.
    """
    enc = [fmt.encode(r.question, r.steps) for r in records]
    positions, labels = [e.positions for e in enc], [r.labels for r in records]
    if dense:   # ``dense_positions``; the first step starts after the prompt
        starts = [_prompt_tokens(fmt, r.question) for r in records]
        pairs = [dense_positions(p, y, st) for p, y, st in zip(positions, labels, starts)]
        positions, labels = [p for p, _ in pairs], [y for _, y in pairs]
    return _label_batch(tokenizer, [e.input_ids for e in enc], positions, labels, max_length)


def _prompt_tokens(fmt, question: str) -> int:
    """Tokens before the first step: the encoding of the question with no steps."""
    return len(fmt.tokenizer(fmt.text(question, []), add_special_tokens=True)["input_ids"])


def orm_training_batch(tokenizer, records: Sequence[OutcomeRecord], prompt_template: str = "{question}\n",
                       max_length: int | None = None) -> dict[str, torch.Tensor]:
    """As :func:`prm_training_batch`, one label per row on its last token (as ORMScorer reads).
    A row longer than ``max_length`` has no label (the scorer returns None for it)."""
    seqs = [tokenizer.encode(prompt_template.format(question=r.question) + r.response) for r in records]
    positions = [[len(s) - 1] for s in seqs]
    return _label_batch(tokenizer, seqs, positions, [[r.label] for r in records], max_length)


def train_reward_model(model: PreTrainedModel, tokenizer, examples: Sequence[StepLabelRecord | OutcomeRecord],
                       kind: str, epochs: int = 1, lr: float = 1e-4, batch_size: int = 8, seed: int = 0,
                       fmt=None, prompt_template: str = "{question}\n", max_length: int | None = None,
                       grad_clip: float = 1.0, weight_decay: float = 0.0, dense: bool = False,
                       log_fn: Callable[[dict], None] | None = None) -> dict[str, float]:
    """A plain loop: shuffle (seeded), BCE on labelled tokens, AdamW, gradient clipping.

    kind "prm": examples are StepLabelRecords, placed by ``fmt`` (default: NativeFormat with
    ``prompt_template``); kind "orm": OutcomeRecords. Deterministic per seed on CPU.
    Leaves the model in eval mode. Returns first/last/last-epoch-mean loss and the step count.
    """
    if kind not in ("orm", "prm"):
        raise ValueError(f"kind must be 'orm' or 'prm', got '{kind}'")
    if model.config.num_labels != 1:
        raise ValueError(f"training needs a scalar head (num_labels=1), got {model.config.num_labels}")
    if kind == "prm":
        fmt = fmt if fmt is not None else NativeFormat(tokenizer, prompt_template=prompt_template)
        make = lambda recs: prm_training_batch(tokenizer, fmt, recs, max_length, dense)  # noqa: E731
    else:
        make = lambda recs: orm_training_batch(tokenizer, recs, prompt_template, max_length)  # noqa: E731

    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    device = next(model.parameters()).device
    trainable = [p for p in model.parameters() if p.requires_grad]   # all, unless frozen
    opt = torch.optim.AdamW(trainable, lr=lr, weight_decay=weight_decay)
    model.train()
    losses: list[float] = []
    epoch_losses: list[float] = []
    step = 0
    for epoch in range(epochs):
        order = torch.randperm(len(examples), generator=gen).tolist()
        epoch_losses = []
        for start in range(0, len(order), batch_size):
            batch = make([examples[i] for i in order[start:start + batch_size]])
            if not batch["label_mask"].any():
                continue  # every label truncated away: nothing to learn from
            batch = {k: v.to(device) for k, v in batch.items()}
            logits = forward_logits(model, batch["input_ids"], batch["attention_mask"])[..., 0].float()  # (B, L)
            m = batch["label_mask"]
            loss = F.binary_cross_entropy_with_logits(logits[m], batch["labels"][m])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(trainable, grad_clip)
            opt.step()
            step += 1
            losses.append(loss.item())
            epoch_losses.append(losses[-1])
            if log_fn is not None:
                log_fn({"step": step, "epoch": epoch, "losses/bce": losses[-1],
                        "charts/grad_norm": float(grad_norm), "charts/n_labels": int(m.sum())})
    model.eval()
    if not losses:
        raise ValueError("no labelled token in any example: nothing was trained")
    return {"steps": step, "loss/first": losses[0], "loss/last": losses[-1],
            "loss/last_epoch_mean": sum(epoch_losses) / max(len(epoch_losses), 1)}
