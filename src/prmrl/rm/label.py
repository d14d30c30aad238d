"""Data for reward models: sample answers from a policy, then label each answer and each step
(docs/method.md, "Reward models").

- Outcome label (ORM): whether the answer's final answer is right (``grade``).
- Automatic step labels (PRM), the Math-Shepherd way (Wang et al. 2024, arXiv 2312.08935): from
  the prefix ending with step k, a completer policy samples M continuations; the soft label is
  the fraction that reach the gold answer, the hard label whether any does.
- Oracle step labels (embedded arith task only): the ground-truth step checker ``check_steps``.
  They are the reference the automatic labels and the trained PRM are measured against.

Speed comes from three choices (labelling is most of the reward-model pipeline's time):
1. every prefix of every answer goes into a few large batches (``sample_texts``: sorted by
   length, one shared prefill for a prefix's M completions, finished rows dropped); prefix +
   completion get the token budget of one answer, so runaways stop where answers would;
2. identical (question, prefix) pairs are completed once: samples of one problem often share
   their first steps;
3. the final step is not completed: its prefix is the whole answer, so its label is the answer's
   success. That holds for truncated answers too (we label the answer the policy wrote).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable, Sequence

from prmrl.evaluation.bon import accuracy_at, roc_auc
from prmrl.models.sampler import sample_tokens
from prmrl.rm.records import OutcomeRecord, StepLabelRecord
from prmrl.steps import split_steps, step_texts


@dataclass
class SampledAnswer:
    """One sampled response to problem ``problem`` (an index into the question list)."""

    problem: int
    sample: int
    response: str               # decoded response (special tokens dropped)
    steps: list[str]            # step texts (no delimiter, trimmed)
    step_ends: list[int]        # end offset in ``response`` of each step's last character + 1
    success: bool               # graded right; an ungradable answer counts as wrong (and is counted)
    truncated: bool

    def prefix(self, k: int, delimiter: str) -> str:
        """The response up to and including step k and its delimiter: what a completer continues."""
        return self.response[: self.step_ends[k]] + delimiter


def sample_texts(model, tokenizer, prompts: Sequence[str], *, n: int = 1, budgets: int | Sequence[int],
                 temperature: float = 1.0, greedy: bool = False, batch_size: int = 512, seed: int = 0,
                 progress: Callable[[int], None] | None = None) -> tuple[list[str], list[bool]]:
    """``n`` continuations of each prompt as text (prompt-major), at most ``budgets[i]`` new
    tokens each, and whether each hit its budget without EOS: ``rl.generation.sample_tokens``
    (the sampler PPO uses: one prefill per prompt, finished rows dropped), decoded."""
    ids, _, truncated, _ = sample_tokens(model, tokenizer, prompts, n=n, budgets=budgets,
                                         temperature=temperature, greedy=greedy,
                                         batch_size=batch_size, seed=seed, progress=progress)
    return tokenizer.batch_decode(ids, skip_special_tokens=True), truncated


def sample_answers(policy, tokenizer, questions: Sequence[str], golds: Sequence[str], *,
                   prompt_fn: Callable[[str], str], grade_batch: Callable[[list[str], list[str]], list],
                   delimiter: str, n_samples: int, temperature: float, max_new_tokens: int,
                   batch_size: int = 512, seed: int = 0, greedy: bool = False,
                   progress: Callable[[int], None] | None = None) -> tuple[list[SampledAnswer], int]:
    """``n_samples`` answers per question (problem-major order), split into steps and graded.
    Returns the answers and how many the grader could not judge (counted as wrong)."""
    texts, truncated = sample_texts(policy, tokenizer, [prompt_fn(q) for q in questions], n=n_samples,
                                    budgets=max_new_tokens, temperature=temperature, greedy=greedy,
                                    batch_size=batch_size, seed=seed, progress=progress)
    verdicts = grade_batch(texts, [g for g in golds for _ in range(n_samples)])
    answers = []
    for i, (text, v, tr) in enumerate(zip(texts, verdicts, truncated)):
        spans = split_steps(text, delimiter)
        answers.append(SampledAnswer(problem=i // n_samples, sample=i % n_samples, response=text,
                                     steps=step_texts(text, spans), step_ends=[s.end for s in spans],
                                     success=v is True, truncated=tr))
    return answers, sum(v is None for v in verdicts)


@dataclass
class AutoLabels:
    labels: list[list[float]]   # per answer, one float per step
    n_prefixes: int             # non-final step prefixes over all answers
    n_unique: int               # distinct (question, prefix) pairs completed
    n_completions: int          # = n_unique * M
    seconds: float              # wall time of the completion calls
    n_ungradable: int

    @property
    def completions_per_second(self) -> float:
        return self.n_completions / self.seconds if self.seconds > 0 else math.nan


def auto_step_labels(completer, tokenizer, answers: Sequence[SampledAnswer], questions: Sequence[str],
                     golds: Sequence[str], *, prompt_fn: Callable[[str], str],
                     grade_batch: Callable[[list[str], list[str]], list], delimiter: str,
                     completions_per_step: int, soft: bool = True, temperature: float = 1.0,
                     max_new_tokens: int = 64, batch_size: int = 512, seed: int = 0,
                     progress: Callable[[int], None] | None = None) -> AutoLabels:
    """Math-Shepherd labels for every step of every answer (see the module docstring).

    A completion is graded as prefix + completion, the whole response it makes. Labels are
    floats: soft = fraction of the M completions reaching the gold, hard = 1.0 if any does.
    """
    m = completions_per_step
    if m < 1:
        raise ValueError(f"completions_per_step must be >= 1, got {m}")
    unique: dict[tuple[int, str], int] = {}        # (problem, response prefix) -> slot
    where: list[list[int | None]] = []              # per answer, per step: slot (None = final step)
    n_prefixes = 0
    for a in answers:
        slots: list[int | None] = []
        for k in range(len(a.steps) - 1):
            key = (a.problem, a.prefix(k, delimiter))
            slots.append(unique.setdefault(key, len(unique)))
            n_prefixes += 1
        where.append(slots + [None] if a.steps else [])
    keys = list(unique)                              # slot -> (problem, response prefix)
    prompts = [prompt_fn(questions[q]) + prefix for q, prefix in keys]
    t0 = time.perf_counter()
    # Prefix + completion get the token budget of one answer: a longer one was never sampled.
    done = tokenizer([prefix for _, prefix in keys], add_special_tokens=False)["input_ids"] if keys else []
    texts, _ = sample_texts(completer, tokenizer, prompts, n=m,
                            budgets=[max_new_tokens - len(d) for d in done], temperature=temperature,
                            batch_size=batch_size, seed=seed, progress=progress)
    seconds = time.perf_counter() - t0
    full = [prefix + texts[s * m + j] for s, (_, prefix) in enumerate(keys) for j in range(m)]
    verdicts = grade_batch(full, [golds[q] for q, _ in keys for _ in range(m)])
    reached = [sum(v is True for v in verdicts[s * m:(s + 1) * m]) for s in range(len(keys))]
    value = [(r / m if soft else float(r > 0)) for r in reached]
    labels = [[float(a.success) if slot is None else value[slot] for slot in slots]
              for a, slots in zip(answers, where)]
    return AutoLabels(labels=labels, n_prefixes=n_prefixes, n_unique=len(keys),
                      n_completions=len(texts), seconds=seconds,
                      n_ungradable=sum(v is None for v in verdicts))


def oracle_step_labels(problems: Sequence, answers: Sequence[SampledAnswer]) -> list[list[float]]:
    """Ground-truth step labels from the arith step checker (``problems``: arith ``Problem``s,
    indexed by ``SampledAnswer.problem``)."""
    from prmrl.tasks.arith import check_steps

    return [[v.label for v in check_steps(problems[a.problem], a.steps)] for a in answers]


def label_agreement(auto: Sequence[list[float]], oracle: Sequence[list[float]]) -> dict[str, float]:
    """How well automatic labels predict oracle labels, over all steps and over non-final steps
    (final steps copy the answer's success, which is nearly the oracle's verdict on them)."""
    flat = [(x, y) for a, o in zip(auto, oracle, strict=True) for x, y in zip(a, o, strict=True)]
    inner = [(x, y) for a, o in zip(auto, oracle) for x, y in list(zip(a, o))[:-1]]
    out = {}
    for name, pairs in (("", flat), ("_nonfinal", inner)):
        xs, ys = [p[0] for p in pairs], [p[1] for p in pairs]
        out[f"auto_label_auc_vs_oracle{name}"] = roc_auc(xs, ys)
        out[f"auto_label_agreement{name}"] = accuracy_at(xs, ys, 0.5)
        # "any completion reaches the gold" against the oracle: Math-Shepherd's hard label.
        out[f"auto_label_agreement_hard{name}"] = accuracy_at([float(x > 0) for x in xs], ys, 0.5)
    return out


def to_step_records(answers: Sequence[SampledAnswer], questions: Sequence[str],
                    labels: Sequence[list[float]], source: str,
                    extra: dict[str, Sequence[list[float]]] | None = None) -> list[StepLabelRecord]:
    """One record per answer; ``meta`` keeps what the ORM and the reports need (the response, its
    success, and any other label sets, e.g. {"oracle": ..., "auto": ...})."""
    records = []
    for i, (a, lab) in enumerate(zip(answers, labels, strict=True)):
        meta = {"problem": a.problem, "sample": a.sample, "response": a.response,
                "success": a.success, "truncated": a.truncated}
        for name, sets in (extra or {}).items():
            meta[name] = [float(x) for x in sets[i]]
        records.append(StepLabelRecord(question=questions[a.problem], steps=list(a.steps),
                                       labels=list(lab), source=source, meta=meta))
    return records


def outcome_records(records: Sequence[StepLabelRecord]) -> list[OutcomeRecord]:
    """ORM examples from step records written by :func:`to_step_records`."""
    return [OutcomeRecord(question=r.question, response=r.meta["response"],
                          label=1.0 if r.meta["success"] else 0.0) for r in records]
