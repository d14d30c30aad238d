"""Reward-hacking diagnostics for a batch of sampled answers (pure python, no model code).

Gao et al. 2024 report that a naive PRM reward makes the policy emit many short, repeated or
filler steps: step count and length climb while accuracy falls. These numbers make that visible
in the training logs. Tokens per step also catches the opposite hack (dropping the separator
to get fewer, longer steps) that a per-step baseline can provoke (docs/method.md, "Pitfalls").
"""

from __future__ import annotations


def normalize_step(text: str) -> str:
    """Collapse every whitespace run to one space and strip the ends."""
    return " ".join(text.split())


def repeated_step_count(steps: list[str]) -> int:
    """Number of steps identical (after ``normalize_step``) to an EARLIER step of this answer."""
    seen: set[str] = set()
    repeats = 0
    for step in steps:
        key = normalize_step(step)
        repeats += key in seen
        seen.add(key)
    return repeats


def repeated_step_rate(steps_per_answer: list[list[str]]) -> float:
    """Total repeated steps / total steps over all answers; 0.0 when there are no steps."""
    total = sum(len(steps) for steps in steps_per_answer)
    if total == 0:
        return 0.0
    return sum(repeated_step_count(steps) for steps in steps_per_answer) / total


def _ratio(num: float, den: float) -> float:
    return num / den if den else 0.0


def hacking_metrics(
    steps: list[list[str]],
    response_tokens: list[int],
    truncated: list[bool],
    success: list[float | None],
    prm_scores: list[list[float | None]] | None = None,
) -> dict[str, float]:
    """Batch statistics that reveal step-count hacking. One entry per answer in every list.

    steps: each answer's steps (text); response_tokens: response length in policy tokens;
    truncated: hit the generation length limit; success: 1.0/0.0, None = could not be graded;
    prm_scores: optional PRM score per step (same lengths as ``steps``), None where the PRM could
    not score the step (e.g. past its context).

    Keys (every value 0.0 when its denominator is empty):

    - ``steps_per_answer``: total steps / answers.
    - ``repeated_step_rate``: steps equal to an earlier step of the same answer / total steps.
    - ``tokens_per_step``: total response tokens / total steps.
    - ``mean_response_tokens``: total response tokens / answers.
    - ``truncation_rate``: truncated answers / answers.

    With ``prm_scores`` also:

    - ``prm_mean_score``: mean PRM score over all scored steps of all answers.
    - ``prm_success_agreement``: over answers with a success value and every step scored, the
      fraction where [min step score >= 0.5] == [success >= 0.5] (the PRM's verdict on the
      weakest step agrees with the grader).

    Each of the two is left out when nothing was scored / judged (an undefined value is not 0).
    """
    n = len(steps)
    if not (len(response_tokens) == len(truncated) == len(success) == n):
        raise ValueError(
            "steps, response_tokens, truncated and success need one entry per answer; got "
            f"{n}, {len(response_tokens)}, {len(truncated)}, {len(success)}"
        )
    total_steps = sum(len(s) for s in steps)
    total_tokens = sum(response_tokens)
    metrics = {
        "steps_per_answer": _ratio(total_steps, n),
        "repeated_step_rate": repeated_step_rate(steps),
        "tokens_per_step": _ratio(total_tokens, total_steps),
        "mean_response_tokens": _ratio(total_tokens, n),
        "truncation_rate": _ratio(sum(bool(t) for t in truncated), n),
    }
    if prm_scores is None:
        return metrics

    if len(prm_scores) != n or any(len(p) != len(s) for p, s in zip(prm_scores, steps)):
        raise ValueError("prm_scores must hold one score per step of every answer")
    all_scores = [x for per_answer in prm_scores for x in per_answer if x is not None]
    judged = [(min(p), ok) for p, ok in zip(prm_scores, success)
              if ok is not None and p and all(x is not None for x in p)]
    if all_scores:
        metrics["prm_mean_score"] = sum(all_scores) / len(all_scores)
    if judged:
        metrics["prm_success_agreement"] = sum((low >= 0.5) == (ok >= 0.5) for low, ok in judged) / len(judged)
    return metrics
