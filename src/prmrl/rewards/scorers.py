"""Scorers: callables that judge a batch of answers, in TRL's reward-function convention.

    success / ORM:  fn(prompts, completions, **columns) -> list[float | None]   one per answer
    PRM:            fn(prompts, steps, **columns) -> list[list[float | None]]   one per step

``prompts`` are the texts the policy saw; ``columns`` carry the problem's fields, one list entry
per answer: ``question`` (the raw question) and ``gold`` (its reference answer). A scorer takes
the columns it needs by name and ignores the rest (``**_``). None means "could not score": the
trainer counts it and applies ``reward.unscorable_reward`` (success) or no term (ORM, PRM), never
a silent 0. A PRM returns None only for a suffix of an answer's steps (past its context).
Steps arrive as text, so a PRM with its own tokenizer scores the policy's steps.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from prmrl.prompts import QUESTION_TEMPLATE

GradeFn = Callable[[str, str], "bool | None"]
RewardFn = Callable[..., list]     # (prompts, completions, **columns) -> list[float | None]
PRMFn = Callable[..., list]        # (prompts, steps, **columns) -> list[list[float | None]]


class SuccessReward:
    """1.0 right, 0.0 wrong, None when the grader cannot decide, from ``grade(response, gold)``
    or ``grade_batch(responses, golds)`` (e.g. a process pool). Reads the ``gold`` column."""

    def __init__(self, grade: GradeFn | None = None,
                 grade_batch: Callable[[list[str], list[str]], list] | None = None):
        if (grade is None) == (grade_batch is None):
            raise ValueError("give exactly one of grade or grade_batch")
        self._grade_batch = grade_batch or (lambda rs, gs: [grade(r, g) for r, g in zip(rs, gs)])

    def __call__(self, prompts: Sequence[str], completions: Sequence[str], *,
                 gold: Sequence[str], **_: Any) -> list[float | None]:
        verdicts = self._grade_batch(list(completions), list(gold))
        return [None if v is None else float(bool(v)) for v in verdicts]


class PRMReward:
    """A trained or public PRM (``reward.prm_format``) from a path. Reads the ``question``
    column (the raw question, not the chat-rendered prompt); without it, the prompts."""

    def __init__(self, path: str, fmt: str = "native", prompt_template: str | None = None,
                 delimiter: str = "\n", batch_size: int = 64, dtype=None,
                 trust_remote_code: bool = False, device=None):
        from prmrl.rewards.reward_models import load_prm

        kwargs = {"dtype": dtype, "trust_remote_code": trust_remote_code, "device": device}
        if fmt == "native":
            kwargs["delimiter"] = delimiter
            if prompt_template is not None:
                kwargs["prompt_template"] = prompt_template
        self.scorer = load_prm(path, fmt=fmt, **kwargs)
        self.batch_size = batch_size

    def __call__(self, prompts: Sequence[str], steps: Sequence[list[str]], *,
                 question: Sequence[str] | None = None, **_: Any) -> list[list[float | None]]:
        questions = list(question) if question is not None else list(prompts)
        return self.scorer.score(questions, [list(s) for s in steps], batch_size=self.batch_size)


class ORMReward:
    """A trained ORM from a path. Reads the ``question`` column (else the prompts)."""

    def __init__(self, path: str, prompt_template: str = QUESTION_TEMPLATE, batch_size: int = 64,
                 dtype=None, device=None):
        from prmrl.rewards.reward_models import load_orm

        self.scorer = load_orm(path, prompt_template=prompt_template, dtype=dtype, device=device)
        self.batch_size = batch_size

    def __call__(self, prompts: Sequence[str], completions: Sequence[str], *,
                 question: Sequence[str] | None = None, **_: Any) -> list[float | None]:
        questions = list(question) if question is not None else list(prompts)
        return self.scorer.score(questions, list(completions), batch_size=self.batch_size)
