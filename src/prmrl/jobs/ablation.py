"""The paper's ablation on the embedded task (`prmrl reproduce`); the repetition probe
(`prmrl probe`) is in :mod:`prmrl.jobs.probe`.

Every arm starts from the config's SFT policy (trained once and cached, `prmrl.jobs.sft.run_sft`;
``model.policy`` is not used) and uses the same cached reward models, trained on that policy's
labelled answers; only the reward section of the config differs. Runs go two at a time in separate processes (one torch
thread each), which uses the two cores better than one run with two threads.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from pathlib import Path
from statistics import mean, pstdev

from prmrl.config import ALL_ARMS, ARMS, Config, from_dict  # noqa: F401 (re-exported)
from prmrl.rl.checkpoint import latest_checkpoint
from prmrl.runs import atomic_write_text, claim_run_dir, read_jsonl, start_run, write_json

FINAL_METRICS = ["greedy_accuracy", "sampling_accuracy", "steps_per_answer", "repeated_step_rate",
                 "mean_response_tokens"]
# metrics plotted per iteration (from metrics.jsonl), one line per arm
CURVES = {"rollout/success": "training success rate", "rollout/steps_per_answer": "steps per answer",
          "rollout/repeated_step_rate": "repeated-step rate",
          "rollout/mean_response_tokens": "response length (tokens)",
          "eval/greedy_accuracy": "held-out greedy accuracy",
          "rollout/tokens_per_step": "tokens per step",
          "rollout/truncation_rate": "truncation rate",
          "rollout/prm_mean_score": "mean PRM step score",
          "rollout/prm_success_agreement": "PRM verdict = success reward"}


def arm_config(cfg: Config, arm: dict, seed: int, orm: str, prm: str, out_dir: Path) -> dict:
    d = asdict(cfg)
    # every arm starts from the success reward alone, whatever the config passed in sets
    d["reward"].update(orm=None, prm=None, shaping="none")
    for k, v in arm.items():
        d["reward"][k] = {"ORM": orm, "PRM": prm}.get(v, v)
    d["run"]["seed"] = seed
    d["ppo"]["iterations"] = cfg.ablation.iterations
    d["run"]["out_dir"] = str(out_dir)
    d["run"]["threads"] = 1
    d["run"]["progress"] = False
    # run.resume continues an arm that has a checkpoint and starts the others afresh
    d["run"]["resume"] = cfg.run.resume and latest_checkpoint(out_dir) is not None
    return d


def _run_one(cfg_dict: dict, sft_path: str, run_dir: str) -> dict:
    """One arm x seed, in its own process: PPO, then the final evaluation."""
    import torch

    from prmrl.models.factory import load_policy, load_tokenizer
    from prmrl.jobs.evaluate import evaluate
    from prmrl.jobs.ppo import run_ppo
    from prmrl.models.factory import quiet_transformers
    from prmrl.tasks import make_task

    quiet_transformers()
    torch.set_num_threads(1)
    cfg = from_dict(cfg_dict)
    task = make_task(cfg.task)
    t0 = time.time()
    out = run_ppo(cfg, sft_path, run_dir, task=task)
    tok = load_tokenizer(out["policy"])
    final = evaluate(cfg, load_policy(out["policy"]), tok, task)
    final["wall_seconds"] = time.time() - t0
    write_json(Path(run_dir) / "final_eval.json", final)
    return final


def reproduce(cfg: Config, seeds: list[int], arms: dict[str, dict], workers: int = 2) -> dict:
    from prmrl.jobs.sft import run_sft
    from prmrl.jobs.rm import train_rm_job

    t0 = time.time()
    out = Path(cfg.run.out_dir)
    for name in arms:          # refuse before hours of work, not in the first arm's worker
        for seed in seeds:
            claim_run_dir(out / name / f"seed{seed}", resume=cfg.run.resume, overwrite=cfg.run.overwrite)
    start_run(out, cfg)
    sft = str(run_sft(cfg))
    needs_orm = any("orm" in a for a in arms.values())
    needs_prm = any("prm" in a for a in arms.values())
    orm = str(train_rm_job(cfg, "orm", sft)) if needs_orm else ""
    prm = str(train_rm_job(cfg, "prm", sft)) if needs_prm else ""
    t_setup = time.time() - t0
    jobs = [(name, seed, arm_config(cfg, arm, seed, orm, prm, out / name / f"seed{seed}"))
            for seed in seeds for name, arm in arms.items()]
    results: dict[str, dict[int, dict]] = {name: {} for name in arms}
    if workers > 1:   # processes side by side: OpenMP threads that sleep (inherited by the workers)
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    ctx = mp.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        futures = {pool.submit(_run_one, d, sft, d["run"]["out_dir"]): (name, seed) for name, seed, d in jobs}
        for i, fut in enumerate(futures):
            name, seed = futures[fut]
            results[name][seed] = fut.result()
            if cfg.run.progress:
                r = results[name][seed]
                print(f"[{i + 1}/{len(jobs)}] {name} seed {seed}: greedy {r['greedy_accuracy']:.3f} "
                      f"sampling {r['sampling_accuracy']:.3f} steps {r['steps_per_answer']:.2f} "
                      f"({r['wall_seconds']:.0f} s)", flush=True)
    summary = {name: {m: _mean_std([results[name][s][m] for s in seeds]) for m in FINAL_METRICS}
               for name in arms}
    report = {"arms": summary, "seeds": seeds,
              "per_seed": {n: {str(s): {m: r[m] for m in FINAL_METRICS} for s, r in v.items()}
                           for n, v in results.items()},
              "sft_policy": sft, "orm": orm, "prm": prm,
              "setup_seconds": round(t_setup, 1), "wall_seconds": round(time.time() - t0, 1)}
    write_json(out / "results.json", report)
    atomic_write_text(out / "results.md", results_markdown(report))
    plot_curves(out, list(arms), seeds)
    return report


def _mean_std(xs: list[float]) -> dict[str, float]:
    return {"mean": mean(xs), "std": pstdev(xs) if len(xs) > 1 else 0.0}


def results_markdown(report: dict) -> str:
    arms = report["arms"]
    head = "| arm | " + " | ".join(FINAL_METRICS) + " |"
    lines = [head, "|---|" + "---:|" * len(FINAL_METRICS)]
    for name, ms in arms.items():
        cells = [f"{ms[m]['mean']:.3f} ± {ms[m]['std']:.3f}" for m in FINAL_METRICS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    n = len(report["seeds"])
    lines.append("")
    lines.append(f"Mean ± std over {n} seed(s) (population std, ddof 0); final policy on the held-out test split. "
                 f"Wall time {report['wall_seconds']:.0f} s.")
    return "\n".join(lines) + "\n"


def plot_curves(out: Path, arms: list[str], seeds: list[int]) -> None:
    from prmrl.evaluation.plots import plot_lines

    for key, title in CURVES.items():
        series, bands = {}, {}
        for name in arms:
            runs = [read_jsonl(out / name / f"seed{s}" / "metrics.jsonl") for s in seeds]
            by_it: dict[int, list[float]] = {}
            for rows in runs:
                for r in rows:
                    if key in r:
                        by_it.setdefault(r["iteration"], []).append(r[key])
            if not by_it:
                continue
            its = sorted(by_it)
            series[name] = (its, [mean(by_it[i]) for i in its])
            bands[name] = [pstdev(by_it[i]) if len(by_it[i]) > 1 else 0.0 for i in its]
        if series:
            plot_lines(series, title, "iteration", title, out / "plots" / f"{key.replace('/', '_')}.png", bands)
