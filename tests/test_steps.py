"""Step splitting and step-end token placement, on the char tokenizer and on real tokenizers
(those tests skip without ../shared/tokenizers, naming the missing folder)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from prmrl import steps as steps_mod
from prmrl.models.tokenizer import build_char_tokenizer
from prmrl.steps import (
    ResponseSteps,
    StepSpan,
    split_steps,
    step_end_token_indices,
    step_texts,
    steps_for_batch,
    steps_for_response,
    token_char_ends,
)

REPLACEMENT = "\ufffd"
QWEN = "tokenizers/qwen2.5-instruct"  # under ../shared
MISTRAL = "tokenizers/mistral-7b-v0.1"
needs_qwen = pytest.mark.needs_shared(QWEN)
needs_mistral = pytest.mark.needs_shared(MISTRAL)


def load(shared_path, folder: str):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(shared_path(folder)))


@pytest.fixture(scope="module")
def char_tok():
    return build_char_tokenizer()


@pytest.fixture(scope="module")
def qwen(shared_path):
    return load(shared_path, QWEN)


@pytest.fixture(scope="module")
def mistral(shared_path):
    return load(shared_path, MISTRAL)


def assert_ends_are_exact(tok, ids: list[int], ends: list[int]) -> None:
    """Each token's end is where decoding the tokens up to it stops agreeing with the text."""
    text = tok.decode(ids, skip_special_tokens=True)
    assert len(ends) == len(ids) and ends[-1] == len(text)
    assert all(a <= b for a, b in zip(ends, ends[1:]))
    for i, end in enumerate(ends):
        prefix = tok.decode(ids[: i + 1], skip_special_tokens=True)
        assert prefix.startswith(text[:end]), (i, prefix, text[:end])
        # Nothing past `end` is already produced, except a character still missing bytes.
        assert not prefix.startswith(text[: end + 1]) or end == len(text), (i, prefix)


def assert_step_ends_placed(tok, ids: list[int], rs: ResponseSteps) -> None:
    """tokens[:end+1] decode to text holding the whole step; tokens[:end] do not."""
    text = tok.decode(ids, skip_special_tokens=True)
    for span, step_text, e in zip(rs.spans, rs.texts, rs.end_tokens):
        assert text[span.start : span.end] == step_text
        upto = text[: span.end]
        assert tok.decode(ids[: e + 1], skip_special_tokens=True).startswith(upto)
        assert not tok.decode(ids[:e], skip_special_tokens=True).startswith(upto)


# ---------------------------------------------------------------------------------------------
# split_steps and step_end_token_indices on hand-checked values


@pytest.mark.parametrize(
    "text, delimiter, expected",
    [
        ("a\nb", "\n", ["a", "b"]),
        ("a\n\nb", "\n", ["a", "b"]),  # blank line is not a step
        ("  a  \n \t\n b\n", "\n", ["a", "b"]),  # whitespace trimmed, trailing newline
        ("a.\n\nb\nc\n\n\n\nd", "\n\n", ["a.", "b\nc", "d"]),  # single "\n" stays inside a step
        ("a\n\n\nb", "\n\n", ["a", "b"]),  # leftover "\n" is trimmed off the next piece
        ("", "\n", []),
        (" \n\n ", "\n", []),
        ("ки a ки b ки", "ки", ["a", "b"]),
    ],
)
def test_split_steps(text, delimiter, expected):
    spans = split_steps(text, delimiter)
    assert step_texts(text, spans) == expected
    for s in spans:  # spans hold content only, never surrounding whitespace
        assert text[s.start] == text[s.start].strip() and text[s.end - 1] == text[s.end - 1].strip()


def test_split_steps_spans_by_hand():
    assert split_steps("a\n\n b ") == [StepSpan(0, 1), StepSpan(4, 5)]
    with pytest.raises(ValueError):
        split_steps("a", "")


def test_step_end_token_indices_by_hand():
    # Tokens "ab" "c.\n" "" (EOS) "de": ends 2, 5, 5, 7. Step "abc." ends inside token 1.
    char_ends = [2, 5, 5, 7]
    spans = [StepSpan(0, 4), StepSpan(5, 7)]
    assert step_end_token_indices(spans, char_ends) == [1, 3]
    assert step_end_token_indices([StepSpan(0, 2)], char_ends) == [0]  # exact token end
    with pytest.raises(ValueError):
        step_end_token_indices([StepSpan(0, 8)], char_ends)


# ---------------------------------------------------------------------------------------------
# Char tokenizer (the embedded task's policy)


def test_char_tokenizer_steps(char_tok):
    ids = char_tok.encode("37*4=148\n148+12=160\n\\boxed{160}", add_special_tokens=False)
    ids = ids + [char_tok.eos_token_id, char_tok.pad_token_id, char_tok.pad_token_id]
    rs = steps_for_response(char_tok, ids)
    assert rs.texts == ["37*4=148", "148+12=160", "\\boxed{160}"]
    assert rs.spans == [StepSpan(0, 8), StepSpan(9, 19), StepSpan(20, 31)]
    assert rs.end_tokens == [7, 18, 30]
    assert [char_tok.decode([ids[e]]) for e in rs.end_tokens] == ["8", "0", "}"]
    assert_step_ends_placed(char_tok, ids, rs)


