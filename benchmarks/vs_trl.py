"""prmrl against TRL's GRPOTrainer, side by side: completions/s and tokens/s at equal work.

    make bench-setup                      # .venv-bench: prmrl + the pinned TRL (the `bench` extra)
    .venv-bench/bin/python benchmarks/vs_trl.py --rounds 3 --json runs/vs_trl.json
    make bench-trl BENCH_ARGS="--rounds 3"

TRL is an optional extra, pinned (``pip install -e .[bench]``: trl==1.16.0); without it this
prints one line saying so and exits 2. Each round runs three measurements, each in its own
fresh subprocess of the same interpreter (so one framework's allocator, thread pools and lazy
state do not touch the other's), in lockstep: all three load, then take turns cycle by cycle
(cycle c of each, one at a time, the others blocked on a pipe and idle, the order rotated with c
and the round), so that the machine's speed, which drifts by a third over minutes on a shared
host, is the same for the cycles compared. (Until 2026-12-03 the three measurements of a round
ran one after the other, a minute or more apart.)

    trl    TRL ``GRPOTrainer``
    grpo   prmrl critic-free: ppo.advantage=grpo ppo.kl_mode=loss (GRPO's k3 KL loss)
    ppo    prmrl PPO with its defaults (critic, GAE, KL as a per-token reward penalty)

Each measurement runs ``--warmup`` generation cycles (not counted) and then ``--cycles`` timed
ones; a cycle is one generation of 256 completions and the 4 optimizer steps on them. It reports
completions/s and completion tokens/s over the timed cycles, counting what was actually
generated (TRL: every completion its reward function saw, with its token ids; prmrl: the rollout
batch's rows and response-mask tokens, EOS included in both), and where the time went.

How the work is matched
- Policy: the same checkpoint (the cached seed-0 SFT policy of the embedded arithmetic task, or
  ``--policy``), float32, on CPU, ``--threads`` torch threads in every subprocess
  (``torch.set_num_threads``, OMP_NUM_THREADS), OMP_WAIT_POLICY as the environment has it
  (``--omp-wait-policy inherit``, the default: unset, OpenMP's default, what a user of either
  library gets and what ``prmrl train`` leaves for one process; PASSIVE or ACTIVE for all three
  on request; before 2026-12-03 the default was PASSIVE. TRL on a quiet machine, 3 timed
  cycles: 45.5 completions/s PASSIVE, 44.7 and 47.1 unset, 49.5 ACTIVE).
- Prompts: the task's ``prompt(q)`` texts as plain text (no chat template, no special tokens
  added: the char tokenizer adds none), the same training questions in the same order (TRL with
  ``shuffle_dataset=False``). Reward: the task's grader, 1 for right, 0 for wrong, None when
  ungradable, in both.
- Sizes: 64 prompts x 4 samples = 256 completions per generation, up to 128 new tokens,
  temperature 1, top-p 1 (TRL: top_k 0). TRL: per_device_train_batch_size=64,
  gradient_accumulation_steps=1, steps_per_generation=4 (generation_batch_size 256),
  num_iterations=1; prmrl: minibatch_size=64, ppo_epochs=1. Both: 4 optimizer steps of 64
  completions per generation, each completion used once, gradient-norm clip 1.0, clip eps 0.2.
- KL: beta 0.1 to a frozen reference (TRL loads it from the same path because beta > 0; prmrl
  copies the policy), its log-probs computed once per generation in both.
- Optimizer: AdamW at lr 1e-4, constant (TRL: lr_scheduler_type="constant", no warm-up).
- Off: gradient checkpointing, bf16/fp16, vLLM, logging, saving, tqdm (TRL: report_to="none",
  logging_strategy/save_strategy="no", use_cpu=True).

What is not identical
- Loss aggregation: TRL's default loss_type "dapo" (token sum over the number of tokens of the
  whole accumulated batch, here the 64-completion minibatch); prmrl's GRPO mode aggregates by
  ``ppo.loss_agg`` (default token_mean over the 64-completion minibatch): the same normaliser
  here. prmrl PPO is a token mean over the minibatch too, with whitened GAE advantages.
- KL: TRL puts k3(ref, policy) into the loss; prmrl's GRPO mode the same k3 term
  (``kl_mode=loss``); prmrl's PPO instead subtracts beta x k1 from the per-token rewards.
- Old log-probs: with 4 steps per generation TRL runs an extra no-grad forward pass of the policy
  over the batch (steps 2-4 are off-policy); prmrl takes them from its sampler (same numbers,
  computed while sampling). Sampling: TRL ``model.generate`` (left-padded prompt batch, every row
  decoded until the longest stops); prmrl its own sampler (one prefill per prompt, its KV cache
  repeated for the 4 samples, finished rows dropped).
- prmrl computes the entropy of every update minibatch (logged); TRL does not unless asked.
  prmrl's per-iteration rollout metrics (``rollout_metrics``, what ``fit`` logs) are inside the
  timed window; TRL's metric bookkeeping (its ``_metrics``, no logging) likewise.
- AdamW: TRL's TrainingArguments default (optim "adamw_torch_fused", weight decay 0, eps 1e-8);
  prmrl ``torch.optim.AdamW`` (weight decay 0.01, eps 1e-5). Dropout: both as the checkpoint's
  config has it (TRL disable_dropout=False).
- Minibatches: TRL shuffles the 256 completions one by one before cutting them into the 4
  steps' batches; prmrl (``ppo.minibatch_by=auto``: "prompt", as verl's mini-batches hold
  whole groups) shuffles prompts, so each step's 64 completions are 16 prompts' groups, and its
  forward passes (actor, critic, reference) compute each prompt once for its 4 answers
  (``share_prompts``; the same numbers up to float rounding). Same number of completions and
  tokens per step.
- prmrl PPO also trains a critic (a value pass in shape, a value step per minibatch): more work
  than GRPO, compared against TRL's GRPO all the same.
- Randomness: the samples differ (each framework draws its own), so answer lengths differ a
  little from cycle to cycle; tokens/s is reported next to completions/s for that reason.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

TRL_PIN = "1.16.0"
NEEDS_TRL = "needs TRL: make bench-setup, or pip install -e .[bench]"
FRAMEWORKS = ("trl", "grpo", "ppo")
LABELS = {"trl": "TRL GRPO", "grpo": "prmrl GRPO", "ppo": "prmrl PPO"}

# The matched sizes (prmrl's PPO defaults): one generation, then STEPS optimizer steps of MB.
PROMPTS, SAMPLES, MB, MAX_NEW, BETA, LR, TEMPERATURE = 64, 4, 64, 128, 0.1, 1e-4, 1.0
STEPS = PROMPTS * SAMPLES // MB
SIZES = [f"ppo.prompts_per_iteration={PROMPTS}", f"ppo.samples_per_prompt={SAMPLES}",
         f"ppo.minibatch_size={MB}", f"ppo.max_new_tokens={MAX_NEW}", f"ppo.kl_beta={BETA}",
         f"ppo.actor_lr={LR}", "ppo.ppo_epochs=1", f"ppo.temperature={TEMPERATURE}", "ppo.top_p=1.0",
         "ppo.lr_schedule=constant"]
PRMRL_MODES = {"grpo": ["ppo.advantage=grpo", "ppo.kl_mode=loss"], "ppo": []}


def _problems(task, n_cycles: int):
    n = n_cycles * PROMPTS
    if len(task.train_questions) < n:
        raise SystemExit(f"the task has {len(task.train_questions)} training problems; {n} needed")
    return task.train_questions[:n], task.train_golds[:n]


def _machine_busy() -> float | None:
    """CPU-seconds every process on the machine has spent so far (/proc/stat; None elsewhere)."""
    try:
        with open("/proc/stat") as f:
            cpu = f.readline().split()
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in cpu[1:9])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _snap() -> tuple[float, float, float | None]:
    """(wall clock, this process's CPU time over all its threads, the machine's busy CPU time)."""
    return time.perf_counter(), time.process_time(), _machine_busy()


def _cycle(a, b, completions: int, tokens: int) -> dict:
    """One timed cycle between two snaps. others_cores: the CPU the rest of the machine used
    meanwhile, in cores (0 on a quiet machine; 1 means a whole core was taken from the two)."""
    wall, own = b[0] - a[0], b[1] - a[1]
    others = None if a[2] is None or b[2] is None else max(0.0, (b[2] - a[2]) - own) / wall
    return {"seconds": wall, "cpu_seconds": own, "others_cores": others, "completions": completions,
            "tokens": tokens}


def _threads(n: int) -> None:
    import torch

    torch.set_num_threads(n)


# ---- the turn protocol: the parent says when each worker may run its next cycle ----------------

def _ready() -> None:
    print("READY", flush=True)


def _wait_turn() -> None:
    """Block until the parent gives this worker its turn (a line on stdin): the other workers
    are then idle, blocked here too."""
    if sys.stdin.readline().strip() != "go":
        raise SystemExit("vs_trl worker: the parent went away")


def _cycle_done() -> None:
    print("CYCLE", flush=True)


# ---- workers (one per subprocess) ---------------------------------------------------------------

def worker_prmrl(mode: str, args) -> dict:
    import torch

    from prmrl.config import load_config
    from prmrl.jobs.ppo import build_trainer
    from prmrl.models.factory import load_tokenizer, quiet_transformers
    from prmrl.tasks import make_task

    quiet_transformers()
    _threads(args.threads)
    cfg = load_config(None, ["run.progress=false", *SIZES, *PRMRL_MODES[mode]])
    task = make_task(cfg.task, load_tokenizer(args.policy))
    trainer = build_trainer(cfg, args.policy, None, task=task)     # no run folder: nothing written
    _threads(args.threads)
    qs_all, gs_all = _problems(task, args.warmup + args.cycles)
    phases = ["generate", "score", "shape", "advantages", "update", "metrics"]
    totals = dict.fromkeys(phases, 0.0)
    cycles = []
    _ready()
    for it in range(args.warmup + args.cycles):
        qs = qs_all[it * PROMPTS:(it + 1) * PROMPTS]
        gs = gs_all[it * PROMPTS:(it + 1) * PROMPTS]
        _wait_turn()
        start = _snap()
        t = [start[0]]
        b = trainer.generate(qs, gs)
        t.append(time.perf_counter())
        trainer.score(b)
        t.append(time.perf_counter())
        trainer.shape(b)
        t.append(time.perf_counter())
        trainer.advantages(b)
        t.append(time.perf_counter())
        trainer.update(b)
        t.append(time.perf_counter())
        trainer.rollout_metrics(b)                 # what fit() logs each iteration
        end = _snap()
        t.append(end[0])
        _cycle_done()
        if it < args.warmup:
            continue
        for i, ph in enumerate(phases):
            totals[ph] += t[i + 1] - t[i]
        cycles.append(_cycle(start, end, len(b), int(b.response_mask.sum())))
    _wait_turn()                                   # idle until every framework's last cycle is done
    return {"cycles": cycles, "phases": totals, "threads": torch.get_num_threads()}


def worker_trl(args) -> dict:
    import torch
    import trl
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from prmrl.config import load_config
    from prmrl.models.factory import load_tokenizer, quiet_transformers
    from prmrl.tasks import make_task

    quiet_transformers()
    _threads(args.threads)
    n_cycles = args.warmup + args.cycles
    cfg = load_config(None, ["run.progress=false"])
    tok = load_tokenizer(args.policy)
    task = make_task(cfg.task, tok)
    qs, gs = _problems(task, n_cycles)
    data = Dataset.from_dict({"prompt": [task.prompt(q) for q in qs], "gold": list(gs)})

    generations: list[dict] = []         # one per generation: what the reward function saw

    def success(prompts, completions, completion_ids, gold, **_):
        generations.append({"completions": len(completions),
                            "tokens": sum(len(c) for c in completion_ids)})
        return [None if g is None else float(g) for g in task.grade_batch(completions, gold)]

    starts: list[tuple] = []
    ends: list[tuple] = []

    class CycleClock(TrainerCallback):
        """A cycle runs from its turn to its STEPS-th optimizer step; between cycles TRL waits
        for its next turn here (the clock stopped)."""

        def on_train_begin(self, a, state, control, **kw):
            _ready()
            _wait_turn()
            starts.append(_snap())

        def on_step_end(self, a, state, control, **kw):
            if state.global_step % STEPS == 0:
                ends.append(_snap())
                _cycle_done()
                _wait_turn()           # after the last cycle: idle until every framework is done
                if len(ends) < n_cycles:
                    starts.append(_snap())

    with tempfile.TemporaryDirectory(prefix="vs_trl-") as out:
        gcfg = GRPOConfig(
            output_dir=out, use_cpu=True, bf16=False, fp16=False, gradient_checkpointing=False,
            per_device_train_batch_size=MB, gradient_accumulation_steps=1,
            steps_per_generation=STEPS, num_iterations=1, num_generations=SAMPLES,
            max_completion_length=MAX_NEW, temperature=TEMPERATURE, top_p=1.0, top_k=0,
            beta=BETA, learning_rate=LR, lr_scheduler_type="constant", warmup_steps=0,
            max_grad_norm=1.0, epsilon=0.2, loss_type="dapo", scale_rewards="group",
            use_vllm=False, shuffle_dataset=False, max_steps=STEPS * n_cycles,
            report_to="none", logging_strategy="no", save_strategy="no", disable_tqdm=True,
            dataloader_num_workers=0, seed=0, model_init_kwargs={"dtype": torch.float32})
        trainer = GRPOTrainer(model=args.policy, reward_funcs=success, args=gcfg, train_dataset=data,
                              processing_class=tok, callbacks=[CycleClock()])
        _threads(args.threads)
        # Where the time goes: wrap the sampling call and the whole generate-and-score step
        # (sampling, old and reference log-prob passes, reward, advantages) on this instance.
        spent = {"generate": [], "generate_and_score": []}

        def timed(name, fn):
            def wrapper(*a, **kw):
                t0 = time.perf_counter()
                try:
                    return fn(*a, **kw)
                finally:
                    spent[name].append(time.perf_counter() - t0)
            return wrapper

        trainer._generate_single_turn = timed("generate", trainer._generate_single_turn)
        trainer._generate_and_score_completions = timed("generate_and_score",
                                                        trainer._generate_and_score_completions)
        trainer.train()
    if len(ends) != n_cycles or len(starts) != n_cycles or len(generations) != n_cycles:
        raise RuntimeError(f"TRL ran {len(ends)} cycles / {len(generations)} generations, "
                           f"{n_cycles} expected")
    cycles = [_cycle(starts[i], ends[i], **generations[i]) for i in range(args.warmup, n_cycles)]
    gen = sum(spent["generate"][args.warmup:])
    gas = sum(spent["generate_and_score"][args.warmup:])
    wall = sum(c["seconds"] for c in cycles)
    phases = {"generate": gen, "logprobs+reward": gas - gen, "update": wall - gas}
    return {"cycles": cycles, "phases": phases, "threads": torch.get_num_threads(),
            "trl_version": trl.__version__}


# ---- the parent: rounds, subprocesses, table ----------------------------------------------------

def _wait_policy(args) -> str:
    if args.omp_wait_policy != "inherit":
        return args.omp_wait_policy
    return os.environ.get("OMP_WAIT_POLICY") or "unset (OpenMP's default)"


def _start(fw: str, args, policy: str, errors) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads),
               TOKENIZERS_PARALLELISM="false",
               HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    if args.omp_wait_policy != "inherit":
        env["OMP_WAIT_POLICY"] = args.omp_wait_policy
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", fw, "--policy", policy,
           "--threads", str(args.threads), "--warmup", str(args.warmup), "--cycles", str(args.cycles)]
    return subprocess.Popen(cmd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=errors, text=True, bufsize=1)


def _read_until(fw: str, p: subprocess.Popen, tag: str, lines: list[str], errors) -> None:
    """Read the worker's stdout until a line starting with ``tag`` (kept in ``lines``)."""
    while True:
        line = p.stdout.readline()
        if not line:
            p.wait()
            errors.seek(0)
            sys.stderr.write("".join(lines)[-4000:] + errors.read()[-4000:])
            raise SystemExit(f"{LABELS[fw]}: the measurement failed (exit {p.returncode})")
        lines.append(line)
        if line.startswith(tag):
            return


