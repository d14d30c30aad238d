"""SFT: the loss of a right-padded batch is the loss of its rows, unpadded."""

from __future__ import annotations

import torch

from prmrl.models.factory import build_tiny_policy
from prmrl.sft import collate, encode_pairs, sft_loss


def test_padded_batch_loss_equals_unpadded_rows():
    model, tok = build_tiny_policy(seed=0, hidden=32, layers=2, heads=2, intermediate=64)
    pairs = [("Start with 3. (a) 2 more.\n", "(a) 2 more: 3+2=5\n\\boxed{5}"),
             ("Start with 12. (a) 9 fewer. (b) 2 times.\n", "(a) 9 fewer: 12-9=3\n(b) 2 times: 3*2=6\n\\boxed{6}")]
    examples = encode_pairs(tok, pairs)
    batch = collate(examples, tok.pad_token_id)
    assert batch["attention_mask"][0].sum() < batch["input_ids"].shape[1]     # row 0 is padded
    with torch.no_grad():
        padded = sft_loss(model, batch)
        # per-token mean over both rows, each computed alone
        total, count = 0.0, 0
        for ex in examples:
            one = collate([ex], tok.pad_token_id)
            n = int((one["labels"][:, 1:] != -100).sum())
            total += float(sft_loss(model, one)) * n
            count += n
        assert abs(float(padded) - total / count) < 1e-5
        # the prompt carries no loss: changing the labels of prompt tokens changes nothing
        assert (batch["labels"][0, : examples[0][1]] == -100).all()
