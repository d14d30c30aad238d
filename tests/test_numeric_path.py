"""The update's numeric path: the reference runs the actor's (KL 0 at iteration 0, in float32
and under bf16 autocast), micro-batches add up to the minibatch's update, gradient
checkpointing changes memory and not results, and every stop token of a checkpoint ends an
answer."""

from __future__ import annotations

import pytest
import torch

from prmrl import PPOConfig, PPOTrainer, Task
from prmrl.models.factory import build_tiny_policy, frozen_copy, save_model
from prmrl.models.forward import token_logprobs
from prmrl.models.sampler import sample_tokens, stop_token_ids
from prmrl.rl.trainer import LocalAccelerator
from prmrl.tasks import arith

SMALL = dict(iterations=1, prompts_per_iteration=4, samples_per_prompt=2, max_new_tokens=16,
             minibatch_size=8, ppo_epochs=1)


@pytest.fixture(scope="module")
def policy(tmp_path_factory):
    model, tok = build_tiny_policy(seed=0, hidden=32, layers=2, heads=2, intermediate=64)
    path = tmp_path_factory.mktemp("policy") / "p"
    save_model(model, tok, path)
    return path


def task(grade=arith.grade) -> Task:
    qs = [f"Start with {a}. (a) 2 more." for a in range(8)]
    return Task(name="arith", train_questions=qs, train_golds=[str(a + 2) for a in range(8)],
                test_questions=[], test_golds=[], prompt=arith.prompt,
                grade_batch=lambda rs, gs: [grade(r, g) for r, g in zip(rs, gs)], delimiter="\n")


def even_length(response: str, gold: str) -> bool:
    """A reward the untrained policy gets about half the time (it never gets the arithmetic
    right): a group's answers differ, so a critic-free estimator has something to learn."""
    return len(response) % 2 == 0


def rollout(trainer: PPOTrainer):
    torch.manual_seed(0)
    t = task()
    b = trainer.generate(t.train_questions[:4], t.train_golds[:4])
    trainer.score(b)
    trainer.shape(b)
    return b


@pytest.mark.parametrize("mixed", ["no", "bf16"])
def test_kl_is_zero_at_iteration_0(policy, mixed):
    tr = PPOTrainer(str(policy), task=task(), ppo=PPOConfig(**SMALL), precision="bfloat16",
                    accelerator=LocalAccelerator("cpu", mixed_precision=mixed))
    b = rollout(tr)
    m = b.response_mask.bool()
    assert m.sum() > 10
    if mixed == "bf16":       # old log-probs recomputed under the same autocast: bit for bit
        assert torch.equal(b.old_logprobs[m], b.ref_logprobs[m])
        linear = tr.ref.model.layers[0].mlp.up_proj.weight
        assert linear.dtype == torch.bfloat16 and tr.ref.model.embed_tokens.weight.dtype == torch.float32
    else:                     # the sampler's incremental log-probs against a full forward
        assert (b.old_logprobs[m] - b.ref_logprobs[m]).abs().max() < 1e-5
    assert b.kl[m].abs().max() < 1e-5


def test_a_bf16_reference_without_the_autocast_would_not_be_zero(policy):
    """What the reference's numeric path fixes: a plain bf16 copy of the float32 actor."""
    model, _ = build_tiny_policy(seed=0, hidden=32, layers=2, heads=2, intermediate=64)
    ids = torch.randint(5, 100, (2, 12))
    am = torch.ones_like(ids)
    with torch.no_grad():
        actor = token_logprobs(model, ids, am, 6)[0]
        naive = token_logprobs(model.to(torch.bfloat16), ids, am, 6)[0]
        model.float()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            a = token_logprobs(model, ids, am, 6)[0]
            r = token_logprobs(frozen_copy(model, torch.bfloat16), ids, am, 6)[0]
    assert (actor - naive).abs().max() > 1e-4
    assert torch.equal(a, r)


