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

from prmrl.prompts import QUESTION_TEMPLATE
from prmrl.rm.formats import NativeFormat
from prmrl.rm.records import OutcomeRecord, StepLabelRecord
from prmrl.rewards.reward_models import _pad_id, forward_logits, pad_batch, response_mask


def _label_batch(tokenizer, seqs: list[list[int]], positions: list[list[int]], labels: list[list[float]],
                 max_length: int | None, starts: list[int]) -> dict[str, torch.Tensor]:
    if max_length is not None:  # same rule as the scorer: keep the head, drop labels beyond it
        seqs = [s[:max_length] for s in seqs]
    ids, mask, offs = pad_batch(seqs, _pad_id(tokenizer), tokenizer.padding_side)
    resp = response_mask(ids.shape, offs, starts, [len(s) for s in seqs])  # (B, L) 1 on responses
    lab = torch.zeros(ids.shape, dtype=torch.float32)           # (B, L)
    lab_mask = torch.zeros(ids.shape, dtype=torch.bool)         # (B, L) True where a label sits
    for b, (pos, ys) in enumerate(zip(positions, labels)):
        for p, y in zip(pos, ys):
            if p < len(seqs[b]):
                lab[b, offs[b] + p] = float(y)
                lab_mask[b, offs[b] + p] = True
    return {"input_ids": ids, "attention_mask": mask, "labels": lab, "label_mask": lab_mask,
            "response_mask": resp}


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
    starts = [fmt.prompt_length(r.question) for r in records]   # the first step starts here
    if dense:
        pairs = [dense_positions(p, y, st) for p, y, st in zip(positions, labels, starts)]
        positions, labels = [p for p, _ in pairs], [y for _, y in pairs]
    return _label_batch(tokenizer, [e.input_ids for e in enc], positions, labels, max_length, starts)


def orm_training_batch(tokenizer, records: Sequence[OutcomeRecord], prompt_template: str = QUESTION_TEMPLATE,
                       max_length: int | None = None) -> dict[str, torch.Tensor]:
    """As :func:`prm_training_batch`, one label per row on its last token (as ORMScorer reads).
    A row longer than ``max_length`` has no label (the scorer returns None for it)."""
    seqs = [tokenizer.encode(prompt_template.format(question=r.question) + r.response) for r in records]
    positions = [[len(s) - 1] for s in seqs]
    starts = [len(tokenizer.encode(prompt_template.format(question=r.question))) for r in records]
    return _label_batch(tokenizer, seqs, positions, [[r.label] for r in records], max_length, starts)


def length_grouped_batches(lengths: Sequence[int], batch_size: int, gen: torch.Generator,
                           group: int = 50) -> list[list[int]]:
    """One epoch's batches of indices, each holding examples of similar length (less padding).

    A seeded shuffle, cut into chunks of ``group * batch_size`` examples; each chunk sorted by
    length and cut into batches; then the batches shuffled. Every example appears once. On the
    arith answers (8,000, batch 64) this pads 1.01x the real characters instead of 1.35x for
    plain random batches.
    Example: lengths [5, 1, 4, 2], batch_size 2, group 50 -> batches {1, 3} and {2, 0} (as
    index sets), in a seeded order.
    """
    order = torch.randperm(len(lengths), generator=gen).tolist()
    chunk = group * batch_size
    batches = []
    for start in range(0, len(order), chunk):
        part = sorted(order[start:start + chunk], key=lambda i: lengths[i])
        batches += [part[j:j + batch_size] for j in range(0, len(part), batch_size)]
    return [batches[i] for i in torch.randperm(len(batches), generator=gen).tolist()]


def _text_length(example: StepLabelRecord | OutcomeRecord) -> int:
    """Characters of the reward model's input text: the sort key of length-grouped batches."""
    body = example.response if isinstance(example, OutcomeRecord) else "\n".join(example.steps)
    return len(example.question) + len(body)


MIX_LR_SCALE = 10.0


def _param_groups(model, trainable: list, lr: float) -> list[dict]:
    """One group, except that a ``LikelihoodRewardModel``'s mix (3 weights on features of a few
    nats, against thousands of layer weights on unit-scale activations) learns ``MIX_LR_SCALE``
    times faster: at the layers' rate it moves too little in one run to weigh the likelihoods."""
    mix = getattr(model, "mix", None)
    if not isinstance(mix, torch.nn.Module):
        return [{"params": trainable}]
    ids = {id(p) for p in mix.parameters()}
    return [{"params": [p for p in trainable if id(p) not in ids]},
            {"params": [p for p in trainable if id(p) in ids], "lr": lr * MIX_LR_SCALE}]


def train_reward_model(model: PreTrainedModel, tokenizer, examples: Sequence[StepLabelRecord | OutcomeRecord],
                       kind: str, epochs: int = 1, lr: float = 1e-4, batch_size: int = 8, seed: int = 0,
                       fmt=None, prompt_template: str = QUESTION_TEMPLATE, max_length: int | None = None,
                       grad_clip: float = 1.0, weight_decay: float = 0.0, dense: bool = False,
                       log_fn: Callable[[dict], None] | None = None) -> dict[str, float]:
    """A plain loop: seeded length-grouped batches, BCE on labelled tokens, AdamW, gradient clipping.

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
    opt = torch.optim.AdamW(_param_groups(model, trainable, lr), lr=lr, weight_decay=weight_decay)
    model.train()
    losses: list[float] = []
    epoch_losses: list[float] = []
    step = 0
    lengths = [_text_length(e) for e in examples]
    for epoch in range(epochs):
        epoch_losses = []
        for idx in length_grouped_batches(lengths, batch_size, gen):
            batch = make([examples[i] for i in idx])
            if not batch["label_mask"].any():
                continue  # every label truncated away: nothing to learn from
            batch = {k: v.to(device) for k, v in batch.items()}
            logits = forward_logits(model, batch["input_ids"], batch["attention_mask"],
                                    batch["response_mask"])[..., 0].float()  # (B, L)
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
