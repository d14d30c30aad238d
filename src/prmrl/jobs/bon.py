"""Best-of-N (`prmrl bon`): how well the ORM and the PRM pick answers, against majority voting,
greedy decoding and pass@N, plus the PRM's step-level AUC/accuracy against the oracle labels.

One step per function, composed by :func:`bon_job`:

    sample   the policy's greedy answer and ``max(rm.bon_n)`` samples per test problem, graded
             (and their oracle step labels, when the task has a step checker)
    score    the ORM's score of each sample, the PRM's score of each of its steps
    metrics  the table, from correctness and scores alone (:func:`prmrl.evaluation.bon.bon_metrics`)
    report   ``bon.json`` and ``bon.png`` in ``run.out_dir``; returns the table as text

Printing is the caller's: ``print(format_bon_table(bon_job(cfg, policy)))``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from prmrl.config import Config
from prmrl.jobs.rm import label_job, progress_bar, train_rm_job
from prmrl.runs import start_run, write_json
from prmrl.tasks.arith import PROMPT_TEMPLATE


@dataclass
class BonSamples:
    """What :func:`sample` drew: ``k`` answers per problem, problem-major."""

    questions: list[str]
    answers: list                          # rm.label.SampledAnswer, k per problem
    k: int
    greedy_correct: list[bool]             # one per problem
    n_ungradable: int                      # sampled answers the grader could not judge (wrong)
    oracle: list[list[float]] | None       # per answer, the step checker's label of each step

    def per_problem(self, xs: Sequence) -> list[list]:
        """A list with one entry per answer, cut into one list per problem."""
        return [list(xs[i * self.k:(i + 1) * self.k]) for i in range(len(self.questions))]


@dataclass
class BonScores:
    orm: list[float | None]                # per answer
    steps: list[list[float | None]]        # per answer, per step (None: not scorable)


def sample(cfg: Config, policy, tokenizer, task) -> BonSamples:
    """Greedy answers and ``max(rm.bon_n)`` samples at ``rm.bon_temperature`` for the first
    ``rm.bon_problems`` test problems of ``task``."""
    from prmrl.rm.label import oracle_step_labels, sample_answers

    r = cfg.rm
    n = min(r.bon_problems, len(task.test_questions))
    k = max(r.bon_n)
    questions, golds = task.test_questions[:n], task.test_golds[:n]
    common = dict(prompt_fn=task.prompt, grade_batch=task.grade_batch, delimiter=task.delimiter,
                  max_new_tokens=r.max_new_tokens, batch_size=512)
    greedy, _ = sample_answers(policy, tokenizer, questions, golds, n_samples=1, temperature=1.0,
                               greedy=True, seed=0, **common)
    bar = progress_bar(n * k, "bon: sample", cfg.run.progress)
    answers, n_bad = sample_answers(policy, tokenizer, questions, golds, n_samples=k,
                                    temperature=r.bon_temperature, seed=cfg.run.seed * 1_000_003 + 3,
                                    progress=bar.update, **common)
    bar.close()
    oracle = oracle_step_labels(task.test_problems, answers) if task.test_problems is not None else None
    return BonSamples(questions=list(questions), answers=answers, k=k,
                      greedy_correct=[a.success for a in greedy], n_ungradable=n_bad, oracle=oracle)


def score(samples: BonSamples, orm_dir: str | Path, prm_dir: str | Path, delimiter: str) -> BonScores:
    """The ORM's score of each sampled answer and the (native-format) PRM's score of each step."""
    from prmrl.rewards.reward_models import load_orm, load_prm

    qs = [samples.questions[a.problem] for a in samples.answers]
    orm = load_orm(orm_dir, PROMPT_TEMPLATE)
    prm = load_prm(prm_dir, "native", prompt_template=PROMPT_TEMPLATE, delimiter=delimiter)
    lengths = [len(q) + len(a.response) for q, a in zip(qs, samples.answers)]
    return BonScores(orm=_by_length(lengths, orm.score, qs, [a.response for a in samples.answers]),
                     steps=_by_length(lengths, prm.score, qs, [a.steps for a in samples.answers]))


def metrics(samples: BonSamples, scores: BonScores, ns: Sequence[int]) -> dict:
    """The Best-of-N table of these samples and scores (no model involved)."""
    from prmrl.answers import extract_boxed
    from prmrl.evaluation.bon import bon_metrics

    per = samples.per_problem
    return bon_metrics(
        ns, correct=per([a.success for a in samples.answers]),
        finals=per([answer_key(extract_boxed(a.response)) for a in samples.answers]),
        orm_scores=per(scores.orm), step_scores=per(scores.steps), greedy_correct=samples.greedy_correct,
        oracle=per(samples.oracle) if samples.oracle is not None else None)


def report(result: dict, out_dir: str | Path) -> str:
    """Write ``bon.json`` and ``bon.png`` into ``out_dir``; return the table as text."""
    from prmrl.evaluation.bon import format_bon_table
    from prmrl.evaluation.plots import plot_bon

    out = Path(out_dir)
    write_json(out / "bon.json", result)
    plot_bon(result, out / "bon.png")
    return format_bon_table(result)


def bon_job(cfg: Config, policy: str | Path) -> dict:
    """Best-of-N on ``rm.bon_problems`` test problems of ``policy``'s samples, with the ORM and the
    PRM trained (or reused) on its labelled answers (:func:`prmrl.jobs.rm.train_rm_job`). Writes
    ``bon.json`` and ``bon.png`` into ``run.out_dir`` and returns what ``bon.json`` holds; prints
    nothing (:func:`prmrl.evaluation.bon.format_bon_table` makes the table)."""
    from prmrl.models.factory import load_policy, load_tokenizer
    from prmrl.tasks import make_task

    t_start = time.perf_counter()
    times: dict[str, float] = {}

    def lap(name: str, t: float) -> float:
        now = time.perf_counter()
        times[name] = now - t
        return now

    policy = str(policy)
    labels = label_job(cfg, policy)
    t = lap("label", t_start)
    orm_dir = train_rm_job(cfg, "orm", policy)
    t = lap("train_orm", t)
    prm_dir = train_rm_job(cfg, "prm", policy)
    t = lap("train_prm", t)

    out = start_run(cfg.run.out_dir, cfg)
    tok = load_tokenizer(policy)
    task = make_task(cfg.task, tok)
    samples = sample(cfg, load_policy(policy), tok, task)
    t = lap("sample", t)
    scores = score(samples, orm_dir, prm_dir, task.delimiter)
    lap("score", t)

    result = metrics(samples, scores, cfg.rm.bon_n)
    result["auto_label_auc_vs_oracle"] = labels.get("auto_label_auc_vs_oracle", math.nan)
    result["labeller"] = {key: v for key, v in labels.items() if key != "settings"}
    result["completions_per_second"] = labels.get("completions_per_second", math.nan)
    result["ungradable_answers"] = samples.n_ungradable
    result["models"] = {"policy": policy, "orm": str(orm_dir), "prm": str(prm_dir)}
    times["total"] = time.perf_counter() - t_start
    result["seconds"] = {key: round(v, 2) for key, v in times.items()}
    report(result, out)
    return result


def _by_length(lengths: list[int], score_fn, *columns: list) -> list:
    """``score_fn(*columns, batch_size=256)`` on rows sorted by length (so batches pad little),
    results back in the original order."""
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    out = score_fn(*[[col[i] for i in order] for col in columns], batch_size=256)
    result: list = [None] * len(order)
    for j, i in enumerate(order):
        result[i] = out[j]
    return result


def answer_key(boxed: str | None) -> str | None:
    """What majority voting compares: the boxed answer without spaces (None: no answer)."""
    return None if boxed is None else "".join(boxed.split())
