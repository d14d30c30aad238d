"""The GPU check: one script, at most about 8 minutes on one GPU, no weights to download.

    python benchmarks/gpu_check.py                      # on a GPU machine, with ../shared
    python benchmarks/gpu_check.py --tiny --device cpu  # the same steps, tiny, on CPU (a smoke test)

A policy with random weights and the real Qwen2.5-Math-1.5B-Instruct config
(``../shared/tokenizers/configs``), the shared Qwen2.5-Math tokenizer, the MATH problems of
``../shared/data``, and the batch of ``--config`` (default: the 1.5B Clip-Delta config, on ONE
GPU: its per-process batch). It prints, one line each:

1. padded vs unpadded: the log-probs of the same rows run alone and in a left-padded batch, under
   bf16 autocast (max abs difference; they should agree to bf16 rounding);
2. the KL at iteration 0 (the reference runs the actor's numeric path: it should be 0);
3. one PPO iteration at the config's batch (success reward + a small random native PRM with
   Clip-Delta): seconds per phase;
4. the peak ``torch.cuda.max_memory_allocated`` of that iteration against the planner's estimate
   for the same layout (``prmrl.check.memory_plan``, DDP on one GPU);
5. the sampler's tokens/s at 256 x 1024 (random weights rarely stop: every row runs to the end).

With ``--json PATH`` the figures are written there too. Nothing is asserted: it reports.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("PRMRL_SHARED", REPO.parent / "shared"))
DEFAULT_CONFIG = REPO / "configs" / "full" / "qwen2.5-math-1.5b-qwen-prm-clip-delta.yaml"


def shrink(config, **extra):
    """The same architecture with 2 small layers (the vocabulary and everything else kept)."""
    config.update({"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
                   "num_attention_heads": 4, "num_key_value_heads": 2, **extra})
    if getattr(config, "layer_types", None) is not None:
        config.layer_types = config.layer_types[:2]
    if getattr(config, "max_window_layers", None) is not None:
        config.max_window_layers = min(config.max_window_layers, 2)
    return config


def log(out: dict, key: str, value, text: str) -> None:
    out[key] = value
    print(text, flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default=str(DEFAULT_CONFIG))
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--tiny", action="store_true", help="a 2-layer model and small batches (CPU smoke test)")
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args()

    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from prmrl.check import memory_plan
    from prmrl.config import load_config
    from prmrl.memory import ModelShape
    from prmrl.models.factory import load_scalar_model, quiet_transformers, save_model
    from prmrl.models.forward import token_logprobs
    from prmrl.models.sampler import generate
    from prmrl.rl.trainer import LocalAccelerator, PPOTrainer, default_accelerator
    from prmrl.tasks import make_task

    quiet_transformers()
    tok_dir = SHARED / "tokenizers" / "qwen2.5-math-instruct"
    cfg_dir = SHARED / "tokenizers" / "configs" / "Qwen2.5-Math-1.5B-Instruct"
    missing = [str(p) for p in (tok_dir, cfg_dir, SHARED / "data" / "math500") if not p.exists()]
    if missing:
        print(f"gpu_check: needs {', '.join(missing)} (the shared folder beside the clone)", file=sys.stderr)
        return 2
    device = torch.device(args.device)
    gpu = device.type == "cuda"
    out: dict = {"device": torch.cuda.get_device_name(device) if gpu else "cpu", "tiny": args.tiny}
    print(f"gpu_check on {out['device']}; torch {torch.__version__}", flush=True)
    t_start = time.time()
    torch.manual_seed(0)

    tok = AutoTokenizer.from_pretrained(str(tok_dir))
    config = AutoConfig.from_pretrained(str(cfg_dir))
    if args.tiny:
        config = shrink(config)
    policy = AutoModelForCausalLM.from_config(config, dtype=torch.float32).to(device)
    overrides = ["run.progress=false", "reward.prm=PLACEHOLDER", "reward.prm_format=native",
                 "reward.trust_remote_code=false", "reward.shaping=clip_delta", "ppo.iterations=1"]
    if args.tiny:
        overrides += ["ppo.prompts_per_iteration=2", "ppo.samples_per_prompt=2", "ppo.max_new_tokens=16",
                      "ppo.minibatch_size=2", "ppo.micro_batch_size=1"]
    cfg = load_config(args.config, overrides)
    rows, new_tokens = (8, 32) if args.tiny else (256, 1024)

    # 1. padded vs unpadded, bf16 autocast
    task = make_task(cfg.task, tok)
    prompts = [task.prompt(q) for q in task.train_questions[:4]]
    enc = [tok(p, add_special_tokens=False)["input_ids"] for p in prompts]
    width = max(map(len, enc))
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    ids = torch.tensor([[pad] * (width - len(e)) + e for e in enc], device=device)
    mask = torch.tensor([[0] * (width - len(e)) + [1] * len(e) for e in enc], device=device)
    n = min(map(len, enc)) - 1                         # score the last n tokens of every prompt
    with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16):
        batched = token_logprobs(policy, ids, mask, n, entropy=False)[0]
        alone = torch.cat([token_logprobs(policy, torch.tensor([e], device=device),
                                          torch.ones(1, len(e), dtype=torch.long, device=device), n,
                                          entropy=False)[0] for e in enc])
    diff = float((batched - alone).abs().max())
    log(out, "padded_vs_unpadded_max_abs", diff,
        f"1. padded vs unpadded log-probs (bf16 autocast, {len(enc)} rows of {min(map(len, enc))}-{width} "
        f"tokens): max |diff| {diff:.2e}")

    # 2-4. one PPO iteration at the config's batch, with a small random native PRM
    with tempfile.TemporaryDirectory() as tmp:
        small = shrink(AutoConfig.from_pretrained(str(cfg_dir)), tie_word_embeddings=False)
        save_model(AutoModelForCausalLM.from_config(small), tok, Path(tmp) / "prm-lm")
        save_model(load_scalar_model(Path(tmp) / "prm-lm"), tok, Path(tmp) / "prm")
        acc = default_accelerator("bfloat16") if gpu else LocalAccelerator("cpu", mixed_precision="bf16")
        tr = PPOTrainer(policy, tokenizer=tok, ppo=cfg.ppo, reward=cfg.reward.__class__(
            **{**cfg.reward.__dict__, "prm": str(Path(tmp) / "prm")}), task=task, precision="bfloat16",
            accelerator=acc, gradient_checkpointing=cfg.model.gradient_checkpointing,
            offload_frozen=cfg.run.offload_frozen)
        if gpu:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        qs, gs = tr._problems(0)
        times, t = {}, time.time()
        b = tr.generate(qs, gs)
        times["generate"], t = time.time() - t, time.time()
        tr.score(b)
        times["score"], t = time.time() - t, time.time()
        tr.shape(b)
        times["shape"], t = time.time() - t, time.time()
        kl = float(b.kl[b.response_mask.bool()].abs().max())
        log(out, "kl_iteration0_max_abs", kl, f"2. KL at iteration 0: max |kl| over {int(b.response_mask.sum())} "
                                              f"response tokens {kl:.2e}")
        tr.advantages(b)
        tr.update(b)
        times["update"] = time.time() - t
        if gpu:
            torch.cuda.synchronize()
        log(out, "ppo_iteration_seconds", times,
            f"3. one PPO iteration, {len(b)} answers (<= {cfg.ppo.max_new_tokens} new tokens, mean "
            f"{float(b.response_mask.sum(1).float().mean()):.0f}): "
            + ", ".join(f"{k} {v:.1f} s" for k, v in times.items()))
        peak = torch.cuda.max_memory_allocated(device) / 1e9 if gpu else float("nan")
        shapes = {"policy": ModelShape.from_config_json(cfg_dir / "config.json")} if not args.tiny else {
            "policy": ModelShape.from_dict(config.to_dict(), "tiny")}
        shapes["PRM"] = ModelShape.from_dict(small.to_dict(), "small PRM").scalar()
        prompt_len = max(len(tok(task.prompt(q), add_special_tokens=False)["input_ids"]) for q in qs)
        est = memory_plan(cfg, world_size=1, shapes=shapes, prompt_tokens=(prompt_len, prompt_len),
                          parallel="ddp", eval_rows=0)
        log(out, "peak_gb", {"measured": peak, "planned": est.peak_gb, "planned_phase": est.peak_phase},
            f"4. peak memory of the iteration: {peak:.1f} GB measured (torch.cuda.max_memory_allocated), "
            f"{est.peak_gb:.1f} GB planned ({est.peak_phase}; DDP on one GPU, prompts <= {prompt_len} tokens)")
        del tr, b

    # 5. the sampler at 256 x 1024
    qs = (task.train_questions * ((rows // len(task.train_questions)) + 1))[:rows]
    if gpu:
        torch.cuda.synchronize()
    t = time.time()
    with torch.autocast(device.type, dtype=torch.bfloat16):
        gen = generate(policy.eval(), tok, [task.prompt(q) for q in qs], max_new_tokens=new_tokens,
                       temperature=1.0)
    if gpu:
        torch.cuda.synchronize()
    secs = time.time() - t
    tokens = int(gen.response_mask.sum())
    log(out, "sampler_tokens_per_s", tokens / secs,
        f"5. sampler: {rows} x {new_tokens}: {tokens} tokens in {secs:.1f} s = {tokens / secs:,.0f} tokens/s")
    out["wall_seconds"] = time.time() - t_start
    print(f"total {out['wall_seconds']:.0f} s", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