def test_char_tokenizer_blank_lines_and_whitespace(char_tok):
    text = "  1+1=2  \n\n \n2+2=4 \n"
    ids = char_tok.encode(text, add_special_tokens=False) + [char_tok.eos_token_id]
    rs = steps_for_response(char_tok, ids)
    assert rs.texts == ["1+1=2", "2+2=4"]
    assert rs.end_tokens == [text.index("=2") + 1, text.index("=4") + 1]
    assert [char_tok.decode([ids[e]]) for e in rs.end_tokens] == ["2", "4"]


def test_char_tokenizer_special_tokens_are_zero_width(char_tok):
    ids = char_tok.encode("ab", add_special_tokens=False)
    eos, pad = char_tok.eos_token_id, char_tok.pad_token_id
    assert token_char_ends(char_tok, ids + [eos, pad]) == [1, 2, 2, 2]
    assert token_char_ends(char_tok, [pad, *ids]) == [0, 1, 2]


def test_accepts_tensor_rows(char_tok):
    import torch

    ids = char_tok.encode("1+1=2\n2+2=4", add_special_tokens=False) + [char_tok.eos_token_id]
    batch = torch.tensor([ids, ids])  # (B, T)
    expected = steps_for_response(char_tok, ids)
    assert steps_for_response(char_tok, batch[0]) == expected
    assert steps_for_batch(char_tok, batch) == [expected, expected]


def test_empty_response_has_no_steps(char_tok):
    eos = char_tok.eos_token_id
    for ids in ([], [eos], char_tok.encode(" \n \n", add_special_tokens=False) + [eos]):
        assert steps_for_response(char_tok, ids) == ResponseSteps([], [], [])


def test_char_tokenizer_takes_fast_path(char_tok, monkeypatch):
    def fail(*args):
        raise AssertionError("slow path used")

    monkeypatch.setattr(steps_mod, "_char_ends_incremental", fail)
    ids = char_tok.encode("1+2=3\n3*3=9", add_special_tokens=False) + [char_tok.eos_token_id]
    assert steps_for_response(char_tok, ids).end_tokens == [4, 10]


def test_max_steps_merges_overflow_into_last_kept_step(char_tok):
    text = "a=1\nb=2\nc=3\nd=4"
    ids = char_tok.encode(text, add_special_tokens=False)
    rs = steps_for_response(char_tok, ids, max_steps=2)
    assert rs.texts == ["a=1", "b=2\nc=3\nd=4"]
    assert rs.end_tokens == [2, len(text) - 1]
    assert steps_for_response(char_tok, ids, max_steps=4) == steps_for_response(char_tok, ids)


@pytest.mark.parametrize("which, delim, texts", [
    ("char", "\n", ["1+1=2\n2+2=4", "", "x\n\ny\n"]),
    pytest.param("qwen", "\n\n", ["Add.\n\nThen π ≈ 3.\n\n面积", "", "one step"], marks=needs_qwen),
], ids=["char", "qwen"])
def test_batch_matches_single(request, which, delim, texts):
    tok = request.getfixturevalue("char_tok" if which == "char" else "qwen")
    batch = [tok.encode(t, add_special_tokens=False) + [tok.eos_token_id] for t in texts]
    assert steps_for_batch(tok, batch, delim) == [
        steps_for_response(tok, ids, delim) for ids in batch
    ]


# ---------------------------------------------------------------------------------------------
# Qwen2.5 byte-level BPE (the paper's policy)

QWEN_RESPONSE = "So 6 × 7 = 42.\n\nThen π ≈\n\n结果是面积 42\n\n\\boxed{42}"


@needs_qwen
def test_qwen_step_ends_in_merged_period_newlines(qwen):
    im_end = qwen.convert_tokens_to_ids("<|im_end|>")
    ids = qwen.encode(QWEN_RESPONSE, add_special_tokens=False) + [im_end]
    pieces = [qwen.decode([i]) for i in ids]
    # The tokenizer merges ".\n\n" into one token, so step 1's "." shares it with the delimiter.
    merged = pieces.index(".\n\n")
    assert qwen.encode("\n\n", add_special_tokens=False) == [271] and ids[merged] != 271

    rs = steps_for_response(qwen, ids, "\n\n")
    assert rs.texts == ["So 6 × 7 = 42.", "Then π ≈", "结果是面积 42", "\\boxed{42}"]
    assert rs.end_tokens[0] == merged
    assert_step_ends_placed(qwen, ids, rs)
    assert_ends_are_exact(qwen, ids, token_char_ends(qwen, ids))