def run_round(r: int, args, policy: str) -> dict[str, dict]:
    """One round: a fresh process per framework, all loaded, then cycle by cycle in turn (cycle
    c: each framework runs its c-th cycle while the others wait, the order rotated with c), so
    the frameworks' cycles sit side by side in time and a machine that speeds up or slows down
    does so for all of them."""
    procs, outs, errs = {}, {}, {}
    try:
        for fw in FRAMEWORKS:
            errs[fw] = tempfile.TemporaryFile("w+")
            procs[fw], outs[fw] = _start(fw, args, policy, errs[fw]), []
        for fw in FRAMEWORKS:
            _read_until(fw, procs[fw], "READY", outs[fw], errs[fw])
        for c in range(args.warmup + args.cycles):
            k = (r + c) % len(FRAMEWORKS)
            for fw in FRAMEWORKS[k:] + FRAMEWORKS[:k]:
                procs[fw].stdin.write("go\n")
                procs[fw].stdin.flush()
                _read_until(fw, procs[fw], "CYCLE", outs[fw], errs[fw])
        for fw in FRAMEWORKS:                 # all cycles done: let them finish and report
            procs[fw].stdin.write("go\n")
            procs[fw].stdin.flush()
        results = {}
        for fw in FRAMEWORKS:
            _read_until(fw, procs[fw], "RESULT ", outs[fw], errs[fw])
            procs[fw].wait()
            results[fw] = _summary(json.loads(outs[fw][-1][len("RESULT "):]))
        return results
    finally:
        for fw, p in procs.items():
            if p.poll() is None:
                p.kill()
            errs[fw].close()


