"""PRM input formats on real tokenizers: where each step is read, and end-to-end tiny models.

The real tokenizers and the Math-Shepherd samples are read from the sibling ../shared folder;
tests that need them skip without it, naming what is missing."""

from __future__ import annotations

import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import (
    AutoTokenizer,
    MistralConfig,
    MistralForCausalLM,
    Qwen2Config,
    Qwen2ForTokenClassification,
)

from prmrl.models.tokenizer import build_char_tokenizer
from prmrl.rm.formats import PRM_FORMATS, MathShepherdFormat, NativeFormat, QwenPRMFormat, make_format
from prmrl.rm.records import read_math_shepherd
from prmrl.rewards.reward_models import PRMScorer, forward_logits
from prmrl.rm.train import prm_training_batch

# Paths under ../shared, and the marks of the tests that read them.
QWEN = "tokenizers/qwen2.5-instruct"
MISTRAL = "tokenizers/mistral-7b-v0.1"
SHEPHERD = "data/math_shepherd/samples_math_shepherd.jsonl"
needs_qwen = pytest.mark.needs_shared(QWEN)
needs_mistral = pytest.mark.needs_shared(MISTRAL)


QUESTION = "What is 2+3*4?"
STEPS = ["3*4 = 12.", "2+12 = 14.", "The answer is 14"]


@pytest.fixture(scope="module")
def qwen_tok(shared_path):
    return AutoTokenizer.from_pretrained(str(shared_path(QWEN)))


@pytest.fixture(scope="module")
def mistral_tok(shared_path):
    tok = AutoTokenizer.from_pretrained(str(shared_path(MISTRAL)))
    tok.pad_token = tok.eos_token
    return tok


def _step_last_chars(fmt: NativeFormat, question: str, steps: list[str]) -> list[int]:
    pos, out = len(fmt.prompt_template.format(question=question)), []
    for s in steps:
        pos += len(s)
        out.append(pos - 1)
        pos += len(fmt.delimiter)
    return out


def _assert_native_placement(tok, fmt: NativeFormat, question: str, steps: list[str]) -> list[tuple[int, int]]:
    """Each position's token holds its step's last character; returns the tokens' char spans."""
    text = fmt.text(question, steps)
    enc = fmt.encode(question, steps)
    offsets = tok(text, return_offsets_mapping=True)["offset_mapping"]
    assert enc.input_ids == tok(text)["input_ids"]
    # Non-decreasing, not strictly: a whitespace-only step can merge with its neighbours into the
    # token that also ends the previous step (["=", "\n"] -> one token "=\n\n"), sharing its score.
    assert enc.positions == sorted(enc.positions) and len(enc.positions) == len(steps)
    spans = []
    for p, c in zip(enc.positions, _step_last_chars(fmt, question, steps)):
        start, end = offsets[p]
        assert start <= c < end, (text, p, c, offsets[p])
        spans.append((start, end))
    return spans


def test_formats_registry():
    assert set(PRM_FORMATS) == {"native", "math_shepherd", "qwen_prm"}
    with pytest.raises(ValueError, match="unknown PRM format"):
        make_format("nope", build_char_tokenizer())


# --- native ------------------------------------------------------------------------------------


def test_native_char_tokenizer_reads_last_char_of_each_step():
    tok = build_char_tokenizer()
    fmt = NativeFormat(tok)
    enc = fmt.encode("Q", ["ab", "c"])  # "Q\nab\nc"
    assert enc.positions == [3, 5]
    assert tok.convert_ids_to_tokens([enc.input_ids[p] for p in enc.positions]) == ["b", "c"]
    _assert_native_placement(tok, fmt, QUESTION, STEPS)
    _assert_native_placement(tok, NativeFormat(tok, prompt_template="Problem: {question}\nAnswer: ",
                                               delimiter=" | "), QUESTION, STEPS)
    with pytest.raises(ValueError, match="empty"):
        fmt.encode("Q", ["a", ""])


@needs_qwen
def test_native_qwen_bpe_step_end_inside_merged_token(qwen_tok):
    fmt = NativeFormat(qwen_tok)
    spans = _assert_native_placement(qwen_tok, fmt, QUESTION, STEPS)
    ends = _step_last_chars(fmt, QUESTION, STEPS)
    # "12." + "\n" is the one token ".\n": the step's end falls inside it and is read there.
    assert spans[0][1] > ends[0] + 1
    assert qwen_tok.convert_ids_to_tokens(fmt.encode(QUESTION, STEPS).input_ids)[
        fmt.encode(QUESTION, STEPS).positions[0]] == ".Ċ"
    # With a blank-line delimiter "." merges with "\n\n" (id 271's text) instead.
    fmt2 = NativeFormat(qwen_tok, delimiter="\n\n")
    enc2 = fmt2.encode(QUESTION, STEPS)
    assert qwen_tok.convert_ids_to_tokens(enc2.input_ids[enc2.positions[0]]) == ".ĊĊ"
    _assert_native_placement(qwen_tok, fmt2, QUESTION, STEPS)


