"""The memory planner (prmrl.memory): parameter counts against known model sizes and against
transformers' own modules, each formula on numbers worked by hand, the per-layer activation and
KV-cache formulas against what a tiny Qwen2 really saves, and `prmrl check-config` / the header
script around it. No GPU: the planner is arithmetic; the measurements run a tiny model on CPU under
bf16 autocast, which saves the same tensors as on the GPU (autocast's op lists agree for these
ops; SDPA with a padding mask saves q, k, v, out and a logsumexp on both)."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from prmrl.memory import (CHUNK_BYTES, GB, ModelShape, Setup, kv_bytes_per_token, layer_activation_bytes,
                          plan)

REPO = Path(__file__).resolve().parents[1]

# A config.json small enough to count by hand (Qwen2: q/k/v biases; tied embeddings).
TINY = {"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": 8,
        "intermediate_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2,
        "num_key_value_heads": 1, "vocab_size": 10, "tie_word_embeddings": True}
# Math-Shepherd's PRM (peiyi9979/math-shepherd-mistral-7b-prm) is Mistral-7B-v0.1 fine-tuned:
# its published config.json fields.
MISTRAL_7B = {"architectures": ["MistralForCausalLM"], "model_type": "mistral", "hidden_size": 4096,
              "intermediate_size": 14336, "num_hidden_layers": 32, "num_attention_heads": 32,
              "num_key_value_heads": 8, "vocab_size": 32000, "tie_word_embeddings": False}


def tiny_shape(tmp_path, **over) -> ModelShape:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**TINY, **over}))
    return ModelShape.from_config_json(path)


# ---- parameter counts -----------------------------------------------------------------------

def test_tiny_count_by_hand(tmp_path):
    m = tiny_shape(tmp_path)
    # head_dim 4, kv dim 4. Per layer: q 8*8+8, k 8*4+4, v 8*4+4, o 8*8, MLP 3*8*16, norms 2*8
    layer = 72 + 36 + 36 + 64 + 384 + 16
    assert m.layer_params == layer == 608
    assert m.params == 10 * 8 + 2 * layer + 8 == 1304     # embedding (tied head) + layers + norm
    assert m.linear_params == 2 * (608 - 16) + 80           # what autocast casts: tied head too
    critic = m.scalar()                                     # a token head h -> 1, with bias
    assert critic.params == 1304 + 8 + 1
    untied = tiny_shape(tmp_path, tie_word_embeddings=False)
    assert untied.params == 1304 + 80


@pytest.mark.parametrize("over, cls", [
    ({}, "Qwen2ForCausalLM"),
    ({"tie_word_embeddings": False}, "Qwen2ForCausalLM"),
    ({"architectures": ["Qwen2ForTokenClassification"], "num_labels": 1}, "Qwen2ForTokenClassification"),
    ({**MISTRAL_7B, "hidden_size": 16, "intermediate_size": 24, "num_hidden_layers": 2,
      "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 50}, "MistralForCausalLM"),
])
def test_counts_match_transformers(tmp_path, over, cls):
    import transformers

    d = {**TINY, **over}
    m = tiny_shape(tmp_path, **over)
    config_cls = transformers.AutoConfig.for_model(d["model_type"])
    fields = {k: v for k, v in d.items() if k not in ("architectures", "model_type")}
    model = getattr(transformers, cls)(type(config_cls)(**fields))
    assert m.params == sum(p.numel() for p in model.parameters())


@pytest.mark.needs_shared("tokenizers/configs/Qwen2.5-Math-1.5B-Instruct/config.json",
                          "tokenizers/configs/Qwen2.5-Math-7B-Instruct/config.json",
                          "tokenizers/configs/Qwen2.5-Math-PRM-7B/config.json")
def test_full_size_counts(shared_path):
    root = shared_path("tokenizers/configs")
    small = ModelShape.from_config_json(root / "Qwen2.5-Math-1.5B-Instruct")
    big = ModelShape.from_config_json(root / "Qwen2.5-Math-7B-Instruct")
    prm = ModelShape.from_config_json(root / "Qwen2.5-Math-PRM-7B")
    assert small.params == 1_543_714_304            # Qwen2.5-1.5B: 1.54B
    assert big.params == 7_615_616_512              # Qwen2.5-7B: 7.61B
    assert prm.head == "qwen_prm" and prm.num_labels == 2
    assert abs(prm.params / 7.07e9 - 1) < 0.005     # 7.07B backbone + its two-layer head
    assert big.scalar().params == big.params - big.vocab * big.hidden + big.hidden + 1


def test_mistral_7b_count():
    assert ModelShape.from_dict(MISTRAL_7B).params == 7_241_732_096    # Mistral-7B-v0.1: 7.24B


# ---- formulas on numbers --------------------------------------------------------------------

SMALL = ModelShape(hidden=64, layers=4, heads=4, kv_heads=2, intermediate=128, vocab=1000,
                   qkv_bias=True, tied=True)


def test_resident_states_by_hand():
    s = Setup(parallel="ddp", world_size=8, micro_batch=1, rollout_rows=8, samples_per_prompt=2,
              prompt_tokens=16, max_new_tokens=32, cuda_context_gb=0)
    p = plan(SMALL, critic=SMALL.scalar(), setup=s)
    n = SMALL.params + SMALL.scalar().params
    assert p.resident["weights fp32"] == 4 * n and p.resident["grads fp32"] == 4 * n
    assert p.resident["AdamW fp32"] == 8 * n
    assert "DDP buckets" not in p.resident          # gradients are views into the buckets
    copies = plan(SMALL, critic=SMALL.scalar(), setup=replace(s, ddp_bucket_view=False))
    assert copies.resident["DDP buckets"] == 4 * n
    # reference = frozen_copy: Linear weights 2 B, embedding (tied head) and norms 4 B
    linear = SMALL.layers * SMALL.proj_params_per_layer
    assert p.frozen["reference"] == 2 * linear + 4 * (SMALL.params - linear)
    fp32 = plan(SMALL, critic=None, setup=replace(s, mixed_precision=False))
    assert fp32.frozen["reference"] == 4 * SMALL.params and "critic" not in fp32.params


def test_fsdp2_divides_by_world_size():
    s = Setup(parallel="fsdp2", world_size=1, rollout_rows=8, samples_per_prompt=2)
    one = plan(SMALL, critic=SMALL.scalar(), frozen={"PRM": SMALL.scalar()}, setup=s)
    eight = plan(SMALL, critic=SMALL.scalar(), frozen={"PRM": SMALL.scalar()}, setup=replace(s, world_size=8))
    for k in ("weights fp32", "grads fp32", "AdamW fp32"):
        assert eight.resident[k] == pytest.approx(one.resident[k] / 8)
    # the reference: an exact float32 copy, sharded; a scorer is not sharded
    assert eight.frozen["reference"] == pytest.approx(4 * SMALL.params / 8)
    assert eight.frozen["PRM"] == one.frozen["PRM"]
    # the sampler: a whole bf16 copy of the actor on every GPU; it decodes with no weights gathered
    assert eight.resident["sampler copy"] == 2 * SMALL.params
    assert set(eight.phases["generate"]) == {"KV cache", "step logits"}
    # computing: the root (embedding = tied head, final norm) and two layers gathered in bf16; in
    # the update the head's unsharded bf16 gradient and one layer's in bf16 and float32
    root = SMALL.vocab * SMALL.hidden + SMALL.hidden
    critic_root = root + SMALL.hidden + 1                   # + its token head; the larger of the two
    assert eight.phases["shape"]["FSDP2 gathered"] == 2 * (critic_root + 2 * SMALL.layer_params)
    assert eight.phases["update"]["FSDP2 gathered"] == 2 * (root + 2 * SMALL.layer_params)
    assert eight.phases["update"]["FSDP2 unsharded grads"] == 2 * SMALL.vocab * SMALL.hidden + 6 * SMALL.layer_params
    assert "FSDP2 accumulated grads" not in eight.phases["update"]


def test_fsdp2_micro_batches_accumulate_unsharded_float32_gradients():
    s = Setup(parallel="fsdp2", world_size=8, micro_batch=2, minibatch=8, rollout_rows=8)
    p = plan(SMALL, critic=SMALL.scalar(), setup=s)
    assert p.phases["update"]["FSDP2 accumulated grads"] == 4 * SMALL.params
    ddp = plan(SMALL, critic=SMALL.scalar(), setup=replace(s, parallel="ddp"))
    assert not any("accumulated" in k for k in ddp.phases["update"])     # into the bucket views


def test_evaluation_is_split_over_the_processes():
    s = Setup(world_size=8, rollout_rows=8, samples_per_prompt=2, prompt_tokens=10, max_new_tokens=20,
              eval_rows=500, eval_prompt_tokens=10, eval_max_new_tokens=20)
    p = plan(SMALL, setup=s)
    assert p.phases["evaluate"]["KV cache"] == pytest.approx(63 * 30 * 768 * (1 + 1 / 4))    # ceil(500 / 8)


def test_kv_cache_by_hand():
    # 4 layers x kv dim 32: keys float32 (4 B) and values bf16 (2 B) under autocast -> 768 B/token
    assert kv_bytes_per_token(SMALL, "autocast") == 4 * 32 * 6 == 768
    assert kv_bytes_per_token(SMALL, "bf16") == 4 * 32 * 4
    s = Setup(rollout_rows=6, samples_per_prompt=3, prompt_tokens=10, max_new_tokens=20, sampler_batch=512)
    p = plan(SMALL, setup=s)
    assert p.phases["generate"]["KV cache"] == pytest.approx(6 * 30 * 768 * (1 + 1 / 4))
    assert p.phases["generate"]["step logits"] == 6 * 1000 * 12
    assert p.phases["generate"]["autocast weight copies"] == 2 * SMALL.linear_params
    # the sampler holds at most sampler_batch // n prompts' rows at once
    capped = plan(SMALL, setup=replace(s, rollout_rows=600, sampler_batch=12))
    assert capped.phases["generate"]["KV cache"] == pytest.approx(12 * 30 * 768 * (1 + 1 / 4))


def test_update_by_hand():
    s = Setup(micro_batch=2, prompt_tokens=10, max_new_tokens=20, rollout_rows=4, samples_per_prompt=2)
    p = plan(SMALL, setup=s)
    L, R, h = 30, 20, 64
    per_layer = 26 * h + 8 * 64 + 8 * 128 + 4 * 4 + 8 + 2 * L
    assert layer_activation_bytes(SMALL, L, "autocast") == per_layer
    outside = L * (8 * h + 12) + (R + 1) * 2 * h
    assert p.phases["update"]["activations"] == 2 * (L * 5 * per_layer + outside)     # 4 layers + 1
    assert p.phases["update"]["logits + grad"] == 2 * 2 * (R + 1) * 1000 * 2 + 2 * CHUNK_BYTES
    ck = plan(SMALL, setup=replace(s, gradient_checkpointing=True))
    assert ck.phases["update"]["activations"] == 2 * (L * (4 * 4 * h + 2 * per_layer) + outside)
    assert ck.phases["update"]["activations"] < p.phases["update"]["activations"]


def test_checkpointing_lowers_the_update_of_a_real_size_model():
    m = ModelShape(hidden=1536, layers=28, heads=12, kv_heads=2, intermediate=8960, vocab=151936,
                   tied=True, qkv_bias=True)
    s = Setup(micro_batch=4, prompt_tokens=512, max_new_tokens=1024, rollout_rows=256)
    off, on = plan(m, critic=m.scalar(), setup=s), plan(m, critic=m.scalar(),
                                                       setup=replace(s, gradient_checkpointing=True))
    assert on.gb("update") < off.gb("update") - 15
    assert off.notes and f"{on.gb('update'):.1f}" in off.notes[-1]


def test_offload_removes_frozen_models_from_the_update_and_the_evaluation_after_it():
    prm = replace(SMALL.scalar(), layers=40)
    s = Setup(micro_batch=1, rollout_rows=4, samples_per_prompt=2, prompt_tokens=8, max_new_tokens=8,
              eval_rows=4)
    on_gpu = plan(SMALL, critic=SMALL.scalar(), frozen={"PRM": prm}, setup=s)
    off = plan(SMALL, critic=SMALL.scalar(), frozen={"PRM": prm}, setup=replace(s, offload_frozen=True))
    frozen = sum(on_gpu.frozen.values())
    for phase in ("update", "evaluate"):
        assert off.phase_bytes(phase) == pytest.approx(on_gpu.phase_bytes(phase) - frozen)
    for phase in ("generate", "score", "shape"):      # (the first iteration samples with them on)
        assert off.phase_bytes(phase) == on_gpu.phase_bytes(phase)


def test_peak_is_the_largest_phase_and_the_table_names_it():
    s = Setup(micro_batch=64, rollout_rows=8, samples_per_prompt=2, prompt_tokens=64, max_new_tokens=64)
    p = plan(SMALL, critic=SMALL.scalar(), setup=s)
    assert p.peak_phase == "update"
    assert p.peak_gb == pytest.approx(max(p.phase_bytes(k) for k in p.phases) / GB)
    lines = p.lines(80)
    assert lines[0].startswith("memory per GPU") and lines[-2].startswith("  peak")
    assert any(line.startswith("  update") and line.endswith("<- peak") for line in lines)


def test_scoring_with_likelihood_features_holds_vocabulary_sized_log_probs():
    base = SMALL.scalar().deepened(2)
    lik = SMALL.scalar().deepened(2, likelihood=True)
    assert lik.params == base.params + SMALL.vocab * SMALL.hidden + SMALL.hidden
    s = Setup(rollout_rows=100, samples_per_prompt=4, prompt_tokens=10, max_new_tokens=10, score_batch=64)
    p = plan(SMALL, frozen={"PRM": lik}, setup=s)
    assert p.phases["score"]["PRM likelihood log-probs"] == 64 * 20 * SMALL.vocab * 10


# ---- the formulas against a tiny Qwen2 ------------------------------------------------------

def _saved_bytes(h, inter, heads, kv, layers, *, compute, ckpt=False, T=48):
    """Bytes of the tensors a tiny Qwen2's forward saves for backward (parameters left out),
    with a left-padded row so the attention has a padding mask, as PPO's batches do."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    cfg = Qwen2Config(vocab_size=64, hidden_size=h, intermediate_size=inter, num_hidden_layers=layers,
                      num_attention_heads=heads, num_key_value_heads=kv, max_position_embeddings=128)
    model = Qwen2ForCausalLM(cfg).train()
    model = model.to(torch.bfloat16) if compute == "bf16" else model.float()
    if ckpt:
        model.activation_checkpointing_enable({"use_reentrant": False})    # as PPOTrainer does
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    ids = torch.randint(0, 64, (2, T))
    mask = torch.ones(2, T, dtype=torch.long)
    mask[0, :5] = 0
    seen: dict[int, int] = {}

    def pack(t):
        st = t.untyped_storage()
        if st.data_ptr() not in params:
            seen[st.data_ptr()] = max(seen.get(st.data_ptr(), 0), st.nbytes())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=compute != "fp32"):
            model(input_ids=ids, attention_mask=mask, logits_to_keep=1)
    return sum(seen.values())


