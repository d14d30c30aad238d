"""Best-of-N selection and the small statistics behind reward-model evaluation.

Pure Python on lists of numbers: how a PRM's per-step scores become one score per answer
(``AGGREGATIONS``), majority voting, picking the best of the first N samples, and a rank-based
ROC AUC (scikit-learn is not a dependency). A score of ``None`` or NaN means "could not score"
and ranks below every real score; it is never turned into 0 silently.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Callable, Sequence

Score = float | None


def _real(xs: Sequence[Score]) -> list[float]:
    return [float(x) for x in xs if x is not None and not math.isnan(x)]


def agg_min(step_scores: Sequence[Score]) -> float:
    """The weakest step: a solution is as good as its worst step (Lightman et al. 2023)."""
    xs = _real(step_scores)
    return min(xs) if xs else math.nan


def agg_last(step_scores: Sequence[Score]) -> float:
    """The last step's score; a PRM's last step sees the whole answer, like an ORM."""
    xs = _real(step_scores)
    return xs[-1] if xs else math.nan


def agg_prod(step_scores: Sequence[Score]) -> float:
    """Product of step scores: P(every step right) if steps were independent."""
    xs = _real(step_scores)
    return math.prod(xs) if xs else math.nan


def agg_mean(step_scores: Sequence[Score]) -> float:
    xs = _real(step_scores)
    return sum(xs) / len(xs) if xs else math.nan


AGGREGATIONS: dict[str, Callable[[Sequence[Score]], float]] = {
    "min": agg_min,
    "last": agg_last,
    "prod": agg_prod,
    "mean": agg_mean,
}


def _key(x: Score) -> float:
    return -math.inf if x is None or math.isnan(x) else float(x)


def argmax_first(scores: Sequence[Score]) -> int:
    """Index of the highest score, the first one on ties; unscorable entries rank last."""
    if not scores:
        raise ValueError("argmax_first: no scores")
    best = 0
    for i in range(1, len(scores)):
        if _key(scores[i]) > _key(scores[best]):
            best = i
    return best


def majority_vote(answers: Sequence[str | None]) -> int:
    """Index of the first sample holding the most frequent answer (ties: the answer seen first).

    ``None`` (no extractable answer) does not vote; if no sample has an answer, index 0.
    Answers are compared as given (the caller normalises them, e.g. strips whitespace).
    """
    if not answers:
        raise ValueError("majority_vote: no answers")
    return weighted_vote(answers, [1.0] * len(answers))


def weighted_vote(answers: Sequence[str | None], weights: Sequence[Score]) -> int:
    """Index of the first sample holding the answer whose samples' weights sum highest (ties:
    the answer seen first): majority voting where each vote counts its reward-model score.

    ``None`` answers do not vote; an unscorable weight (None/NaN) adds nothing to its answer's
    total (the sample still holds the answer). If no sample has an answer, index 0.
    """
    if not answers:
        raise ValueError("weighted_vote: no answers")
    if len(answers) != len(weights):
        raise ValueError(f"weighted_vote: {len(answers)} answers but {len(weights)} weights")
    totals: dict[str, float] = {}
    for a, w in zip(answers, weights):
        if a is not None:
            totals[a] = totals.get(a, 0.0) + (0.0 if w is None or math.isnan(w) else float(w))
    if not totals:
        return 0
    top = max(totals.values())
    return next(i for i, a in enumerate(answers) if a is not None and totals[a] == top)


def weighted_vote_at_n(answers: Sequence[Sequence[str | None]], weights: Sequence[Sequence[Score]],
                       correct: Sequence[Sequence[bool]], n: int) -> float:
    """Accuracy of reward-weighted voting over each problem's first ``n`` samples."""
    if not answers:
        return math.nan
    hits = sum(bool(c[weighted_vote(a[:n], w[:n])])
               for a, w, c in zip(answers, weights, correct, strict=True))
    return hits / len(answers)