@needs_qwen
def test_qwen_multibyte_char_split_over_tokens_ends_on_completing_token(qwen):
    ids = qwen.encode(QWEN_RESPONSE, add_special_tokens=False)
    pieces = [qwen.decode([i]) for i in ids]
    # "≈" is two byte-level tokens, each decoding alone to U+FFFD, so the fast path cannot hold.
    assert "".join(pieces) != qwen.decode(ids)
    rs = steps_for_response(qwen, ids, "\n\n")
    e = rs.end_tokens[1]  # step "Then π ≈"
    assert pieces[e] == REPLACEMENT and pieces[e - 1].endswith(REPLACEMENT)
    assert qwen.decode(ids[e - 1 : e + 1]) == " ≈"
    ends = token_char_ends(qwen, ids)
    # Token e-1 is " " plus the first bytes of "≈": it ends the space; token e ends the "≈".
    assert ends[e - 1] == ends[e] - 1 and qwen.decode(ids)[ends[e - 1] - 1 : ends[e]] == " ≈"
    assert_step_ends_placed(qwen, ids, rs)


@needs_qwen
def test_qwen_ascii_takes_fast_path(qwen, monkeypatch):
    def fail(*args):
        raise AssertionError("slow path used")

    monkeypatch.setattr(steps_mod, "_char_ends_incremental", fail)
    text = "First, 37 * 4 = 148.\n\nThen 148 + 12 = 160.\n\nThe answer is \\boxed{160}."
    ids = qwen.encode(text, add_special_tokens=False) + [qwen.eos_token_id]
    rs = steps_for_response(qwen, ids, "\n\n")
    assert len(rs.texts) == 3
    assert_step_ends_placed(qwen, ids, rs)


@needs_qwen
def test_qwen_response_cut_inside_a_character(qwen):
    ids = qwen.encode("Area 面", add_special_tokens=False)
    cut = ids + qwen.encode(" ≈", add_special_tokens=False)[:1]  # " " and 2 of 3 bytes of "≈"
    text = qwen.decode(cut)
    assert text.endswith(REPLACEMENT)
    ends = token_char_ends(qwen, cut)
    assert ends[-1] == len(text)
    assert ends[: len(ids)] == token_char_ends(qwen, ids)


# ---------------------------------------------------------------------------------------------
# Mistral sentencepiece (the Math-Shepherd PRM's tokenizer): single decodes drop the "▁" space


@needs_mistral
def test_mistral_falls_back_to_exact_ends(mistral):
    text = "Step 1: 3 × 4 = 12.\n\nStep 2:  π ≈ 3.14, 面积 12 ки\n\nThe answer is 12"
    ids = mistral.encode(text, add_special_tokens=False) + [mistral.eos_token_id]
    pieces = [mistral.decode([i], skip_special_tokens=True) for i in ids]
    assert "".join(pieces) != mistral.decode(ids, skip_special_tokens=True)

    ends = token_char_ends(mistral, ids)
    assert_ends_are_exact(mistral, ids, ends)
    rs = steps_for_response(mistral, ids, "\n\n")
    assert rs.texts == text.split("\n\n")
    assert_step_ends_placed(mistral, ids, rs)
    assert mistral.decode([ids[rs.end_tokens[1]]]) == "ки"


@needs_qwen
@needs_mistral
def test_incremental_agrees_with_prefix_definition(qwen, mistral):
    qwen_cut = qwen.encode("Area 面", add_special_tokens=False) + [21103]  # " " + bytes of "≈"
    cases = [(qwen, QWEN_RESPONSE), (mistral, QWEN_RESPONSE), (mistral, "  a\n b")]
    for tok, ids in [(t, t.encode(x, add_special_tokens=False)) for t, x in cases] + [
        (qwen, qwen_cut)
    ]:
        full = tok.decode(ids, skip_special_tokens=True)
        by_prefix = steps_mod._char_ends_by_prefix(tok, ids, full)
        assert steps_mod._char_ends_incremental(tok, ids, full) == by_prefix
        assert_ends_are_exact(tok, ids, by_prefix)


# ---------------------------------------------------------------------------------------------
# Random texts mixing ASCII, delimiters and characters that byte-level BPE splits


PIECES = ["a", "b", "1", ".", " ", "\n", "\n\n", "×", "≈", "π", "面", "积", "ки", "😀"]


@needs_qwen
@needs_mistral
@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=30).map("".join), st.integers(0, 60))
def test_random_texts_place_every_step(qwen, mistral, text, cut):
    for tok in (qwen, mistral):
        # Cutting the tokens may end the response inside a character, as max_new_tokens does.
        ids = tok.encode(text, add_special_tokens=False)[:cut] + [tok.eos_token_id]
        assert_ends_are_exact(tok, ids, token_char_ends(tok, ids))
        decoded = tok.decode(ids, skip_special_tokens=True)
        for delimiter in ("\n", "\n\n"):
            rs = steps_for_response(tok, ids, delimiter)
            assert rs.spans == split_steps(decoded, delimiter)
            assert_step_ends_placed(tok, ids, rs)