@pytest.mark.parametrize("compute", ["autocast", "bf16", "fp32"])
@pytest.mark.parametrize("dims", [(64, 160, 4, 2), (128, 160, 4, 2), (64, 320, 8, 4)])
def test_layer_activations_match_a_tiny_qwen2(compute, dims):
    h, inter, heads, kv = dims
    T = 48
    one = _saved_bytes(h, inter, heads, kv, 1, compute=compute, T=T)
    two = _saved_bytes(h, inter, heads, kv, 2, compute=compute, T=T)
    m = ModelShape(hidden=h, layers=1, heads=heads, kv_heads=kv, intermediate=inter, vocab=64, qkv_bias=True)
    # autocast also saves each layer's 16-bit weight copies (counted apart, as weight copies)
    casts = 2 * m.proj_params_per_layer - 2 * (m.q_dim + 2 * m.kv_dim) if compute == "autocast" else 0
    assert two - one - casts == 2 * T * layer_activation_bytes(m, T, compute)


def test_checkpointing_keeps_only_layer_inputs():
    h, T = 64, 48
    one = _saved_bytes(h, 160, 4, 2, 1, compute="autocast", ckpt=True, T=T)
    two = _saved_bytes(h, 160, 4, 2, 2, compute="autocast", ckpt=True, T=T)
    assert two - one == 2 * T * 4 * h          # the float32 residual entering each layer