def updated_weights(policy, **ppo) -> dict[str, torch.Tensor]:
    tr = PPOTrainer(str(policy), task=task(even_length), ppo=PPOConfig(**{**SMALL, **ppo}))
    b = rollout(tr)
    tr.advantages(b)
    assert b.advantages.abs().max() > 0.1
    torch.manual_seed(1)
    stats = tr.update(b)
    return {**{f"actor.{k}": v for k, v in tr.actor.state_dict().items()},
            **({f"critic.{k}": v for k, v in tr.critic.state_dict().items()} if tr.critic is not None else {})}, stats


@pytest.mark.parametrize("advantage", ["gae", "grpo"])
def test_micro_batches_give_the_minibatch_update(policy, advantage):
    whole, s1 = updated_weights(policy, advantage=advantage)
    micro, s2 = updated_weights(policy, advantage=advantage, micro_batch_size=2)
    base = PPOTrainer(str(policy), task=task(), ppo=PPOConfig(**SMALL, advantage=advantage)).actor.state_dict()
    moved = [k for k, v in base.items() if not torch.allclose(v, whole[f"actor.{k}"], atol=1e-7)]
    assert moved                                      # the update did something
    for k in whole:
        assert torch.allclose(whole[k], micro[k], atol=2e-6, rtol=1e-5), k
    for k in s1:
        assert s1[k] == pytest.approx(s2[k], rel=1e-4, abs=1e-6), k


def test_gradient_checkpointing_gives_the_same_update(policy):
    # answer by answer: under checkpointing the passes never share prompts (the cache is off),
    # and the shared pass's float rounding, through Adam's normalisation, moves rarely used
    # embedding rows by ~5e-6 (tests/test_forward.py compares the two passes' gradients)
    ppo = PPOConfig(**SMALL, minibatch_by="answer")
    tr_plain = PPOTrainer(str(policy), task=task(), ppo=ppo)
    tr_gc = PPOTrainer(str(policy), task=task(), ppo=ppo, gradient_checkpointing=True)
    assert tr_gc.actor.is_activation_checkpointing and not tr_plain.actor.is_activation_checkpointing
    out = []
    for tr in (tr_plain, tr_gc):
        b = rollout(tr)
        tr.advantages(b)
        torch.manual_seed(1)
        tr.update(b)
        out.append(tr.actor.state_dict())
    for k in out[0]:
        assert torch.allclose(out[0][k], out[1][k], atol=1e-6), k


def test_every_stop_token_of_the_checkpoint_ends_an_answer():
    model, tok = build_tiny_policy(seed=0, hidden=32, layers=2, heads=2, intermediate=64)
    prompts = ["Start with 3. (a) 2 more."]
    ids, lengths, truncated, _ = sample_tokens(model, tok, prompts, budgets=8, greedy=True)
    first = int(ids[0, 0])
    assert first != tok.eos_token_id and lengths[0] > 1
    model.generation_config.eos_token_id = [tok.eos_token_id, first]    # e.g. <|im_end|>, <|endoftext|>
    assert stop_token_ids(tok, model) == [tok.eos_token_id, first]
    ids, lengths, truncated, _ = sample_tokens(model, tok, prompts, budgets=8, greedy=True)
    assert lengths.tolist() == [1] and truncated == [False]


