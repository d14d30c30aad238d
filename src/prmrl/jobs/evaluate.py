"""Held-out evaluation of a policy under a config (greedy, sampling, pass@k, diagnostics)."""

from __future__ import annotations

import contextlib

import torch

from prmrl.config import Config
from prmrl.tasks import Task


def evaluate(cfg: Config, policy, tokenizer, task: Task, n_problems: int | None = None,
             n_samples: int | None = None, greedy: bool = True,
             indices: list[int] | None = None) -> dict[str, float]:
    """The first ``n_problems`` held-out problems (``eval.n_problems``), or those ``indices``; on
    a GPU under autocast to ``model.dtype`` (the trainer's numeric path)."""
    if torch.cuda.is_available() and next(policy.parameters()).device.type == "cpu":
        policy = policy.to("cuda")          # a policy loaded for evaluation alone
    e = cfg.eval
    n = min(n_problems or e.n_problems, len(task.test_questions))
    idx = list(range(n)) if indices is None else indices
    k = n_samples or e.sampling_samples
    device = next(policy.parameters()).device
    mixed = {"bfloat16": torch.bfloat16, "float16": torch.float16}.get(cfg.model.dtype)
    with torch.autocast(device.type, dtype=mixed) if mixed and device.type == "cuda" else contextlib.nullcontext():
        return _evaluate(policy, tokenizer, task, idx, e, k, cfg.run.seed, greedy)


def _evaluate(policy, tokenizer, task, idx, e, k, seed, greedy):
    from prmrl.evaluation.accuracy import evaluate_policy

    return evaluate_policy(
        policy, tokenizer, [task.test_questions[i] for i in idx], [task.test_golds[i] for i in idx],
        prompt_fn=task.prompt,
        grade_batch=task.grade_batch, delimiter=task.delimiter, n_samples=k,
        pass_k=[x for x in e.pass_k if x <= k], temperature=e.temperature,
        max_new_tokens=e.max_new_tokens, seed=seed, greedy=greedy)
