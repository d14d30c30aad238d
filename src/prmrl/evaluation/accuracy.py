"""Policy evaluation on held-out problems: accuracy, pass@k, and the hacking diagnostics."""

from __future__ import annotations

import math
from typing import Callable, Sequence

from prmrl.diagnostics import hacking_metrics
from prmrl.models.sampler import generate
from prmrl.steps import steps_for_batch


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples with c correct (Chen et al. 2021): 1 - C(n-c, k) / C(n, k)."""
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def evaluate_policy(policy, tokenizer, questions: Sequence[str], golds: Sequence[str], *,
                    prompt_fn: Callable[[str], str],
                    grade_batch: Callable[[list[str], list[str]], list],
                    delimiter: str, n_samples: int, pass_k: Sequence[int], temperature: float,
                    max_new_tokens: int, seed: int, greedy: bool = True) -> dict[str, float]:
    """Greedy accuracy and sampling accuracy (n_samples per problem at ``temperature``), pass@k,
    and diagnostics. ``steps_per_answer``, ``mean_response_tokens``, ``repeated_step_rate``,
    ``tokens_per_step`` and ``truncation_rate`` describe the sampled answers (the distribution RL
    trains); the ``greedy_`` versions describe the greedy ones. Ungradable answers count as
    wrong for accuracy and are reported in ``ungradable_rate``."""
    prompts = [prompt_fn(q) for q in questions]
    out: dict[str, float] = {"n_problems": len(questions)}
    if greedy:
        g = generate(policy, tokenizer, prompts, max_new_tokens=max_new_tokens, greedy=True)
        verdicts = grade_batch(g.texts, list(golds))
        out["greedy_accuracy"] = sum(v is True for v in verdicts) / max(1, len(verdicts))
        diag = _diagnostics(tokenizer, g, verdicts, delimiter)
        out.update({f"greedy_{k}": v for k, v in diag.items()})
    s = generate(policy, tokenizer, prompts, n=n_samples, max_new_tokens=max_new_tokens,
                 temperature=temperature, generator_seed=seed)
    verdicts = grade_batch(s.texts, [g for g in golds for _ in range(n_samples)])
    correct = [v is True for v in verdicts]
    out["sampling_accuracy"] = sum(correct) / max(1, len(correct))
    for k in pass_k:
        per_problem = [pass_at_k(n_samples, sum(correct[i * n_samples:(i + 1) * n_samples]), k)
                       for i in range(len(questions))]
        out[f"pass@{k}"] = sum(per_problem) / max(1, len(per_problem))
    out.update(_diagnostics(tokenizer, s, verdicts, delimiter))
    out["ungradable_rate"] = sum(v is None for v in verdicts) / max(1, len(verdicts))
    return out


def _diagnostics(tokenizer, gen, verdicts: list, delimiter: str) -> dict[str, float]:
    steps = steps_for_batch(tokenizer, gen.response_ids.tolist(), delimiter)
    success = [None if v is None else float(v) for v in verdicts]
    m = hacking_metrics([s.texts for s in steps], gen.response_lengths(), gen.truncated.tolist(), success)
    return m
