"""prmrl: RL for LLM reasoners with learned reward models (ORM/PRM) that resist reward hacking.

The Python API (README, "Python API")::

    from prmrl import PPOTrainer, PPOConfig, RewardConfig, Task

    trainer = PPOTrainer("path/to/policy", ppo=PPOConfig(iterations=20),
                         reward=RewardConfig(shaping="clip_delta"), prm=my_prm,
                         task=Task.from_jsonl("train.jsonl", question="problem", answer="answer"),
                         output_dir="runs/mine")
    trainer.fit(resume=True)

The package root imports nothing heavy: each name is loaded on first use, so the pure-math
modules import without transformers.
"""

from __future__ import annotations

__version__ = "0.1.0"

_EXPORTS = {
    "PPOTrainer": "prmrl.rl.trainer",
    "NonFiniteError": "prmrl.rl.trainer",
    "TrainingInterrupted": "prmrl.rl.checkpoint",
    "Callback": "prmrl.rl.callbacks",
    "PPOConfig": "prmrl.config",
    "RewardConfig": "prmrl.config",
    "Config": "prmrl.config",
    "ConfigError": "prmrl.config",
    "load_config": "prmrl.config",
    "Task": "prmrl.tasks",
    "make_task": "prmrl.tasks",
    "StepSpan": "prmrl.steps",
    "split_steps": "prmrl.steps",
    "SuccessReward": "prmrl.rewards.scorers",
    "ORMReward": "prmrl.rewards.scorers",
    "PRMReward": "prmrl.rewards.scorers",
    "SHAPING_METHODS": "prmrl.rewards.shaping",
    "shape_step_rewards": "prmrl.rewards.shaping",
}
__all__ = sorted([*_EXPORTS, "grade"])


def __getattr__(name: str):
    if name in _EXPORTS:
        import importlib

        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'prmrl' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


def grade(response: str, gold: str, numeric: bool = False) -> bool | None:
    """True/False if ``response``'s final answer equals ``gold``; None when undecidable.
    ``numeric``: the task's answers are numbers (GSM8K), so a bare last number is an answer.

    See :func:`prmrl.grading.grade` (math-verify with a per-answer deadline).
    """
    from prmrl.grading import grade as _grade

    return _grade(response, gold, numeric=numeric)