def test_the_growing_kv_cache_samples_what_transformers_dynamic_cache_samples(monkeypatch):
    """Rows stop at different budgets (the batch is compacted), each prompt is repeated (its
    cache too), and the cache holds up to 120 new positions in the room reserved for them:
    tokens and log-probs equal sampling with ``DynamicCache``, bit for bit."""
    from transformers import DynamicCache

    import prmrl.models.sampler as sampler

    model, tok = build_tiny_policy(seed=0, hidden=32, layers=2, heads=2, intermediate=64)
    prompts = [f"Start with {a}. (a) 2 more." for a in range(6)]
    budgets = [90, 3, 40, 7, 120, 20]
    runs = []
    for cache in (sampler.growing_cache, lambda capacity=None: DynamicCache()):
        monkeypatch.setattr(sampler, "growing_cache", cache)
        runs.append(sample_tokens(model, tok, prompts, n=3, budgets=budgets, seed=5, logprobs=True))
    (ids, lengths, truncated, lp), (ids2, lengths2, truncated2, lp2) = runs
    assert lengths.tolist() == lengths2.tolist() and len(set(lengths.tolist())) > 3
    assert int(lengths.max()) > 64
    assert torch.equal(ids, ids2) and truncated == truncated2 and torch.equal(lp, lp2)


@pytest.mark.parametrize("capacity", [None, 8, 75])
def test_the_growing_cache_layer_holds_what_it_was_given(capacity):
    """Without a capacity the room doubles from 64; with too small a one (8) it doubles from
    there; with the exact one (75) the first buffer is the only one."""
    from prmrl.models.sampler import growing_cache

    cache = growing_cache(capacity)
    k0, v0 = torch.randn(2, 2, 5, 4), torch.randn(2, 2, 5, 4)
    cache.update(k0, v0, 0)
    cache.batch_repeat_interleave(2)
    steps = [(torch.randn(4, 2, 1, 4), torch.randn(4, 2, 1, 4)) for _ in range(70)]
    for k, v in steps:
        keys, values = cache.update(k, v, 0)
    want_k = torch.cat([k0.repeat_interleave(2, 0), *[k for k, _ in steps]], dim=2)
    want_v = torch.cat([v0.repeat_interleave(2, 0), *[v for _, v in steps]], dim=2)
    assert torch.equal(keys, want_k) and torch.equal(values, want_v) and cache.get_seq_length() == 75
    room = cache.layers[0]._kbuf.shape[2]
    assert room == {None: 130, 8: 130, 75: 75}[capacity]   # doubling: 64, then 2 x 65
    cache.batch_select_indices(torch.tensor([3, 0]))
    assert torch.equal(cache.layers[0].keys, want_k[[3, 0]]) and cache.get_seq_length() == 75
    assert cache.layers[0]._kbuf.shape[2] == room          # the room is kept, filled part copied
    k, v = torch.randn(2, 2, 1, 4), torch.randn(2, 2, 1, 4)
    keys, values = cache.update(k, v, 0)
    assert torch.equal(keys, torch.cat([want_k[[3, 0]], k], dim=2))
    assert torch.equal(values, torch.cat([want_v[[3, 0]], v], dim=2))


@pytest.mark.needs_shared("tokenizers/qwen2.5-math-instruct/tokenizer.json")
def test_qwen_stop_set_from_a_generation_config_with_two_ids(shared_path, tmp_path):
    from transformers import AutoTokenizer, GenerationConfig

    tok = AutoTokenizer.from_pretrained(str(shared_path("tokenizers/qwen2.5-math-instruct")))
    im_end, eot = tok.convert_tokens_to_ids(["<|im_end|>", "<|endoftext|>"])
    GenerationConfig(eos_token_id=[im_end, eot]).save_pretrained(tmp_path)

    class M:
        generation_config = GenerationConfig.from_pretrained(tmp_path)

    ids = stop_token_ids(tok, M())
    assert set(ids) == {im_end, eot} and ids[0] == tok.eos_token_id


def test_processes_draw_disjoint_prompts_and_every_pass_is_reshuffled():
    from prmrl.rl.trainer import prompt_indices

    n, per, world = 10, 2, 2
    stream = [prompt_indices(n, 0, it, per, r, world) for it in range(5) for r in range(world)]
    first_pass, second_pass = sum(stream[:5], []), sum(stream[5:], [])
    assert sorted(first_pass) == list(range(n)) and sorted(second_pass) == list(range(n))
    assert first_pass != second_pass                       # reshuffled
    it0 = [prompt_indices(n, 0, 0, per, r, world) for r in range(world)]
    assert not set(it0[0]) & set(it0[1])                    # disjoint across processes
    # one process: the same order as before processes were dealt prompts in turn
    assert prompt_indices(n, 3, 1, 4, 0, 1) == [prompt_indices(n, 3, 0, 8, 0, 1)[i] for i in range(4, 8)]


