"""Scorers: callables that judge a batch of answers.

A scorer returns one float or None per answer (success, ORM) or one list per answer (PRM).
None means "could not score": the trainer counts it and gives it a configured reward, never a
silent 0. Steps arrive as text, so a PRM with its own tokenizer scores the policy's steps.
"""

from __future__ import annotations

from typing import Callable, Sequence

GradeFn = Callable[[str, str], "bool | None"]


class SuccessReward:
    """``(questions, completions, golds) -> list[float | None]``: 1.0 right, 0.0 wrong, None
    when the grader cannot decide. ``grade_batch`` grades many at once (e.g. in a process pool)."""

    def __init__(self, grade: GradeFn | None = None,
                 grade_batch: Callable[[list[str], list[str]], list] | None = None):
        if (grade is None) == (grade_batch is None):
            raise ValueError("give exactly one of grade or grade_batch")
        self._grade_batch = grade_batch or (lambda rs, gs: [grade(r, g) for r, g in zip(rs, gs)])

    def __call__(self, questions: Sequence[str], completions: Sequence[str],
                 golds: Sequence[str]) -> list[float | None]:
        verdicts = self._grade_batch(list(completions), list(golds))
        return [None if v is None else float(bool(v)) for v in verdicts]


def success_reward_for(task: str) -> SuccessReward:
    if task == "arith":
        from prmrl.tasks.arith import grade

        return SuccessReward(grade=grade)
    from prmrl.grading import MathGrader

    grader = MathGrader()
    return SuccessReward(grade_batch=grader.grade_batch)


class PRMReward:
    """``(questions, step_texts) -> list[list[float | None]]`` from a trained or public PRM."""

    def __init__(self, path: str, fmt: str = "native", prompt_template: str | None = None,
                 delimiter: str = "\n", batch_size: int = 64, dtype=None,
                 trust_remote_code: bool = False):
        from prmrl.rewards.reward_models import load_prm

        kwargs = {"dtype": dtype, "trust_remote_code": trust_remote_code}
        if fmt == "native":
            kwargs["delimiter"] = delimiter
            if prompt_template is not None:
                kwargs["prompt_template"] = prompt_template
        self.scorer = load_prm(path, fmt=fmt, **kwargs)
        self.batch_size = batch_size

    def __call__(self, questions: Sequence[str], steps: Sequence[list[str]]) -> list[list[float | None]]:
        return self.scorer.score(list(questions), [list(s) for s in steps], batch_size=self.batch_size)


class ORMReward:
    """``(questions, completions) -> list[float | None]`` from a trained ORM."""

    def __init__(self, path: str, prompt_template: str = "{question}\n", batch_size: int = 64,
                 dtype=None):
        from prmrl.rewards.reward_models import load_orm

        self.scorer = load_orm(path, prompt_template=prompt_template, dtype=dtype)
        self.batch_size = batch_size

    def __call__(self, questions: Sequence[str], completions: Sequence[str]) -> list[float | None]:
        return self.scorer.score(list(questions), list(completions), batch_size=self.batch_size)
