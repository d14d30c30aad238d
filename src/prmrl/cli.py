"""The `prmrl` command line.

    prmrl demo [--seeds 0-3 --threads 1,2]   SFT -> GRPO (success reward) -> before/after evaluation
    prmrl sft     [--config F] [k=v ...]
    prmrl train   [--config F] [k=v ...]   PPO; reward terms from the reward.* section
    prmrl eval    --policy PATH [--config F] [k=v ...]
    prmrl label / train-rm --kind orm|prm / bon   reward models and Best-of-N
    prmrl reproduce [--quick]          the paper's ablation (results.json, results.md, plots)
    prmrl probe                        PRM return vs appended repeated steps
    prmrl check-config CONFIG
    prmrl serve-prm PATH [--format F] [--host H] [--port P]   a PRM over HTTP (reward.prm_url)

Every command takes a YAML config (``--config``) and ``section.key=value`` overrides.
Errors in input (config, paths, data) print one line and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

# OpenMP's wait policy, read once when torch loads (through prmrl.config below). One process:
# the library's default (threads spin a moment between parallel regions, then sleep), which
# the loop's many small operations need: GRPO iterations 1-31% faster than with passive waits
# (`benchmarks/bench_ppo.py ppo.advantage=grpo`, 7 alternating pairs, 2 cores). Several processes on the node (torchrun / accelerate):
# threads that sleep at once, since spinning threads of two processes slow each other down
# several-fold on a small CPU. Sweeps and the ablation set it for their workers when they run
# several at a time. An OMP_WAIT_POLICY already set wins.
if int(os.environ.get("LOCAL_WORLD_SIZE") or os.environ.get("WORLD_SIZE") or 1) > 1:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from prmrl.config import COMMAND_DEFAULTS, Config, ConfigError, RunConfig, load_config  # noqa: E402

COMMANDS = {}


def command(name: str, help: str):
    def wrap(fn):
        COMMANDS[name] = (fn, help)
        return fn
    return wrap


def _config(args, extra: list[str] | None = None) -> Config:
    cfg = load_config(args.config, (extra or []) + list(args.overrides), base=COMMAND_DEFAULTS.get(args.command))
    if cfg.run.out_dir == RunConfig.out_dir and not _out_dir_given(args):
        # Each command's run in its own folder unless one was given: runs/<command>, or
        # runs/<command>-2, -3, ... when that holds a run already (a rerun never mixes its
        # files with an earlier run's; a folder given explicitly must be resumed or overwritten).
        from prmrl.runs import holds_run

        quick = "-quick" if getattr(args, "quick", False) else ""
        base = f"runs/{args.command}{quick}"
        out, n = base, 1
        while holds_run(out) and not (cfg.run.resume or cfg.run.overwrite):
            n += 1
            out = f"{base}-{n}"
        cfg.run.out_dir = out
    return cfg


def _policy(cfg: Config) -> str:
    """The base policy of a command: ``model.policy``, else the embedded task's SFT policy
    (trained once, cached)."""
    from prmrl.jobs.sft import run_sft

    return cfg.model.policy or str(run_sft(cfg))


def _out_dir_given(args) -> bool:
    """Whether the command line or the config file names run.out_dir (the config loaded fine)."""
    import yaml

    if any(o.split("=", 1)[0].strip() == "run.out_dir" for o in args.overrides):
        return True
    if args.config is None:
        return False
    data = yaml.safe_load(open(args.config)) or {}
    return "out_dir" in (data.get("run") or {})


@command("demo", "the embedded pipeline end to end: SFT, RL with the success reward (GRPO; ppo.advantage=gae: PPO with a critic), evaluation")
def cmd_demo(args) -> int:
    from prmrl.jobs.common import format_table
    from prmrl.jobs.demo import demo

    cfg = _config(args)
    if args.seeds is not None:
        return _sweep(args, cfg, "demo")
    summary = demo(cfg)
    keys = ["greedy_accuracy", "sampling_accuracy", "steps_per_answer", "mean_response_tokens"]
    print(format_table({"before RL": summary["before"], "after RL": summary["after"]}, keys))
    print(f"\n{summary['details']['n_test_problems']} held-out problems; "
          f"wall time {summary['wall_seconds']:.0f} s; run folder: {cfg.run.out_dir}")
    return 0


@command("sft", "train the embedded task's SFT policy (cached for later commands)")
def cmd_sft(args) -> int:
    from prmrl.jobs.sft import run_sft

    cfg = _config(args)
    path = run_sft(cfg, force=True)
    print(f"SFT policy: {path}")
    return 0


@command("train", "PPO from model.policy (default: the cached SFT policy); run.resume=true continues "
                  "the run in run.out_dir from its last checkpoint")
def cmd_train(args) -> int:
    from prmrl.jobs.ppo import run_ppo

    cfg = _config(args)
    out = run_ppo(cfg, _policy(cfg), cfg.run.out_dir)
    if int(os.environ.get("RANK", "0")) == 0:     # one report under `accelerate launch`
        print(json.dumps({k: round(v, 4) for k, v in out["last"].items() if isinstance(v, float)}, indent=1))
        print(f"policy: {out['policy']}")
    return 0


@command("eval", "evaluate a saved policy on the held-out problems")
def cmd_eval(args) -> int:
    from prmrl.models.factory import load_policy, load_tokenizer
    from prmrl.jobs.evaluate import evaluate
    from prmrl.jobs.sft import run_sft
    from prmrl.runs import write_json
    from prmrl.tasks import make_task

    cfg = _config(args)
    path = args.policy or cfg.model.policy or str(run_sft(cfg))
    tok = load_tokenizer(path)
    result = evaluate(cfg, load_policy(path), tok, make_task(cfg.task, tok))
    write_json(Path(cfg.run.out_dir) / "eval.json", {"policy": str(path), **result})
    print(json.dumps(result, indent=1))
    return 0


@command("label", "sample answers from the policy and label their steps (Math-Shepherd style or oracle)")
def cmd_label(args) -> int:
    from prmrl.jobs.rm import label_job

    cfg = _config(args)
    out = label_job(cfg, policy=_policy(cfg), force=args.force)
    print(json.dumps(out, indent=1, default=str))
    return 0


@command("train-rm", "train (or reuse) the ORM or the PRM")
def cmd_train_rm(args) -> int:
    from prmrl.jobs.rm import train_rm_job

    cfg = _config(args)
    path = train_rm_job(cfg, args.kind, policy=_policy(cfg), force=args.force)
    print(f"{args.kind.upper()}: {path}")
    return 0


@command("bon", "Best-of-N with the ORM and PRM vs majority vote and greedy; PRM step AUC")
def cmd_bon(args) -> int:
    from prmrl.evaluation.bon import format_bon_table
    from prmrl.jobs.bon import bon_job

    cfg = _config(args)
    if args.seeds is not None:
        return _sweep(args, cfg, "bon")
    print(format_bon_table(bon_job(cfg, policy=_policy(cfg))))
    return 0


def _sweep(args, cfg: Config, job: str) -> int:
    """``--seeds``: the job for every seed x ``--threads`` count, in parallel processes."""
    from prmrl.jobs.sweep import format_sweep, parse_ints, sweep

    seeds = parse_ints(args.seeds)
    threads = parse_ints(args.threads, "--threads")
    if 0 in threads:
        raise ConfigError("--threads: counts start at 1")
    if args.workers < 1:
        raise ConfigError(f"--workers: {args.workers}; at least 1")
    report = sweep(cfg, job, seeds, threads, workers=args.workers,
                   progress=print if cfg.run.progress else None)
    print(format_sweep(report))
    print(f"runs and sweep.json: {cfg.run.out_dir}")
    return 0


@command("reproduce", "the paper's ablation on the embedded task: SR, +ORM, +PRM, Clip, Delta, Clip-Delta")
def cmd_reproduce(args) -> int:
    from prmrl.config import ALL_ARMS
    from prmrl.jobs.ablation import reproduce, results_markdown

    cfg = _config(args, QUICK_REPRODUCE if args.quick else [])
    a = cfg.ablation
    seeds = [cfg.run.seed + i for i in range(a.seeds)]
    arms = {name: ALL_ARMS[name] for name in a.arms}
    report = reproduce(cfg, seeds, arms, workers=a.workers)
    print(results_markdown(report))
    print(f"results: {cfg.run.out_dir}/results.json, results.md, plots/")
    return 0


@command("probe", "the repetition probe: PRM return vs k appended copies of a correct step")
def cmd_probe(args) -> int:
    from prmrl.jobs.probe import repetition_probe

    cfg = _config(args)
    report = repetition_probe(cfg)
    ks = report["k"]
    print("k".ljust(12) + "".join(f"{k:>7}" for k in ks))
    for m, vals in report["returns"].items():
        print(m.ljust(12) + "".join(f"{v:>7.2f}" for v in vals))
    skipped = report["n_unscorable_answers"]
    print(f"{report['n_answers']} held-out answers"
          + (f" ({skipped} left out: the PRM could not score all their steps)" if skipped else "")
          + f"; {cfg.run.out_dir}/probe.json, probe.png")
    return 0


@command("check-config", "validate a config without loading weights")
def cmd_check_config(args) -> int:
    from prmrl.check import main_check

    return main_check([args.config or args.target, *args.overrides])


@command("serve-prm", "serve a PRM over HTTP (POST /score_steps, GET /health) for reward.prm_url")
def cmd_serve_prm(args) -> int:
    from prmrl.config import decode_escapes
    from prmrl.jobs.serve_prm import serve_prm

    if not args.max_request_mb > 0:
        raise ValueError(f"--max-request-mb: {args.max_request_mb}; must be > 0")
    server = serve_prm(args.path, fmt=args.format, host=args.host, port=args.port, max_batch=args.max_batch,
                       max_request_bytes=max(1, int(args.max_request_mb * 2**20)), timeout=args.timeout,
                       dtype=args.dtype, trust_remote_code=args.trust_remote_code,
                       delimiter=decode_escapes(args.delimiter))
    print(f"serving PRM {args.path} (format {args.format}) on {server.url}: POST /score_steps, "
          f"GET /health; use reward.prm_url={server.url} reward.prm_format={args.format}; Ctrl-C stops",
          flush=True)
    try:
        server.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
    return 0


# `reproduce --quick`: small enough for CI (under 4 minutes from an empty cache), same code path;
# its SFT policy is a shorter run of its own (the default SFT alone takes over 2 minutes).
QUICK_REPRODUCE = ["sft.steps=300", "ablation.iterations=4", "ablation.seeds=1", "ppo.prompts_per_iteration=16", "eval.n_problems=100",
                   "eval.every=2", "eval.n_problems_during=50", "eval.sampling_samples=2",
                   "eval.pass_k=[1,2]", "rm.n_problems=200", "rm.bon_problems=100"]


# the config sections each command reads, listed with their fields by `prmrl COMMAND --help`
SECTIONS = {
    "demo": ["task", "model", "sft", "ppo", "eval", "run"],
    "sft": ["task", "model", "sft", "run"],
    "train": ["task", "model", "reward", "ppo", "eval", "run"],
    "eval": ["task", "model", "eval", "run"],
    "label": ["task", "model", "rm", "run"],
    "train-rm": ["task", "model", "rm", "run"],
    "bon": ["task", "model", "rm", "run"],
    "reproduce": ["task", "model", "sft", "reward", "ppo", "eval", "rm", "ablation", "run"],
    "probe": ["task", "model", "reward", "rm", "run"],
    "check-config": [],
    "serve-prm": [],
}


def config_help(sections: list[str], command: str = "") -> str:
    """The config fields of ``sections``: key, type, default (``command``'s) and the field's
    docstring."""
    import dataclasses
    import textwrap
    import typing

    from prmrl.config import CHOICES, RANGES, command_default, field_help

    lines = ["config keys (section.key=value; defaults in brackets, then the allowed values):"]
    for section in sections:
        cls = typing.get_type_hints(Config)[section]
        docs, hints = field_help(cls), typing.get_type_hints(cls)
        lines.append(f"  {section}:")
        for f in dataclasses.fields(cls):
            key = f"{section}.{f.name}"
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            shown = "runs/<command>" if key == "run.out_dir" else repr(command_default(command, key, default))
            tp = getattr(hints[f.name], "__name__", None) or str(hints[f.name]).replace("typing.", "")
            allowed = (f" in {RANGES[key]}" if key in RANGES else
                       f" one of {', '.join(CHOICES[key])}" if key in CHOICES else "")
            lines.append(f"    {key} ({tp}) [{shown}]{allowed}")
            doc = " ".join(docs.get(f.name, "").split())
            if doc:
                lines.extend(textwrap.wrap(doc, 92, initial_indent=" " * 8, subsequent_indent=" " * 8))
    return "\n".join(lines)


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    argv = sys.argv[1:] if argv is None else argv
    # the field listing parses the config's source: only when a command's help is asked for
    asked = argv[0] if argv and ("-h" in argv or "--help" in argv) else None
    parser = argparse.ArgumentParser(prog="prmrl", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (fn, help) in COMMANDS.items():
        epilog = config_help(SECTIONS[name], name) if name == asked and SECTIONS.get(name) else None
        p = sub.add_parser(name, help=help, description=help, epilog=epilog,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        if name == "check-config":
            p.add_argument("target", nargs="?", help="config file to check")
        if name == "serve-prm":
            from prmrl.rm.formats import PRM_FORMATS

            p.add_argument("path", help="the PRM: a prmrl PRM folder, or a public PRM (folder or hub name)")
            p.add_argument("--format", default="native", choices=list(PRM_FORMATS),
                           help="how the PRM reads an answer (default native)")
            p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: "
                           "this machine only)")
            p.add_argument("--port", type=int, default=8000, help="port (default 8000; 0: any free port)")
            p.add_argument("--max-batch", type=int, default=64, help="most answers scored in one batch")
            p.add_argument("--max-request-mb", type=float, default=16.0,
                           help="larger request bodies are refused with 413 (default 16)")
            p.add_argument("--timeout", type=float, default=60.0,
                           help="seconds a request may wait for its scores before a 503 (default 60)")
            p.add_argument("--delimiter", default="\\n", help="native format: text between steps, with "
                           "\\n escapes (default \\n; the run's task.step_delimiter)")
            p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
            p.add_argument("--trust-remote-code", action="store_true",
                           help="let the checkpoint run its own modelling code (Qwen2.5-Math-PRM)")
        p.add_argument("--config", help="YAML config file (sections: task, model, sft, reward, ppo, eval, run)")
        if name == "eval":
            p.add_argument("--policy", help="path of the policy to evaluate")
        if name in ("label", "train-rm"):
            p.add_argument("--force", action="store_true", help="recompute even if cached")
        if name == "train-rm":
            p.add_argument("--kind", choices=["orm", "prm"], required=True)
        if name in ("demo", "bon"):
            p.add_argument("--seeds", help="a sweep: run every seed (0-3, or 0,2,5) in its own process "
                           "and folder and print mean, std, min and max of each figure")
            p.add_argument("--threads", default="1", help="with --seeds: torch thread counts to run each "
                           "seed with (1,2 runs every seed twice; default 1)")
            p.add_argument("--workers", type=int, default=2, help="with --seeds: runs at a time (default 2)")
        if name == "reproduce":
            p.add_argument("--quick", action="store_true", help="a small version (1 seed, short runs) for CI; "
                           "seeds, arms, iterations and workers are in the ablation.* section")
        p.add_argument("overrides", nargs="*", metavar="section.key=value", help="config overrides")
        p.set_defaults(fn=fn)
    return parser


def main(argv: list[str] | None = None) -> int:
    from prmrl.jobs.common import setup_threads
    from prmrl.models.factory import quiet_transformers

    parser = build_parser(argv)
    args = parser.parse_args(argv)
    quiet_transformers()
    from prmrl.rl.checkpoint import TrainingInterrupted
    from prmrl.rl.trainer import NonFiniteError
    from prmrl.runs import RunInUseError, job_folder

    try:
        if args.command == "check-config":
            return args.fn(args)
        cfg = _config(args)
        setup_threads(cfg)
        if args.command in ("train", "serve-prm"):  # the trainer locks its own folder; a server
            return args.fn(args)                     # writes none
        with job_folder(cfg.run.out_dir, resume=cfg.run.resume, overwrite=cfg.run.overwrite):
            return args.fn(args)
    except (ConfigError, FileNotFoundError, ValueError, OSError, RunInUseError, ImportError) as e:
        # Input errors (config, paths, data rows, a busy run folder) get one line, not a traceback.
        print(f"prmrl {args.command}: error: {_one_line(e)}", file=sys.stderr)
        return 2
    except NonFiniteError as e:
        print(f"prmrl {args.command}: error: {_one_line(e)}", file=sys.stderr)
        return 3
    except TrainingInterrupted as e:          # SIGTERM / Ctrl-C: a checkpoint was written
        print(f"prmrl {args.command}: {_one_line(e)}", file=sys.stderr)
        return 128 + e.signum
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _one_line(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    return " ".join(text.split("\n")[:1]) if len(text) < 400 else text[:400] + "..."


if __name__ == "__main__":
    sys.exit(main())