def best_of_n(scores: Sequence[Sequence[Score]], correct: Sequence[Sequence[bool]], n: int) -> float:
    """Accuracy when each problem keeps the highest-scored of its first ``n`` samples.

    scores, correct: one list per problem, one entry per sample (at least n of them).
    """
    if not scores:
        return math.nan
    hits = 0
    for s, c in zip(scores, correct, strict=True):
        if len(s) < n:
            raise ValueError(f"best_of_n: {len(s)} samples for a problem, need n={n}")
        hits += bool(c[argmax_first(s[:n])])
    return hits / len(scores)


def majority_at_n(answers: Sequence[Sequence[str | None]], correct: Sequence[Sequence[bool]],
                  n: int) -> float:
    """Accuracy of majority voting over each problem's first ``n`` samples."""
    if not answers:
        return math.nan
    hits = sum(bool(c[majority_vote(a[:n])]) for a, c in zip(answers, correct, strict=True))
    return hits / len(answers)


def roc_auc(scores: Sequence[float], labels: Sequence[float]) -> float:
    """Area under the ROC curve: P(score of a random positive > score of a random negative),
    ties counting one half (Mann-Whitney U with average ranks). Labels >= 0.5 are positive.
    NaN when either class is empty.

    >>> roc_auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])
    0.75
    """
    if len(scores) != len(labels):
        raise ValueError(f"roc_auc: {len(scores)} scores but {len(labels)} labels")
    pos = [y >= 0.5 for y in labels]
    n_pos = sum(pos)
    n_neg = len(pos) - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan
    order = sorted(range(len(scores)), key=lambda i: scores[i])
    ranks = [0.0] * len(scores)
    i = 0
    while i < len(order):  # average 1-based ranks over each group of tied scores
        j = i
        while j + 1 < len(order) and scores[order[j + 1]] == scores[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    rank_sum = sum(r for r, p in zip(ranks, pos) if p)
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def accuracy_at(scores: Sequence[float], labels: Sequence[float], threshold: float = 0.5) -> float:
    """Fraction of items where (score >= threshold) agrees with (label >= 0.5)."""
    if not scores:
        return math.nan
    return sum((s >= threshold) == (y >= 0.5) for s, y in zip(scores, labels, strict=True)) / len(scores)


# ---- report ------------------------------------------------------------------------------------

BON_METHODS = ["greedy", "majority", "orm", "prm_min", "prm_last", "prm_prod", "prm_mean",
               "orm_vote", "prm_vote"]


def format_bon_table(result: dict) -> str:
    """Accuracy per method (rows) and N (columns), then the PRM's step-level figures."""
    ns = list(result["greedy"])
    methods = [m for m in BON_METHODS + ["pass"] if m in result]
    head = "method".ljust(10) + "".join(f"{'N=' + n:>8}" for n in ns)
    lines = [head, "-" * len(head)]
    for m in methods:
        lines.append(m.ljust(10) + "".join(f"{result[m][n]:>8.3f}" for n in ns))
    for key in ("prm_step_auc", "prm_step_accuracy", "auto_label_auc_vs_oracle", "completions_per_second"):
        if key in result:
            lines.append(f"{key}: {result[key]:.3f}")
    return "\n".join(lines)


def plot_bon(result: dict, path) -> None:
    """Accuracy against N (log2 axis), one line per method."""
    from pathlib import Path

    from prmrl.evaluation.plots import _pyplot

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for m in [m for m in BON_METHODS + ["pass"] if m in result]:
        ns = [int(n) for n in result[m]]
        style = {"linestyle": ":"} if m in ("greedy", "pass") else {}
        ax.plot(ns, [result[m][str(n)] for n in ns], marker="o", label=m, **style)
    ax.set_xscale("log", base=2)
    ax.set_xticks(ns, [str(n) for n in ns])
    ax.set_xlabel("N (samples per problem)")
    ax.set_ylabel("accuracy")
    ax.set_title(f"Best-of-N, {result.get('n_problems', '?')} test problems")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
