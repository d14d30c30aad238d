"""Prompts rendered with the real Qwen2.5 tokenizers' chat templates (those tests skip without
../shared/tokenizers), and the plain fallback."""

from __future__ import annotations

import json

import pytest

from prmrl.models.tokenizer import build_char_tokenizer
from prmrl.prompts import DEFAULT_SYSTEM_PROMPT, render_prompt

QWEN_MATH = "tokenizers/qwen2.5-math-instruct"
QWEN = "tokenizers/qwen2.5-instruct"
MISTRAL = "tokenizers/mistral-7b-v0.1"


@pytest.fixture(scope="module")
def load(shared_path):
    """``load(folder)``: the real tokenizer under ../shared, or skip naming the folder."""
    def _load(folder: str):
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(str(shared_path(folder)))
    return _load


@pytest.mark.needs_shared(QWEN_MATH)
def test_default_system_prompt_is_qwen_maths(shared_path):
    config = json.loads((shared_path(QWEN_MATH) / "tokenizer_config.json").read_text())
    # The template holds it as a Jinja string literal, with the backslash escaped.
    assert DEFAULT_SYSTEM_PROMPT.replace("\\", "\\\\") in config["chat_template"]
    assert DEFAULT_SYSTEM_PROMPT == "Please reason step by step, and put your final answer within \\boxed{}."


@pytest.mark.needs_shared(QWEN_MATH)
def test_qwen_math_chat_template(load):
    tok = load(QWEN_MATH)
    question = "What is $\\frac{1}{2} + {x}$?"
    expected = (
        "<|im_start|>system\nPlease reason step by step, and put your final answer within "
        "\\boxed{}.<|im_end|>\n<|im_start|>user\n" + question + "<|im_end|>\n<|im_start|>assistant\n"
    )
    assert render_prompt(tok, question) == expected
    # No system prompt: the template's own default, which for this tokenizer is the same.
    assert render_prompt(tok, question, system_prompt=None) == expected
    custom = render_prompt(tok, question, system_prompt="Be brief.")
    assert custom.startswith("<|im_start|>system\nBe brief.<|im_end|>\n")
    ids = tok(expected, add_special_tokens=False)["input_ids"]
    assert tok.decode(ids) == expected  # special tokens are single tokens, round trip is exact
    assert tok.convert_tokens_to_ids("<|im_end|>") in ids


@pytest.mark.needs_shared(QWEN)
def test_qwen_instruct_template_uses_the_given_system_prompt(load):
    tok = load(QWEN)
    out = render_prompt(tok, "1+1?")
    assert out.startswith(f"<|im_start|>system\n{DEFAULT_SYSTEM_PROMPT}<|im_end|>\n")
    assert out.endswith("<|im_start|>user\n1+1?<|im_end|>\n<|im_start|>assistant\n")
    assert "You are Qwen" in render_prompt(tok, "1+1?", system_prompt=None)


def test_plain_template_without_a_chat_template():
    tok = build_char_tokenizer()
    assert not getattr(tok, "chat_template", None)
    assert render_prompt(tok, "What is {x}?") == f"{DEFAULT_SYSTEM_PROMPT}\n\nWhat is {{x}}?\n"
    assert render_prompt(tok, "2+2?", system_prompt="") == "2+2?\n"


@pytest.mark.needs_shared(MISTRAL)
def test_plain_template_for_a_real_base_model(load):
    mistral = load(MISTRAL)  # a base model: no chat template either
    assert not getattr(mistral, "chat_template", None)
    assert render_prompt(mistral, "2+2?", system_prompt="S") == "S\n\n2+2?\n"