def test_kv_cache_dtypes_under_autocast():
    from transformers import DynamicCache, Qwen2Config, Qwen2ForCausalLM

    cfg = Qwen2Config(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    model = Qwen2ForCausalLM(cfg).float().eval()
    cache = DynamicCache()
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        model(input_ids=torch.randint(0, 64, (2, 5)), use_cache=True, cache=cache, logits_to_keep=1)
    layer = cache.layers[0]
    m = ModelShape(hidden=32, layers=1, heads=4, kv_heads=2, intermediate=64, vocab=64)
    per_token = (layer.keys.element_size() + layer.values.element_size()) * layer.keys.shape[1] * layer.keys.shape[3]
    assert (layer.keys.dtype, layer.values.dtype) == (torch.float32, torch.bfloat16)
    assert per_token == kv_bytes_per_token(m, "autocast")


# ---- check-config and the header script -----------------------------------------------------

def test_check_config_prints_the_table(tmp_path, capsys, monkeypatch):
    from prmrl.check import check_config, main_check

    monkeypatch.chdir(REPO)
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text(json.dumps(TINY))
    report = check_config(None, ["task.name=arith", f"model.policy={tmp_path / 'm'}"])
    assert report.memory is not None and report.memory.params["policy"] == 1304
    assert any(m.startswith("memory: estimated peak") and "within run.gpu_memory_gb=80" in m
               for level, m in report.findings if level == "ok"), report.lines()
    main_check(["configs/demo.yaml"])          # the SFT policy: no config.json to read
    out = capsys.readouterr().out.splitlines()
    assert any(line.startswith("ok: memory: no estimate: model.policy is unset") for line in out), out
    assert out[-1].endswith("0 error(s), 0 warning(s)")


@pytest.mark.needs_shared("tokenizers/configs/Qwen2.5-Math-7B-Instruct/config.json")
def test_check_config_warns_above_the_limit(shared_path, capsys, monkeypatch):
    from prmrl.check import main_check

    monkeypatch.chdir(REPO)
    folder = shared_path("tokenizers/configs/Qwen2.5-Math-7B-Instruct")
    main_check(["configs/demo.yaml", f"model.policy={folder}", "run.parallel=ddp"]
               if _has_key("run", "parallel") else ["configs/demo.yaml", f"model.policy={folder}"])
    out = capsys.readouterr().out.splitlines()
    warn = [line for line in out if line.startswith("warning: memory:")]
    assert len(warn) == 1 and "above run.gpu_memory_gb=80" in warn[0], out
    table = out.index(next(line for line in out if line.startswith("memory per GPU")))
    assert out[table + 1].startswith("  layout   ddp over 1 GPU")
    assert any(line.startswith("  params   policy 7.62e9") for line in out[table:])
    assert out[-1].startswith("configs/demo.yaml")


def _has_key(section: str, key: str) -> bool:
    from prmrl.config import Config

    return hasattr(getattr(Config(), section), key)


def _script():
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        import plan_memory
    finally:
        sys.path.pop(0)
    return plan_memory


def test_header_block_is_replaced_between_its_markers():
    pm = _script()
    old = "# title\n# GPU memory per process: old arithmetic\n#   more of it\ntask:\n  name: arith\n"
    once = pm.rewrite(old, [pm.BEGIN, "# plan 1", pm.END])
    assert once == f"# title\n{pm.BEGIN}\n# plan 1\n{pm.END}\ntask:\n  name: arith\n"
    twice = pm.rewrite(once, [pm.BEGIN, "# plan 2", pm.END])
    assert twice == once.replace("plan 1", "plan 2")


FULL = sorted((REPO / "configs" / "full").glob("*.yaml"))


@pytest.mark.needs_shared("tokenizers/configs/Qwen2.5-Math-1.5B-Instruct/config.json",
                          "tokenizers/configs/Qwen2.5-Math-7B-Instruct/config.json",
                          "tokenizers/configs/Qwen2.5-Math-PRM-7B/config.json",
                          "tokenizers/qwen2.5-math-instruct", "data/math/train.jsonl",
                          "data/math500/test.jsonl")
@pytest.mark.parametrize("path", FULL, ids=[p.stem for p in FULL])
def test_full_configs_headers_are_the_planners_and_fit(path, capsys, monkeypatch):
    """Each header block is what scripts/plan_memory.py writes with the flags it names, and the
    plan's peak is under 80 GB."""
    pm = _script()
    monkeypatch.chdir(REPO)
    text = path.read_text()
    command = next(line for line in text.splitlines() if line.startswith("# python scripts/plan_memory.py"))
    flags = command.split()[3:-2]              # between the script and "--write CONFIG"
    assert pm.main([*flags, "--check", str(path.relative_to(REPO))]) == 0, capsys.readouterr().out