@needs_qwen
@settings(max_examples=40, deadline=None)
@given(steps=st.lists(st.text(alphabet="ab1.= \n$\\+-ки字", min_size=1, max_size=8), min_size=1, max_size=4),
       delimiter=st.sampled_from(["\n", "\n\n", " ", ""]))
def test_native_qwen_placement_property(qwen_tok, steps, delimiter):
    _assert_native_placement(qwen_tok, NativeFormat(qwen_tok, delimiter=delimiter), "Q?", steps)


@needs_qwen
def test_native_prm_with_qwen_tokenizer_scores_same_steps(qwen_tok):
    """A native PRM on another tokenizer than the char one scores the same step texts; the
    scorer's numbers are the head's sigmoid at the placed tokens, and training labels sit there."""
    torch.manual_seed(0)
    cfg = Qwen2Config(vocab_size=len(qwen_tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, num_labels=1,
                      pad_token_id=qwen_tok.pad_token_id)
    model = Qwen2ForTokenClassification(cfg).eval()
    torch.nn.init.normal_(model.score.weight, std=1.0)
    fmt = NativeFormat(qwen_tok)
    questions, steps = [QUESTION, "1+1?"], [STEPS, ["1+1 = 2.", "The answer is 2"]]
    scores = PRMScorer(model, qwen_tok, fmt).score(questions, steps)
    assert [len(s) for s in scores] == [3, 2] and all(0 < x < 1 for s in scores for x in s)

    char_tok = build_char_tokenizer()
    char_scores = PRMScorer(_tiny_char_prm(char_tok), char_tok, NativeFormat(char_tok)).score(questions, steps)
    assert [len(s) for s in char_scores] == [3, 2]

    for q, ss, got in zip(questions, steps, scores):
        enc = fmt.encode(q, ss)
        ids = torch.tensor([enc.input_ids])
        with torch.no_grad():
            logits = forward_logits(model, ids, torch.ones_like(ids))[0, enc.positions, 0]
        assert got == pytest.approx(torch.sigmoid(logits).tolist(), abs=1e-5)

    from prmrl.rm.records import StepLabelRecord
    batch = prm_training_batch(qwen_tok, fmt, [StepLabelRecord(questions[0], steps[0], [1.0, 0.5, 0.0])])
    assert batch["label_mask"][0].nonzero().flatten().tolist() == fmt.encode(questions[0], steps[0]).positions


def _tiny_char_prm(tok):
    from transformers import AutoModelForTokenClassification

    from prmrl.models.factory import tiny_llama_config

    cfg = tiny_llama_config(tok, hidden=32, layers=2, heads=2, intermediate=64)
    cfg.num_labels = 1
    torch.manual_seed(0)
    return AutoModelForTokenClassification.from_config(cfg).eval()


# --- math_shepherd -------------------------------------------------------------------------------


@needs_mistral
def test_math_shepherd_ids_from_real_mistral_tokenizer(mistral_tok):
    fmt = MathShepherdFormat(mistral_tok)
    assert (fmt.good_id, fmt.bad_id, fmt.tag_id) == (648, 387, 12902)  # the model card's ids


@pytest.mark.needs_shared(MISTRAL, SHEPHERD)
def test_math_shepherd_rebuilds_and_places_every_sample(mistral_tok, shared_path):
    fmt = MathShepherdFormat(mistral_tok)
    samples = shared_path(SHEPHERD)
    records, _ = read_math_shepherd(samples)
    raw = [json.loads(line) for line in samples.read_text(encoding="utf-8").splitlines()]
    for r, d in zip(records, raw):
        assert fmt.text(r.question, r.steps) == d["input"]
        enc = fmt.encode(r.question, r.steps)
        assert [i for i, t in enumerate(enc.input_ids) if t == fmt.tag_id] == enc.positions
        assert len(enc.positions) == len(r.steps)


# Math-Shepherd-style solutions (question, "Step k: ..." steps), written for these tests.
MS_SOLUTIONS = [
    ("A box holds 6 pens. How many pens are in 4 boxes?",
     ["Step 1: 4 boxes hold 4 * 6 = <<4*6=24>>24 pens.", "Step 2: The answer is: 24"]),
    ("Tom reads 12 pages a day. How many pages does he read in a week?",
     ["Step 1: A week has 7 days.", "Step 2: He reads 12 * 7 = <<12*7=84>>84 pages.",
      "Step 3: The answer is: 84"]),
    ("A 30 m rope is cut into 5 m pieces. How many pieces are there?",
     ["Step 1: 30 / 5 = <<30/5=6>>6 pieces.", "Step 2: The answer is: 6"]),
]


@needs_mistral
def test_math_shepherd_end_to_end_tiny_mistral(mistral_tok):
    torch.manual_seed(0)
    cfg = MistralConfig(vocab_size=len(mistral_tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512)
    model = MistralForCausalLM(cfg).eval()
    fmt = MathShepherdFormat(mistral_tok)
    scores = PRMScorer(model, mistral_tok, fmt).score([q for q, _ in MS_SOLUTIONS], [s for _, s in MS_SOLUTIONS])
    assert [len(s) for s in scores] == [2, 3, 2]
    for (question, steps), got in zip(MS_SOLUTIONS, scores):
        enc = fmt.encode(question, steps)
        ids = torch.tensor([enc.input_ids])
        with torch.no_grad():
            logits = model(input_ids=ids).logits[0, enc.positions]  # (K, V) at the tags
        want = torch.softmax(logits[:, [648, 387]], dim=-1)[:, 0]
        assert got == pytest.approx(want.tolist(), abs=1e-5)


# --- qwen_prm ------------------------------------------------------------------------------------


# ChatML as the Qwen2.5 templates write it (system, user, assistant turns), for a tokenizer
# without a template of its own.
CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def test_qwen_prm_format_on_a_char_tokenizer_with_chatml():
    """The qwen_prm format without the real tokenizer: <extra_0> is added, read after each step,
    and a two-class head's P(class 1) there is the score."""
    tok = build_char_tokenizer()
    tok.chat_template = CHATML
    n_before = len(tok)
    cfg = _tiny_char_prm(tok).config
    fmt = QwenPRMFormat(tok)
    assert len(tok) == n_before + 1 and tok.encode("<extra_0>", add_special_tokens=False) == [fmt.sep_id]
    text = fmt.text(QUESTION, STEPS)
    assert text.startswith("<|im_start|>system\nPlease reason step by step")
    assert text.endswith("<|im_start|>assistant\n" + "<extra_0>".join(STEPS) + "<extra_0><|im_end|>\n")
    enc = fmt.encode(QUESTION, STEPS)
    assert [enc.input_ids[p] for p in enc.positions] == [fmt.sep_id] * 3
    assert [tok.decode(enc.input_ids[p - 1]) for p in enc.positions] == [s[-1] for s in STEPS]

    from transformers import AutoModelForTokenClassification

    cfg.num_labels = 2
    torch.manual_seed(0)
    model = AutoModelForTokenClassification.from_config(cfg).eval()
    with pytest.raises(ValueError, match="resize_token_embeddings"):
        PRMScorer(model, tok, fmt)
    model.resize_token_embeddings(len(tok), mean_resizing=False)
    scores = PRMScorer(model, tok, fmt).score([QUESTION, "1+1?"], [STEPS, ["2"]])
    assert [len(s) for s in scores] == [3, 1]
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([enc.input_ids])).logits[0, enc.positions]  # (K, 2)
    assert scores[0] == pytest.approx(torch.softmax(logits, -1)[:, 1].tolist(), abs=1e-5)
    with pytest.raises(ValueError, match="<extra_0>"):
        fmt.encode(QUESTION, ["a<extra_0>b"])


@needs_qwen
def test_qwen_prm_end_to_end_with_added_extra_0(shared_path):
    tok = AutoTokenizer.from_pretrained(str(shared_path(QWEN)))  # a fresh copy: the format adds a token to it
    n_before = len(tok)
    assert len(tok.encode("<extra_0>")) > 1
    fmt = QwenPRMFormat(tok)
    assert len(tok) == n_before + 1 and tok.encode("<extra_0>") == [fmt.sep_id]

    text = fmt.text(QUESTION, STEPS)
    assert "Please reason step by step, and put your final answer within \\boxed{}." in text
    assert text.endswith("<|im_start|>assistant\n" + "<extra_0>".join(STEPS) + "<extra_0><|im_end|>\n")
    enc = fmt.encode(QUESTION, STEPS)
    assert [enc.input_ids[p] for p in enc.positions] == [fmt.sep_id] * 3
    # The token before each separator is the end of its step's text.
    assert tok.decode(enc.input_ids[enc.positions[0] - 1]).strip() == "."

    torch.manual_seed(0)
    cfg = Qwen2Config(vocab_size=n_before, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, num_labels=2)
    model = Qwen2ForTokenClassification(cfg).eval()
    with pytest.raises(ValueError, match="resize_token_embeddings"):
        PRMScorer(model, tok, fmt)
    model.resize_token_embeddings(len(tok), mean_resizing=False)
    scores = PRMScorer(model, tok, fmt).score([QUESTION, "1+1?"], [STEPS, ["2"]])
    assert [len(s) for s in scores] == [3, 1]
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([enc.input_ids])).logits[0, enc.positions]  # (K, 2)
    assert scores[0] == pytest.approx(torch.softmax(logits, -1)[:, 1].tolist(), abs=1e-5)

    with pytest.raises(ValueError, match="<extra_0>"):
        fmt.encode(QUESTION, ["a<extra_0>b"])
