"""Prompts for math policies: the tokenizer's own chat template with a configurable system prompt.

A policy is prompted the way it was instruction-tuned; for Qwen2.5-Math-Instruct that is its chat
template with the system prompt below, so RL starts from the model's evaluated accuracy.
Tokenizers without a chat template (base models, the char tokenizer of the toy task) get the plain
template ``PLAIN_TEMPLATE``: ``"{system}\\n\\n{question}\\n"``, or ``"{question}\\n"`` when there is
no system prompt.
"""

from __future__ import annotations

from typing import Any

# The Qwen2.5-Math-Instruct system prompt (as in its tokenizer_config.json chat template).
DEFAULT_SYSTEM_PROMPT = "Please reason step by step, and put your final answer within \\boxed{}."

PLAIN_TEMPLATE = "{system}\n\n{question}\n"
QUESTION_TEMPLATE = "{question}\n"
"""A question and a newline: the plain prompt without a system line, the embedded task's prompt,
and the default reward-model input before the steps (written here once)."""


def render_prompt(
    tokenizer: Any, question: str, system_prompt: str | None = DEFAULT_SYSTEM_PROMPT
) -> str:
    """The prompt text for ``question``, ending where the assistant's answer starts.

    ``system_prompt=None`` (or "") sends no system message: a chat template then applies its own
    default (Qwen2.5-Math's is the same as DEFAULT_SYSTEM_PROMPT; Qwen2.5-Instruct's is "You are
    Qwen, ..."), and the plain template drops the system line.
    """
    if getattr(tokenizer, "chat_template", None):
        messages = [{"role": "user", "content": question}]
        if system_prompt:
            messages.insert(0, {"role": "system", "content": system_prompt})
        return tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    if system_prompt:
        return PLAIN_TEMPLATE.format(system=system_prompt, question=question)
    return QUESTION_TEMPLATE.replace("{question}", question)
