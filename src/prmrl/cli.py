"""The `prmrl` command line.

    prmrl demo                         SFT -> PPO (success reward) -> before/after evaluation
    prmrl sft     [--config F] [k=v ...]
    prmrl train   [--config F] [k=v ...]   PPO; reward terms from the reward.* section
    prmrl eval    --policy PATH [--config F] [k=v ...]
    prmrl check-config CONFIG

Every command takes a YAML config (``--config``) and ``section.key=value`` overrides.
Errors in input (config, paths, data) print one line and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from prmrl.config import Config, ConfigError, load_config

COMMANDS = {}


def command(name: str, help: str):
    def wrap(fn):
        COMMANDS[name] = (fn, help)
        return fn
    return wrap


def _config(args) -> Config:
    return load_config(args.config, args.overrides)


@command("demo", "the embedded pipeline end to end: SFT, PPO with the success reward, evaluation")
def cmd_demo(args) -> int:
    from prmrl.pipeline import demo, format_table

    cfg = _config(args)
    summary = demo(cfg)
    keys = ["greedy_accuracy", "sampling_accuracy", "steps_per_answer", "mean_response_tokens"]
    print(format_table({"before RL": summary["before"], "after RL": summary["after"]}, keys))
    print(f"\n{summary['details']['n_test_problems']} held-out problems; "
          f"wall time {summary['wall_seconds']:.0f} s; run folder: {cfg.run.out_dir}")
    return 0


@command("sft", "train the embedded task's SFT policy (cached for later commands)")
def cmd_sft(args) -> int:
    from prmrl.pipeline import run_sft

    cfg = _config(args)
    path = run_sft(cfg, force=True)
    print(f"SFT policy: {path}")
    return 0


@command("train", "PPO from model.policy (default: the cached SFT policy)")
def cmd_train(args) -> int:
    from prmrl.pipeline import run_ppo, run_sft

    cfg = _config(args)
    policy = cfg.model.policy or run_sft(cfg)
    out = run_ppo(cfg, policy, cfg.run.out_dir)
    print(json.dumps({k: round(v, 4) for k, v in out["last"].items() if isinstance(v, float)}, indent=1))
    print(f"policy: {out['policy']}")
    return 0


@command("eval", "evaluate a saved policy on the held-out problems")
def cmd_eval(args) -> int:
    from prmrl.models.factory import load_policy, load_tokenizer
    from prmrl.pipeline import evaluate, run_sft
    from prmrl.runs import write_json
    from prmrl.tasks import make_task

    cfg = _config(args)
    path = args.policy or cfg.model.policy or str(run_sft(cfg))
    tok = load_tokenizer(path)
    result = evaluate(cfg, load_policy(path), tok, make_task(cfg.task, tok))
    write_json(Path(cfg.run.out_dir) / "eval.json", {"policy": str(path), **result})
    print(json.dumps(result, indent=1))
    return 0


@command("check-config", "validate a config without loading weights")
def cmd_check_config(args) -> int:
    cfg = load_config(args.config or args.target, args.overrides)
    print(f"ok: {args.config or args.target} ({cfg.task.name}, shaping={cfg.reward.shaping})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="prmrl", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (fn, help) in COMMANDS.items():
        p = sub.add_parser(name, help=help, description=help)
        if name == "check-config":
            p.add_argument("target", nargs="?", help="config file to check")
        p.add_argument("--config", help="YAML config file (sections: task, model, sft, reward, ppo, eval, run)")
        if name == "eval":
            p.add_argument("--policy", help="path of the policy to evaluate")
        p.add_argument("overrides", nargs="*", metavar="section.key=value", help="config overrides")
        p.set_defaults(fn=fn)
    return parser


def main(argv: list[str] | None = None) -> int:
    from prmrl.pipeline import quiet_transformers, setup_threads

    parser = build_parser()
    args = parser.parse_args(argv)
    quiet_transformers()
    try:
        if args.command != "check-config":
            setup_threads(_config(args))
        return args.fn(args)
    except (ConfigError, FileNotFoundError, ValueError, OSError) as e:
        # Input errors (config, paths, data rows) get one line, not a traceback.
        print(f"prmrl {args.command}: error: {_one_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _one_line(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    return " ".join(text.split("\n")[:1]) if len(text) < 400 else text[:400] + "..."


if __name__ == "__main__":
    sys.exit(main())
