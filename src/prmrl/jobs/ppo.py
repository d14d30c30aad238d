"""`prmrl train`: PPO from a config, a thin adapter over ``prmrl.rl.trainer.PPOTrainer``."""

from __future__ import annotations

from pathlib import Path


from prmrl.config import Config
from prmrl.jobs.evaluate import evaluate
from prmrl.rl.callbacks import Callback
from prmrl.tasks import Task, make_task


class EvalCallback(Callback):
    """Greedy accuracy on ``eval.n_problems_during`` held-out problems every ``eval.every``
    iterations and at the last, added to that iteration's metrics (main process only)."""

    def __init__(self, cfg: Config, task: Task):
        self.cfg, self.task = cfg, task

    def on_iteration_end(self, trainer, iteration: int, metrics: dict) -> None:
        e, total = self.cfg.eval, self.cfg.ppo.iterations
        if not e.every or not ((iteration + 1) % e.every == 0 or iteration + 1 == total):
            return
        if not self.task.test_questions:
            return
        acc = trainer.acc
        n = min(e.n_problems_during, len(self.task.test_questions))
        shard = list(range(acc.process_index, n, acc.num_processes))   # the problems split over processes
        policy = trainer.generation_model()        # (every process: under FSDP2 it gathers)
        ev = evaluate(self.cfg, policy, trainer.tok, self.task, n_samples=1,
                      greedy=True, indices=shard) if shard else {}
        if acc.num_processes > 1:
            from accelerate.utils import gather_object

            ev = merge_shards(gather_object([(len(shard), ev)]))
        if acc.is_main_process:
            metrics.update({f"eval/{k}": v for k, v in ev.items()})


def merge_shards(shards: list[tuple[int, dict]]) -> dict[str, float]:
    """Evaluations of disjoint shards of problems -> the whole's: means weighted by each shard's
    problem count, counts (``n_*``) summed."""
    shards = [(n, ev) for n, ev in shards if n]
    total = sum(n for n, _ in shards)
    out: dict[str, float] = {}
    for k in dict.fromkeys(k for _, ev in shards for k in ev):
        vals = [(n, ev[k]) for n, ev in shards if isinstance(ev.get(k), (int, float))]
        if not vals:
            continue
        out[k] = (sum(v for _, v in vals) if k.startswith("n_")
                  else sum(n * v for n, v in vals) / max(1, sum(n for n, _ in vals)))
    if "n_problems" in out:
        out["n_problems"] = total
    return out


def build_trainer(cfg: Config, policy_path: str | Path, run_dir: str | Path | None, *,
                  task: Task | None = None, accelerator=None):
    """The trainer a config describes: its sections become the trainer's typed pieces."""
    from prmrl.models.factory import load_tokenizer
    from prmrl.rl.trainer import PPOTrainer

    tok = load_tokenizer(policy_path)
    task = task or make_task(cfg.task, tok)
    return PPOTrainer(
        str(policy_path), tokenizer=tok, ppo=cfg.ppo, reward=cfg.reward, task=task,
        critic=cfg.model.critic, output_dir=run_dir, seed=cfg.run.seed,
        save_every=cfg.run.save_every, precision=cfg.model.dtype, report_to=cfg.run.report_to,
        callbacks=[EvalCallback(cfg, task)], accelerator=accelerator, progress=cfg.run.progress,
        overwrite=cfg.run.overwrite, config=_config_dict(cfg, policy_path),
        gradient_checkpointing=cfg.model.gradient_checkpointing, offload_frozen=cfg.run.offload_frozen,
        parallel=cfg.run.parallel)


def run_ppo(cfg: Config, policy_path: str | Path, run_dir: str | Path, *, task: Task | None = None,
            accelerator=None) -> dict:
    """PPO from ``policy_path``; writes metrics, checkpoints, plots and the final policy into
    ``run_dir`` (continuing its last checkpoint when ``run.resume``). Returns the last
    iteration's metrics and the path of the trained policy."""
    from prmrl.evaluation.plots import plot_training

    trainer = build_trainer(cfg, policy_path, run_dir, task=task, accelerator=accelerator)
    out = trainer.fit(resume=cfg.run.resume)
    if trainer.acc.is_main_process:
        plot_training(Path(run_dir) / "metrics.jsonl", Path(run_dir) / "plots")
    trainer.acc.wait_for_everyone()
    return {"last": out["last"], "policy": out["policy"]}


def _config_dict(cfg: Config, policy_path: str | Path) -> dict:
    """The resolved config: ``model.policy`` is the policy trained from (the cached SFT policy
    when none was named), so a resume can tell whether it starts from the same one."""
    from dataclasses import asdict

    d = asdict(cfg)
    d["model"]["policy"] = str(policy_path)
    return d


