"""Best-of-N selection and the small statistics behind reward-model evaluation
(docs/method.md, "Evaluation").

Pure Python on lists of numbers: how a PRM's per-step scores become one score per answer
(``AGGREGATIONS``), majority voting, picking the best of the first N samples, a rank-based
ROC AUC (scikit-learn is not a dependency), and :func:`bon_metrics`, the whole Best-of-N table
from scores and correctness. Nothing here loads a model or imports the rest of prmrl (the
plot is :func:`prmrl.evaluation.plots.plot_bon`). A score of ``None`` or NaN means "could not score"
and ranks below every real score; it is never turned into 0 silently.
"""

from __future__ import annotations

import math
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


# ---- the Best-of-N table ---------------------------------------------------------------------------

def bon_metrics(ns: Sequence[int], correct: Sequence[Sequence[bool]], finals: Sequence[Sequence[str | None]],
                orm_scores: Sequence[Sequence[Score]], step_scores: Sequence[Sequence[Sequence[Score]]],
                greedy_correct: Sequence[bool],
                oracle: Sequence[Sequence[Sequence[float]]] | None = None) -> dict:
    """Accuracy of each way of picking an answer, per N, and the PRM's step-level figures.

    One list per problem, one entry per sample (at least ``max(ns)`` of them, same order in
    every argument): ``correct`` (is the sample right), ``finals`` (its final answer, normalised,
    None: none; what voting compares), ``orm_scores`` (its ORM score), ``step_scores`` (its PRM
    score per step); ``greedy_correct``: one bool per problem; ``oracle``: the true label of each
    step, shaped like ``step_scores``, or None when the task has no step checker.

    Returns, each keyed by ``str(N)``: ``greedy`` (the same at every N), ``majority``, ``orm``,
    ``prm_{min,last,prod,mean}`` (best of N by the aggregated step scores), ``orm_vote`` /
    ``prm_vote`` (votes weighted by the ORM score / the PRM's min step score, Math-Shepherd's
    "self-consistency + reward model") and ``pass`` (any of the first N right); then
    ``prm_step_auc`` (NaN without ``oracle``), with ``oracle`` also ``prm_step_accuracy`` (at
    0.5), ``n_steps_scored`` and ``oracle_step_positive_rate``; ``sampling_accuracy`` (over
    every sample) and ``n_problems``. Unscorable steps (None) are left out of the step figures.
    """
    n = len(correct)
    ns = sorted(ns)
    result: dict = {
        "greedy": {str(N): sum(map(bool, greedy_correct)) / max(1, n) for N in ns},
        "majority": {str(N): majority_at_n(finals, correct, N) for N in ns},
        "orm": {str(N): best_of_n(orm_scores, correct, N) for N in ns},
    }
    aggregated = {name: [[fn(s) for s in problem] for problem in step_scores]
                  for name, fn in AGGREGATIONS.items()}
    for name, agg in aggregated.items():
        result[f"prm_{name}"] = {str(N): best_of_n(agg, correct, N) for N in ns}
    result["orm_vote"] = {str(N): weighted_vote_at_n(finals, orm_scores, correct, N) for N in ns}
    result["prm_vote"] = {str(N): weighted_vote_at_n(finals, aggregated["min"], correct, N) for N in ns}
    result["pass"] = {str(N): sum(any(c[:N]) for c in correct) / max(1, n) for N in ns}
    if oracle is not None:
        pairs = [(s, y) for p_scores, p_labels in zip(step_scores, oracle, strict=True)
                 for ss, ys in zip(p_scores, p_labels, strict=True)
                 for s, y in zip(ss, ys, strict=True) if s is not None]
        xs, ys = [p[0] for p in pairs], [p[1] for p in pairs]
        result["prm_step_auc"] = roc_auc(xs, ys)
        result["prm_step_accuracy"] = accuracy_at(xs, ys, 0.5)
        result["n_steps_scored"] = len(pairs)
        result["oracle_step_positive_rate"] = sum(y >= 0.5 for y in ys) / max(1, len(ys))
    else:
        result["prm_step_auc"] = math.nan
    n_samples = sum(len(c) for c in correct)
    result["sampling_accuracy"] = sum(bool(x) for c in correct for x in c) / max(1, n_samples)
    result["n_problems"] = n
    return result


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