def _summary(res: dict) -> dict:
    secs = sum(c["seconds"] for c in res["cycles"])
    res["completions_per_s"] = sum(c["completions"] for c in res["cycles"]) / secs
    res["tokens_per_s"] = sum(c["tokens"] for c in res["cycles"]) / secs
    res["mean_tokens"] = res["tokens_per_s"] / res["completions_per_s"]
    others = [c["others_cores"] for c in res["cycles"]]
    res["others_cores"] = None if None in others else \
        sum(o * c["seconds"] for o, c in zip(others, res["cycles"])) / secs
    return res


def mmm(xs: list[float]) -> tuple[float, float, float]:
    return min(xs), statistics.median(xs), max(xs)


def table(results: dict[str, list[dict]], args, policy: str, trl_version: str) -> str:
    rounds = len(results["trl"])
    out = [f"prmrl vs TRL {trl_version} GRPOTrainer: policy {policy}",
           f"{PROMPTS} prompts x {SAMPLES} samples = {PROMPTS * SAMPLES} completions per generation, "
           f"{STEPS} optimizer steps of {MB}, <= {MAX_NEW} new tokens, T = {TEMPERATURE}, beta = {BETA}, "
           f"lr {LR:g}, CPU float32, {args.threads} thread(s), OMP_WAIT_POLICY {_wait_policy(args)}; "
           f"{args.warmup} warm-up + {args.cycles} timed cycles per measurement, {rounds} round(s), "
           f"each measurement its own process, the three taking turns cycle by cycle"]
    hdr = f"{'':<12}{'':<14}" + "".join(f"{'round ' + str(r + 1):>9}" for r in range(rounds)) + \
        f"{'min':>9}{'median':>9}{'max':>9}"
    out.append(hdr)

    def row(label, unit, xs, fmt):
        lo, md, hi = mmm(xs)
        return f"{label:<12}{unit:<14}" + "".join(f"{x:>9{fmt}}" for x in xs) + \
            f"{lo:>9{fmt}}{md:>9{fmt}}{hi:>9{fmt}}"

    for fw in FRAMEWORKS:
        rs = results[fw]
        out.append(row(LABELS[fw], "completions/s", [r["completions_per_s"] for r in rs], ".1f"))
        out.append(row("", "tokens/s", [r["tokens_per_s"] for r in rs], ".0f"))
        out.append(row("", "tokens/answer", [r["mean_tokens"] for r in rs], ".1f"))
        if all(r["others_cores"] is not None for r in rs):
            out.append(row("", "others' cores", [r["others_cores"] for r in rs], ".2f"))
    for fw in ("grpo", "ppo"):
        for key, unit in (("completions_per_s", "completions/s"), ("tokens_per_s", "tokens/s")):
            xs = [a[key] / b[key] for a, b in zip(results[fw], results["trl"])]
            out.append(row(f"{LABELS[fw].split()[1]}/TRL", unit, xs, ".2f"))
        xs = [(a["completions"] / a["seconds"]) / (b["completions"] / b["seconds"])
              for ra, rb in zip(results[fw], results["trl"]) for a, b in zip(ra["cycles"], rb["cycles"])]
        lo, md, hi = mmm(xs)
        out.append(f"{LABELS[fw].split()[1] + '/TRL':<12}completions/s, cycle by cycle ({len(xs)} pairs "
                   f"side by side): min {lo:.2f}, median {md:.2f}, max {hi:.2f}")
    out.append(f"others' cores: CPU the rest of the machine ({os.cpu_count()} CPUs) used during the timed "
               f"cycles (/proc/stat less the measurement's own); 0 on a quiet machine")
    out.append("where the time goes (s per cycle, mean over rounds):")
    for fw in FRAMEWORKS:
        n = len(results[fw]) * args.cycles
        ph = {}
        for r in results[fw]:
            for k, v in r["phases"].items():
                ph[k] = ph.get(k, 0.0) + v / n
        wall = sum(c["seconds"] for r in results[fw] for c in r["cycles"]) / n
        out.append(f"  {LABELS[fw]:<11} {wall:5.2f} = " + ", ".join(f"{k} {v:.2f}" for k, v in ph.items()))
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3, help="rounds of the three measurements")
    ap.add_argument("--cycles", type=int, default=4, help="timed generation cycles per measurement")
    ap.add_argument("--warmup", type=int, default=1, help="untimed cycles first (at least 1)")
    ap.add_argument("--threads", type=int, default=2, help="torch threads in every measurement")
    ap.add_argument("--omp-wait-policy", default="inherit", choices=["PASSIVE", "ACTIVE", "inherit"],
                    help="OMP_WAIT_POLICY of every measurement (default inherit: the environment's, "
                         "usually unset: OpenMP's default, as users of both libraries run)")
    ap.add_argument("--policy", help="policy path (default: the cached SFT policy, trained if missing)")
    ap.add_argument("--json", help="write the raw figures here")
    ap.add_argument("--worker", choices=FRAMEWORKS, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.warmup < 1 or args.cycles < 1 or args.rounds < 1:
        ap.error("--warmup, --cycles and --rounds: at least 1")
    if importlib.util.find_spec("trl") is None:
        print(NEEDS_TRL)
        sys.exit(2)
    if args.worker:
        res = worker_trl(args) if args.worker == "trl" else worker_prmrl(args.worker, args)
        print("RESULT " + json.dumps(res))
        return

    from importlib.metadata import version

    trl_version = version("trl")
    if trl_version != TRL_PIN:
        print(f"note: TRL {trl_version} installed; the benchmark is pinned to {TRL_PIN} (make bench-setup)")
    policy = args.policy
    if policy is None:
        from prmrl.config import load_config
        from prmrl.jobs.sft import run_sft

        policy = str(run_sft(load_config(None, ["run.progress=false"])))
    results: dict[str, list[dict]] = {fw: [] for fw in FRAMEWORKS}
    for r in range(args.rounds):
        for fw, res in run_round(r, args, policy).items():
            results[fw].append(res)
            print(f"round {r + 1} {LABELS[fw]:<11} {res['completions_per_s']:6.1f} completions/s "
                  f"{res['tokens_per_s']:7.0f} tokens/s   other processes: "
                  f"{'?' if res['others_cores'] is None else format(res['others_cores'], '.2f')} cores",
                  flush=True)
    print()
    print(table(results, args, policy, trl_version))
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump({"policy": policy, "trl_version": trl_version, "threads": args.threads,
                       "warmup": args.warmup, "cycles": args.cycles,
                       "sizes": {"prompts": PROMPTS, "samples": SAMPLES, "minibatch": MB,
                                 "optimizer_steps": STEPS, "max_new_tokens": MAX_NEW, "beta": BETA,
                                 "lr": LR, "temperature": TEMPERATURE},
                       "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