def test_grader_workers_share_the_node_between_processes(monkeypatch):
    import os

    from prmrl.grading import default_num_workers

    cores = len(os.sched_getaffinity(0))
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "1")
    assert default_num_workers() == cores
    monkeypatch.setenv("LOCAL_WORLD_SIZE", str(cores * 4))
    assert default_num_workers() == 1
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    assert default_num_workers() == max(1, cores // 2)


def test_evaluation_shards_merge_to_the_whole():
    from prmrl.jobs.ppo import merge_shards

    merged = merge_shards([(3, {"greedy_accuracy": 1.0, "n_problems": 3}),
                           (1, {"greedy_accuracy": 0.0, "n_problems": 1}), (0, {})])
    assert merged == {"greedy_accuracy": 0.75, "n_problems": 4}


def test_offload_moves_the_frozen_models_out_for_the_update_and_back_for_scoring(policy):
    tr = PPOTrainer(str(policy), task=task(), ppo=PPOConfig(**SMALL), offload_frozen=True)
    moves = []
    real_to = tr.ref.to

    def spy(device, *a, **k):
        moves.append(str(device))
        return real_to(device, *a, **k)

    tr.ref.to = spy
    order = []
    for phase in ("score", "shape", "update"):
        fn = getattr(tr, phase)
        setattr(tr, phase, lambda *a, _fn=fn, _p=phase, **k: (order.append((_p, len(moves))), _fn(*a, **k))[1])
    tr.fit(iterations=1)
    # to the accelerator before scoring, to the host after the reference pass, before the update
    assert moves == [str(tr.acc.device), "cpu"]
    assert order == [("score", 1), ("shape", 1), ("update", 2)]


def test_the_critic_fits_values_without_dropout(policy):
    """A token classifier gets a dropout of 0.1 before its head by default; the critic has none,
    so in train mode two forwards give the same values."""
    tr = PPOTrainer(str(policy), task=task(), ppo=PPOConfig(**SMALL))
    tr.critic.train()
    torch.nn.init.normal_(tr.critic.score.weight)      # (it starts at 0: every value 0)
    assert all(m.p == 0 for m in tr.critic.modules() if isinstance(m, torch.nn.Dropout))
    ids = torch.randint(3, 20, (2, 9))
    with torch.no_grad():
        a, b = (tr.critic(input_ids=ids).logits for _ in range(2))
    assert torch.equal(a, b)


def test_sampling_on_cpu_decodes_with_eager_attention_and_restores_sdpa(monkeypatch):
    """The sampler switches a CPU model to eager attention while it samples (faster there for
    one query against the cache) and gives it back its SDPA afterwards, also after an error."""
    import functools

    model, tok = build_tiny_policy(seed=0, hidden=32, layers=2, heads=2, intermediate=64)
    assert model.config._attn_implementation == "sdpa"
    seen = []
    real = type(model).forward

    @functools.wraps(real)
    def spy(self, *args, **kwargs):
        seen.append(self.config._attn_implementation)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(type(model), "forward", spy)
    sample_tokens(model, tok, ["Start with 3. (a) 2 more."], n=2, budgets=4)
    assert seen and set(seen) == {"eager"} and model.config._attn_implementation == "sdpa"

    def boom(self, *args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(type(model), "forward", functools.wraps(real)(boom))
    with pytest.raises(RuntimeError, match="boom"):
        sample_tokens(model, tok, ["Start with 3."], budgets=4)
    assert model.config._attn_implementation == "sdpa"
