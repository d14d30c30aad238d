"""prmrl: RL for LLM reasoners with learned reward models (ORM/PRM) that resist reward hacking.

The package root stays light so the pure-math modules import without transformers.
"""

__version__ = "0.1.0"


def grade(response: str, gold: str) -> bool | None:
    """True/False if ``response``'s final answer equals ``gold``; None when undecidable.

    See :func:`prmrl.grading.grade` (math-verify with a per-answer deadline).
    """
    from prmrl.grading import grade as _grade

    return _grade(response, gold)
