"""A task = problems (train/test), how to prompt for them, and how to grade an answer.

Built-in tasks come from a config (``make_task``); any JSONL of questions and answers becomes a
task with ``Task.from_jsonl`` and a grade function of the user's.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from prmrl.prompts import QUESTION_TEMPLATE

if TYPE_CHECKING:
    from prmrl.config import TaskConfig


TASK_NAMES = ("arith", "gsm8k", "math", "math500", "jsonl")
"""what ``task.name`` may be: the embedded task, the three math datasets, or any JSONL
(``task.train_path`` / ``task.test_path``, graded by the math grader)"""


@dataclass
class Task:
    name: str
    train_questions: list[str]
    train_golds: list[str]
    test_questions: list[str]
    test_golds: list[str]
    prompt: Callable[[str], str]                 # question -> policy input text
    grade_batch: Callable[[list[str], list[str]], list]   # (responses, golds) -> bool | None each
    delimiter: str
    sft_pairs: Callable[[], list[tuple[str, str]]] | None = None
    test_problems: list | None = None            # task-specific records (arith: step checker)
    train_problems: list | None = None

    @classmethod
    def from_jsonl(cls, train: str | os.PathLike, test: str | os.PathLike | None = None, *,
                   question: str = "question", answer: str = "answer",
                   grade: Callable[[str, str], bool | None] | None = None,
                   prompt: Callable[[str], str] | None = None, delimiter: str = "\n",
                   name: str | None = None, limit_train: int | None = None,
                   limit_test: int | None = None, numeric_answers: bool = False) -> "Task":
        """Problems from JSONL files, one object per line with the fields ``question`` and
        ``answer`` (names of your columns). ``grade(response, gold) -> True / False / None``
        (None: cannot judge, counted); default: the math grader (final answer vs gold; with
        ``numeric_answers`` a bare last number counts as the answer, as for GSM8K).
        ``prompt(question) -> text`` (default: the question and a newline). A malformed row is
        an error naming its file, line and field."""
        from prmrl.tasks.math_data import TaskSpec, load_problems

        spec = TaskSpec(name=name or Path(train).stem, version="jsonl", files={},
                        question_field=question, answer_field=answer, answer_extractor="as_is")
        tr, _ = load_problems(spec, "train", path=train, limit=limit_train)
        te, _ = load_problems(spec, "test", path=test, limit=limit_test) if test else ([], None)
        if grade is None:
            from prmrl.grading import MathGrader

            grade_batch = MathGrader(numeric_answers=numeric_answers).grade_batch
        else:
            grade_batch = lambda rs, gs: [grade(r, g) for r, g in zip(rs, gs)]  # noqa: E731
        return cls(name=spec.name, train_questions=[p.question for p in tr],
                   train_golds=[p.answer for p in tr], test_questions=[p.question for p in te],
                   test_golds=[p.answer for p in te],
                   prompt=prompt or (lambda q: QUESTION_TEMPLATE.replace("{question}", q)),
                   grade_batch=grade_batch, delimiter=delimiter)


def arith_config(cfg: TaskConfig):
    from prmrl.tasks.arith import ArithConfig

    return ArithConfig(min_ops=cfg.min_ops, max_ops=cfg.max_ops, max_start=cfg.max_start,
                       max_addend=cfg.max_addend, max_factor=cfg.max_factor, max_value=cfg.max_value,
                       n_train=cfg.n_train, n_test=cfg.n_test, seed=cfg.split_seed)


def make_task(cfg: TaskConfig, tokenizer=None) -> Task:
    if cfg.name == "jsonl":
        if not cfg.train_path:
            raise ValueError("task.train_path: task 'jsonl' needs a JSONL file of training problems")
        return Task.from_jsonl(cfg.train_path, cfg.test_path, question=cfg.question_field,
                               answer=cfg.answer_field, delimiter=cfg.step_delimiter,
                               limit_train=cfg.limit_train, limit_test=cfg.limit_test)
    if cfg.name == "arith":
        from prmrl.tasks import arith

        train, test = arith.generate_splits(arith_config(cfg))
        corpus = arith.CorpusConfig(slip_rate=cfg.slip_rate, restate_rate=cfg.restate_rate,
                                    check_rate=cfg.check_rate, confusion_rate=cfg.confusion_rate,
                                    confusion_prob=cfg.confusion_prob)
        return Task(
            name="arith",
            train_questions=[p.question for p in train], train_golds=[p.answer for p in train],
            test_questions=[p.question for p in test], test_golds=[p.answer for p in test],
            prompt=arith.prompt,
            grade_batch=lambda rs, gs: [arith.grade(r, g) for r, g in zip(rs, gs)],
            delimiter=cfg.step_delimiter,
            sft_pairs=lambda: arith.sft_corpus(train, corpus),
            test_problems=test, train_problems=train)
    return _math_task(cfg, tokenizer)


def _math_task(cfg: TaskConfig, tokenizer) -> Task:
    from prmrl.grading import MathGrader
    from prmrl.prompts import DEFAULT_SYSTEM_PROMPT, render_prompt
    from prmrl.tasks.math_data import load_problems

    if tokenizer is None:
        raise ValueError(f"task '{cfg.name}' renders prompts with the policy's chat template: "
                         f"a tokenizer is needed")
    test_split = {"gsm8k": "test", "math": "test", "math500": "test"}[cfg.name]
    train_name = "math" if cfg.name == "math500" else cfg.name
    train, _ = load_problems(train_name, "train", path=cfg.train_path, limit=cfg.limit_train)
    test, _ = load_problems(cfg.name, test_split, path=cfg.test_path, limit=cfg.limit_test)
    system = cfg.system_prompt if cfg.system_prompt is not None else DEFAULT_SYSTEM_PROMPT
    # GSM8K's answers are numbers: a response's last number may be its answer there, nowhere else
    grader = MathGrader(numeric_answers=cfg.name == "gsm8k")
    return Task(
        name=cfg.name,
        train_questions=[p.question for p in train], train_golds=[p.answer for p in train],
        test_questions=[p.question for p in test], test_golds=[p.answer for p in test],
        prompt=lambda q: render_prompt(tokenizer, q, system_prompt=system),
        grade_batch=grader.grade_batch, delimiter=cfg.step_delimiter)
