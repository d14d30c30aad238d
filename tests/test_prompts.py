"""Prompts rendered with the real Qwen2.5 tokenizers' chat templates, and the plain fallback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from prmrl.models.tokenizer import build_char_tokenizer
from prmrl.prompts import DEFAULT_SYSTEM_PROMPT, render_prompt

TOKENIZERS = Path(__file__).resolve().parents[2] / "shared" / "tokenizers"
QWEN_MATH = TOKENIZERS / "qwen2.5-math-instruct"
QWEN = TOKENIZERS / "qwen2.5-instruct"


def _load(path: Path):
    if not path.is_dir():
        pytest.skip(f"no tokenizer at {path}")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(path))


def test_default_system_prompt_is_qwen_maths():
    config = json.loads((QWEN_MATH / "tokenizer_config.json").read_text()) if QWEN_MATH.is_dir() else None
    if config is None:
        pytest.skip("no Qwen2.5-Math tokenizer")
    # The template holds it as a Jinja string literal, with the backslash escaped.
    assert DEFAULT_SYSTEM_PROMPT.replace("\\", "\\\\") in config["chat_template"]
    assert DEFAULT_SYSTEM_PROMPT == "Please reason step by step, and put your final answer within \\boxed{}."


def test_qwen_math_chat_template():
    tok = _load(QWEN_MATH)
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


def test_qwen_instruct_template_uses_the_given_system_prompt():
    tok = _load(QWEN)
    out = render_prompt(tok, "1+1?")
    assert out.startswith(f"<|im_start|>system\n{DEFAULT_SYSTEM_PROMPT}<|im_end|>\n")
    assert out.endswith("<|im_start|>user\n1+1?<|im_end|>\n<|im_start|>assistant\n")
    assert "You are Qwen" in render_prompt(tok, "1+1?", system_prompt=None)


def test_plain_template_without_a_chat_template():
    tok = build_char_tokenizer()
    assert not getattr(tok, "chat_template", None)
    assert render_prompt(tok, "What is {x}?") == f"{DEFAULT_SYSTEM_PROMPT}\n\nWhat is {{x}}?\n"
    assert render_prompt(tok, "2+2?", system_prompt="") == "2+2?\n"
    mistral = _load(TOKENIZERS / "mistral-7b-v0.1")  # a base model: no chat template either
    assert render_prompt(mistral, "2+2?", system_prompt="S") == "S\n\n2+2?\n"
