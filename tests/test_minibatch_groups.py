"""Minibatches of whole groups (ppo.minibatch_by): the row orders, hand-checked, and the
trainer's micro-batches holding each prompt's answers together."""

from __future__ import annotations

import pytest
import torch

from prmrl.config import ConfigError, load_config, micro_batch, minibatch_unit
from prmrl.rl.batch import by_length, shuffled_rows


def test_shuffled_rows_moves_whole_groups_and_answer_mode_is_randperm():
    torch.manual_seed(0)
    groups = torch.randperm(3)
    torch.manual_seed(0)
    rows = shuffled_rows(6, 2)
    assert rows.tolist() == [r for g in groups.tolist() for r in (2 * g, 2 * g + 1)]
    torch.manual_seed(1)
    expect = torch.randperm(6)
    torch.manual_seed(1)
    assert shuffled_rows(6, 1).tolist() == expect.tolist()   # answer mode: unchanged RNG use


def test_by_length_orders_groups_by_their_longest_answer():
    rows, lengths = torch.tensor([7, 8, 9, 6]), torch.tensor([5, 1, 2, 2])
    assert by_length(rows, lengths, 2).tolist() == [9, 6, 7, 8]
    assert by_length(rows, lengths, 1).tolist() == [8, 9, 6, 7]


def test_minibatch_unit_auto_and_sizes_must_be_multiples_of_the_group():
    cfg = load_config(None, ["ppo.advantage=grpo"])
    assert minibatch_unit(cfg.ppo) == "prompt"
    assert minibatch_unit(load_config(None, []).ppo) == "prompt"               # gae too
    assert minibatch_unit(load_config(None, ["ppo.minibatch_by=answer"]).ppo) == "answer"
    # auto with a minibatch that cannot hold whole groups: answer by answer, not an error
    odd = load_config(None, ["ppo.advantage=grpo", "ppo.samples_per_prompt=3"])   # 64 % 3 = 1
    assert minibatch_unit(odd.ppo) == "answer" and micro_batch(odd.ppo) == 16
    with pytest.raises(ConfigError, match="ppo.minibatch_size: 64 is not a multiple of ppo.samples_per_prompt"):
        load_config(None, ["ppo.advantage=grpo", "ppo.samples_per_prompt=3", "ppo.minibatch_by=prompt"])
    # the micro-batch is a memory knob: rounded down to whole groups, at least one
    three = load_config(None, ["ppo.advantage=grpo", "ppo.samples_per_prompt=3", "ppo.minibatch_size=48"])
    assert minibatch_unit(three.ppo) == "prompt" and micro_batch(three.ppo) == 15
    two = load_config(None, ["ppo.advantage=grpo", "ppo.micro_batch_size=3", "ppo.samples_per_prompt=4"])
    assert micro_batch(two.ppo) == 4
    assert micro_batch(load_config(None, ["ppo.micro_batch_size=6", "ppo.minibatch_by=answer"]).ppo) == 6
    assert micro_batch(load_config(None, ["ppo.micro_batch_size=6"]).ppo) == 4
    assert micro_batch(load_config(None, ["ppo.micro_batch_size=null"]).ppo) == 64  # None: the minibatch


def test_group_chunks_hold_whole_groups():
    from prmrl.rl.batch import RolloutBatch

    lengths = torch.tensor([3, 1, 5, 2, 4, 4, 1, 1])
    B, T = len(lengths), 6
    mask = (torch.arange(T)[None] < lengths[:, None]).long()
    b = RolloutBatch(input_ids=torch.zeros(B, T, dtype=torch.long), attention_mask=mask, response_mask=mask,
                     truncated=torch.zeros(B, dtype=torch.bool), questions=[""] * B, golds=[""] * B,
                     texts=[""] * B, step_texts=[[]] * B, step_end_index=torch.zeros(B, 1, dtype=torch.long),
                     step_mask=torch.zeros(B, 1, dtype=torch.bool))
    # groups of 2: longest 3, 5, 4, 1 -> order groups 3, 0, 2, 1
    assert [c.tolist() for c in b.chunks(4, 2)] == [[6, 7, 0, 1], [4, 5, 2, 3]]
    assert [c.tolist() for c in b.chunks(3, 2)] == [c.tolist() for c in b.chunks(3)]
