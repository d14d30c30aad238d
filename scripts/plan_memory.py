#!/usr/bin/env python3
"""Print the GPU memory plan of PPO configs (``prmrl.memory``), or rewrite their header block.

    python scripts/plan_memory.py configs/full/*.yaml                 # print each plan
    python scripts/plan_memory.py --parallel fsdp2 --world-size 8 \\
        --tokenizer ../shared/tokenizers/qwen2.5-math-instruct --write configs/full/*.yaml
    python scripts/plan_memory.py --check ...                         # exit 1: a header is stale
                                                                      # or a plan is over the limit

It plans exactly as ``prmrl check-config`` does (``prmrl.check.memory_plan``); the flags set what
a config cannot say yet (the layout keys ``run.parallel`` etc. before config.py has them) or what
check-config measures only when the policy's tokenizer is at hand (the longest prompt). A model
whose config.json is nowhere local is planned from:

- ``KNOWN_CONFIGS`` below (the published config.json fields of hub models absent from
  ../shared/tokenizers/configs);
- for a native PRM at a placeholder path (one you train with ``prmrl train-rm``): the policy
  with a scalar head, ``rm.extra_layers`` more layers and ``rm.likelihood_features``, as
  ``prmrl.models.factory.load_scalar_model`` builds it.

The header block sits between ``BEGIN`` and ``END`` below; ``--write`` replaces it, or on a
first run the hand-written "# GPU memory per process" paragraph it supersedes.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

BEGIN = "# ---- GPU memory: written by scripts/plan_memory.py (prmrl.memory); do not edit by hand ----"
END = "# ---- end of GPU memory ----"
OLD_START = "# GPU memory per process:"

# config.json fields of hub models not under ../shared/tokenizers/configs. Math-Shepherd's PRM is
# a full fine-tune of Mistral-7B-v0.1 and has its config.json (MistralForCausalLM).
KNOWN_CONFIGS = {
    "peiyi9979/math-shepherd-mistral-7b-prm": {
        "architectures": ["MistralForCausalLM"], "model_type": "mistral", "hidden_size": 4096,
        "intermediate_size": 14336, "num_hidden_layers": 32, "num_attention_heads": 32,
        "num_key_value_heads": 8, "vocab_size": 32000, "tie_word_embeddings": False},
}


def shapes_for(cfg) -> tuple[dict, list[str]]:
    """Shapes of models check-config cannot read (see the module doc), and what was assumed."""
    from prmrl.check import find_config_json
    from prmrl.memory import ModelShape

    shapes, notes = {}, []
    r = cfg.reward
    if r.prm is not None and r.prm_url is None:
        try:
            find_config_json(r.prm)
        except LookupError:
            if r.prm in KNOWN_CONFIGS:
                shapes["PRM"] = ModelShape.from_dict(KNOWN_CONFIGS[r.prm], name=r.prm)
                notes.append(f"PRM shape from {r.prm}'s published config.json (KNOWN_CONFIGS)")
            elif r.prm_format == "native":
                policy = ModelShape.from_config_json(find_config_json(cfg.model.policy))
                shapes["PRM"] = policy.scalar().deepened(cfg.rm.extra_layers, cfg.rm.likelihood_features)
                notes.append(f"PRM: the policy + a scalar head + rm.extra_layers={cfg.rm.extra_layers} "
                             f"layers, likelihood features {'on' if cfg.rm.likelihood_features else 'off'}")
    return shapes, notes


def plan_for(path: Path, args):
    from prmrl.check import longest_prompt_tokens, memory_plan
    from prmrl.config import load_config

    cfg = load_config(str(path), [])
    prompt_tokens, why = args.prompt_tokens, "given"
    if prompt_tokens is None and args.tokenizer:
        from transformers import AutoTokenizer

        prompt_tokens = longest_prompt_tokens(cfg, AutoTokenizer.from_pretrained(args.tokenizer))
        why = f"the task's longest prompt, {Path(args.tokenizer).name} tokenizer"
    layout = {k: v for k, v in {"parallel": args.parallel, "micro_batch": args.micro_batch,
                                "gradient_checkpointing": args.checkpointing,
                                "offload_frozen": args.offload}.items() if v is not None}
    shapes, notes = shapes_for(cfg)
    p = memory_plan(cfg, world_size=args.world_size, prompt_tokens=prompt_tokens, shapes=shapes, **layout)
    if why != "given":
        p.notes[0] = (f"prompts <= {p.setup.prompt_tokens} tokens in training, <= "
                      f"{p.setup.eval_prompt_tokens} in evaluation ({why})")
    p.notes[1:1] = notes
    from prmrl.check import gpu_memory_gb

    pending = [f"run.{k}: {v}" for k, v in {"parallel": args.parallel}.items()
               if v is not None and not hasattr(cfg.run, k)]
    return cfg, p, args.limit if args.limit is not None else gpu_memory_gb(cfg), pending


def header(p, limit: float, command: str, pending: list[str] = ()) -> list[str]:
    lines = [BEGIN,
             f"# {command}",
             *([f"# The layout comes from the flags: add {', '.join(pending)} under run: once config.py "
                f"has the key."] if pending else []),
             "# An ESTIMATE from arithmetic, not a measurement: the models' config.json shapes, the",
             "# layout and the batch settings (formulas and sources: src/prmrl/memory.py). GB = 1e9 B;",
             "# an 80 GB GPU holds 85.9e9 B, the rest is left to allocator fragmentation.",
             *[f"# {line}" for line in p.lines(limit)], END]
    return lines


def rewrite(text: str, block: list[str]) -> str:
    lines = text.splitlines()
    if BEGIN in lines and END in lines:
        a, b = lines.index(BEGIN), lines.index(END)
        lines[a:b + 1] = block
    else:
        starts = [i for i, line in enumerate(lines) if line.startswith(OLD_START)]
        if starts:
            a = starts[0]
            b = a
            while b < len(lines) and lines[b].startswith("#"):
                b += 1
            lines[a:b] = block
        else:        # after the leading comment block
            a = 0
            while a < len(lines) and lines[a].startswith("#"):
                a += 1
            lines[a:a] = ["#", *block]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("configs", nargs="*", type=Path)
    ap.add_argument("--parallel", choices=["ddp", "fsdp2"], help="layout (default: run.parallel, else ddp)")
    ap.add_argument("--world-size", type=int, help="processes (GPUs); default: run.num_processes, "
                                                   "$WORLD_SIZE, else 8 for fsdp2 and 1 for ddp")
    ap.add_argument("--micro-batch", type=int, help="default: ppo.micro_batch_size, else minibatch_size")
    ap.add_argument("--checkpointing", type=lambda s: s == "on", metavar="on|off",
                    help="default: model.gradient_checkpointing")
    ap.add_argument("--offload", type=lambda s: s == "on", metavar="on|off", help="default: run.offload_frozen")
    ap.add_argument("--prompt-tokens", type=int, nargs=2, metavar=("TRAIN", "EVAL"),
                    help="longest training and evaluated prompts planned for")
    ap.add_argument("--tokenizer", help="measure the task's longest prompt with this tokenizer")
    ap.add_argument("--limit", type=float, help="GB per GPU (default: run.gpu_memory_gb, else 80)")
    ap.add_argument("--write", action="store_true", help="rewrite each config's header block")
    ap.add_argument("--check", action="store_true",
                    help="exit 1 when a header block differs from the plan or a plan is over the limit")
    args = ap.parse_args(argv)
    paths = args.configs or sorted(Path("configs/full").glob("*.yaml"))
    flags = [a for a in (argv if argv is not None else sys.argv[1:])
             if a not in ("--write", "--check") and not a.endswith(".yaml")]
    command = "python scripts/plan_memory.py " + " ".join(shlex.quote(a) for a in flags) + " --write CONFIG"
    command = command.replace("  ", " ")
    status = 0
    for path in paths:
        cfg, p, limit, pending = plan_for(path, args)
        print(f"{path}:")
        for line in p.lines(limit):
            print(f"  {line}")
        if p.peak_gb > limit:
            print(f"  OVER: {p.peak_gb:.1f} GB > {limit:g} GB")
            status = 1 if args.check else status
        text = path.read_text()
        new = rewrite(text, header(p, limit, command, pending))
        if args.write and new != text:
            path.write_text(new)
            print(f"  header rewritten")
        elif args.check and new != text:
            print(f"  STALE: the header block of {path} differs from this plan")
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
