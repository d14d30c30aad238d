"""PRM/ORM scorers on tiny models: one pass equals per-prefix scoring, padding changes nothing,
truncation gives None, and training lowers the loss."""

from __future__ import annotations

import copy

import pytest
import torch
from transformers import (
    AutoModelForTokenClassification,
    AutoTokenizer,
    MistralConfig,
    MistralForCausalLM,
    PreTrainedTokenizerFast,
)

from prmrl.models.factory import load_scalar_model, save_model, tiny_llama_config
from prmrl.models.tokenizer import CHARS, SPECIALS, build_char_tokenizer
from prmrl.rm.formats import MathShepherdFormat, NativeFormat
from prmrl.rm.records import OutcomeRecord, StepLabelRecord
from prmrl.rewards.reward_models import ORMScorer, PRMScorer, forward_logits, load_orm, load_prm
from prmrl.rm.train import length_grouped_batches, orm_training_batch, prm_training_batch, train_reward_model

MISTRAL = "tokenizers/mistral-7b-v0.1"  # under ../shared: the Math-Shepherd PRM's tokenizer


QUESTIONS = ["12+30=?", "7*6=?", "5-9=?", "1+1=?"]
ANSWERS = [
    ["12+30 = 42.", "So 42.", "The answer is 42"],
    ["7*6 = 42", "Answer: 42"],
    ["5-9 = -4. Check: -4+9 = 5. Good.", "x", "The answer is -4", "Done."],
    [],
]


def tiny_scalar_model(tok, seed: int = 0, head_std: float = 1.0):
    cfg = tiny_llama_config(tok, hidden=32, layers=2, heads=2, intermediate=64)
    cfg.num_labels = 1
    torch.manual_seed(seed)
    model = AutoModelForTokenClassification.from_config(cfg)
    # A random head of std 0.02 gives every token ~0.5; a larger one makes the comparisons bite.
    torch.nn.init.normal_(model.score.weight, std=head_std)
    return model.eval()


@pytest.fixture(scope="module")
def char_setup():
    tok = build_char_tokenizer()
    return tiny_scalar_model(tok), tok


def test_prm_one_pass_equals_per_prefix(char_setup):
    model, tok = char_setup
    scorer = PRMScorer(model, tok, NativeFormat(tok))
    full = scorer.score(QUESTIONS, ANSWERS, batch_size=3)
    assert [len(s) for s in full] == [3, 2, 4, 0]
    assert len({round(x, 4) for s in full for x in s}) > 5  # scores really vary
    for q, steps, got in zip(QUESTIONS, ANSWERS, full):
        for k in range(1, len(steps) + 1):
            (alone,) = scorer.score([q], [steps[:k]])
            assert alone[-1] == pytest.approx(got[k - 1], abs=1e-5)


def test_prm_padding_side_and_batch_size_change_nothing(char_setup):
    model, tok = char_setup
    scorer = PRMScorer(model, tok, NativeFormat(tok))
    ref = scorer.score(QUESTIONS, ANSWERS, batch_size=1)
    right = copy.copy(tok)
    right.padding_side = "right"
    for s in (scorer.score(QUESTIONS, ANSWERS, batch_size=4),
              PRMScorer(model, right, NativeFormat(right)).score(QUESTIONS, ANSWERS, batch_size=4)):
        for a, b in zip(s, ref):
            assert a == pytest.approx(b, abs=1e-5)


def test_prm_truncation_gives_none_for_steps_beyond(char_setup):
    model, tok = char_setup
    fmt = NativeFormat(tok)
    full = PRMScorer(model, tok, fmt).score(QUESTIONS[:1], ANSWERS[:1])[0]
    cut = fmt.encode(QUESTIONS[0], ANSWERS[0]).positions[1] + 1  # keeps steps 1 and 2 exactly
    short = PRMScorer(model, tok, fmt, max_length=cut).score(QUESTIONS[:1], ANSWERS[:1])[0]
    assert short[:2] == pytest.approx(full[:2], abs=1e-5) and short[2] is None


def spaceless_char_tokenizer() -> PreTrainedTokenizerFast:
    """One token per character with whitespace dropped, plus the tag's letters: enough for the
    Math-Shepherd format ("+ -" is two tokens, " ки" ends in one tag token) without Mistral's."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    vocab = {t: i for i, t in enumerate(SPECIALS + [c for c in CHARS if not c.isspace()] + ["к", "и"])}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Split(pattern="", behavior="isolated")])
    tok.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="</s>",
                                   unk_token="<unk>", padding_side="left")


@pytest.mark.parametrize("tokenizer", [
    "spaceless_chars", pytest.param("mistral", marks=pytest.mark.needs_shared(MISTRAL))])
def test_math_shepherd_one_pass_equals_per_prefix(tokenizer, shared_path):
    if tokenizer == "mistral":
        tok = AutoTokenizer.from_pretrained(str(shared_path(MISTRAL)))
        tok.pad_token = tok.eos_token
    else:
        tok = spaceless_char_tokenizer()
    cfg = MistralConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                        num_attention_heads=4, num_key_value_heads=2)
    torch.manual_seed(0)
    model = MistralForCausalLM(cfg)
    ms_steps = [[f"Step {k + 1}: {s}" for k, s in enumerate(a)] for a in ANSWERS]
    scorer = PRMScorer(model, tok, MathShepherdFormat(tok))
    full = scorer.score(QUESTIONS, ms_steps)
    for q, steps, got in zip(QUESTIONS, ms_steps, full):
        for k in range(1, len(steps) + 1):
            assert scorer.score([q], [steps[:k]])[0][-1] == pytest.approx(got[k - 1], abs=1e-5)


def test_orm_reads_last_token_under_left_padding(char_setup):
    model, tok = char_setup
    assert tok.padding_side == "left"
    scorer = ORMScorer(model, tok)
    responses = ["\n".join(a) or "?" for a in ANSWERS]
    batched = scorer.score(QUESTIONS, responses, batch_size=4)
    for q, r, got in zip(QUESTIONS, responses, batched):
        ids = torch.tensor([tok.encode(f"{q}\n{r}")])
        with torch.no_grad():
            last = forward_logits(model, ids, torch.ones_like(ids))[0, -1, 0]
        assert got == pytest.approx(torch.sigmoid(last).item(), abs=1e-5)
    assert ORMScorer(model, tok, max_length=5).score(QUESTIONS[:1], responses[:1]) == [None]


def test_training_batches_place_labels_where_scorers_read(char_setup):
    _, tok = char_setup
    fmt = NativeFormat(tok)
    recs = [StepLabelRecord(q, a, [0.5] * len(a)) for q, a in zip(QUESTIONS, ANSWERS)]
    batch = prm_training_batch(tok, fmt, recs)
    width = batch["input_ids"].shape[1]
    for b, r in enumerate(recs):
        enc = fmt.encode(r.question, r.steps)
        off = width - len(enc.input_ids)  # left padding
        assert batch["label_mask"][b].nonzero().flatten().tolist() == [off + p for p in enc.positions]
        marked = tok.convert_ids_to_tokens(batch["input_ids"][b][batch["label_mask"][b]].tolist())
        assert marked == [s[-1] for s in r.steps]
    ob = orm_training_batch(tok, [OutcomeRecord("Q", "abc", 1.0), OutcomeRecord("QQ", "abcdef", 0.0)])
    assert ob["label_mask"].sum() == 2 and ob["label_mask"][:, -1].all()


def _toy_prm_records() -> list[StepLabelRecord]:
    # A step ending in "k" is right, in "o" wrong, in "m" half right (a soft label).
    steps, labels = [None, "so no", "hm"], [1.0, 0.0, 0.5]
    return [StepLabelRecord(f"{a}+{b}=?", ([f"{a}+{b}=ok"] + steps[1:])[:n], labels[:n])
            for a in range(4) for b in range(4) for n in [1 + (a + b) % 3]]


def test_train_prm_reduces_loss_changes_params_and_is_deterministic():
    tok = build_char_tokenizer()
    records = _toy_prm_records()
    runs = []
    for _ in range(2):
        model = tiny_scalar_model(tok, head_std=0.02)
        before = [p.detach().clone() for p in model.parameters()]
        logged: list[dict] = []
        metrics = train_reward_model(model, tok, records, kind="prm", epochs=8, lr=3e-3, batch_size=8,
                                     seed=1, log_fn=logged.append)
        runs.append((model, before, metrics, logged))
    model, before, metrics, logged = runs[0]
    assert metrics["steps"] == len(logged) == 16 and "losses/bce" in logged[0]
    assert metrics["loss/last_epoch_mean"] < 0.5 * metrics["loss/first"]
    assert any(not torch.equal(b, p) for b, p in zip(before, model.parameters()))
    assert [x["losses/bce"] for x in logged] == [x["losses/bce"] for x in runs[1][3]]
    assert not model.training

    scores = PRMScorer(model, tok, NativeFormat(tok)).score(["9+9=?"], [["9+9=ok", "so no", "hm"]])[0]
    assert scores[0] > 0.8 and scores[1] < 0.2 and 0.3 < scores[2] < 0.7


def test_train_orm_and_load_helpers(tmp_path):
    tok = build_char_tokenizer()
    model = tiny_scalar_model(tok, head_std=0.02)
    records = [OutcomeRecord(f"{a}+{a}=?", f"The answer is {2 * a if a % 2 else 2 * a + 1}", float(a % 2))
               for a in range(10)]
    before = [p.detach().clone() for p in model.parameters()]
    metrics = train_reward_model(model, tok, records, kind="orm", epochs=6, lr=3e-3, batch_size=5, seed=0)
    assert metrics["loss/last_epoch_mean"] < metrics["loss/first"]
    assert any(not torch.equal(b, p) for b, p in zip(before, model.parameters()))

    save_model(model, tok, tmp_path / "rm")
    orm = load_orm(tmp_path / "rm")
    qs, rs = [r.question for r in records], [r.response for r in records]
    assert orm.score(qs, rs) == pytest.approx(ORMScorer(model, tok).score(qs, rs), abs=1e-5)
    prm = load_prm(tmp_path / "rm", fmt="native")
    assert isinstance(prm.fmt, NativeFormat) and len(prm.score(["Q"], [["a", "b"]])[0]) == 2
    assert isinstance(load_scalar_model(tmp_path / "rm"), torch.nn.Module)
    with pytest.raises(ValueError, match="unknown PRM format"):
        load_prm(tmp_path / "rm", fmt="nope")


def test_length_grouped_batches_cover_every_example_once_and_pad_little():
    lengths = [5, 1, 4, 2]
    batches = length_grouped_batches(lengths, 2, torch.Generator().manual_seed(0))
    assert sorted(map(sorted, batches)) == [[0, 2], [1, 3]]     # lengths 5 and 4, lengths 1 and 2
    rng = __import__("random").Random(0)
    lengths = [rng.randint(40, 180) for _ in range(1000)]
    batches = length_grouped_batches(lengths, 16, torch.Generator().manual_seed(1), group=10)
    assert sorted(i for b in batches for i in b) == list(range(1000))
    padded = sum(max(lengths[i] for i in b) * len(b) for b in batches)
    assert padded / sum(lengths) < 1.1                           # random batches: about 1.5
    again = length_grouped_batches(lengths, 16, torch.Generator().manual_seed(1), group=10)
    assert again == batches                                     # seeded
    assert length_grouped_batches(lengths, 16, torch.Generator().manual_seed(2), group=10) != batches


def test_dense_positions_by_hand():
    from prmrl.rm.train import dense_positions

    # steps end at tokens 4, 7, 9; the prompt ends before token 2
    assert dense_positions([4, 7, 9], [1, 1, 0], 2) == ([2, 3, 4, 5, 6, 7, 9], [1.0] * 6 + [0.0])
    # the first wrong step gets only its end; a dead prefix stays dead on every token after
    assert dense_positions([4, 7, 9], [1, 0, 0], 2) == ([2, 3, 4, 7, 8, 9], [1.0] * 3 + [0.0] * 3)
    assert dense_positions([4, 7, 9], [0, 0, 1], 2) == ([4, 5, 6, 7, 9], [0.0] * 4 + [1.0])
    assert dense_positions([], [], 2) == ([], [])


def test_dense_training_batch_keeps_step_end_labels(char_setup):
    _, tok = char_setup
    fmt = NativeFormat(tok)
    rec = StepLabelRecord("Q", ["ab", "cd", "e"], [1.0, 1.0, 0.0])
    sparse = prm_training_batch(tok, fmt, [rec])
    dense = prm_training_batch(tok, fmt, [rec], dense=True)
    # every sparse label is also a dense label, with the same value
    assert bool((dense["label_mask"] >= sparse["label_mask"]).all())
    assert torch.equal(dense["labels"][sparse["label_mask"]], sparse["labels"][sparse["label_mask"]])
    # "Q\nab\ncd\ne": tokens 2..7 ("ab\ncd") are 1, the last step only at "e"
    assert dense["label_mask"][0].nonzero().squeeze(1).tolist() == [2, 3, 4, 5, 6, 8]


def test_extra_layers_start_as_the_identity(tmp_path):
    from transformers import AutoModelForCausalLM

    tok = build_char_tokenizer()
    torch.manual_seed(0)
    policy = AutoModelForCausalLM.from_config(tiny_llama_config(tok, hidden=32, layers=2, heads=2, intermediate=64))
    save_model(policy, tok, tmp_path / "policy")
    base = load_scalar_model(tmp_path / "policy")
    deep = load_scalar_model(tmp_path / "policy", extra_layers=2)
    assert deep.config.num_hidden_layers == 4
    ids = torch.tensor([tok.encode("Start with 3.\n(a) 3+4=7", add_special_tokens=False)])
    h_base = base(input_ids=ids, output_hidden_states=True).hidden_states[-1]
    h_deep = deep(input_ids=ids, output_hidden_states=True).hidden_states[-1]
    assert torch.allclose(h_base, h_deep, atol=1e-5)          # same features before training
    assert float(deep(input_ids=ids).logits.detach().abs().max()) == 0.0   # fresh head: 0.5


def test_top_p_keeps_the_nucleus():
    from prmrl.models.sampler import _next_tokens

    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]] * 2000))
    gen = torch.Generator().manual_seed(0)
    assert set(_next_tokens(logits, False, 1.0, 0.5, gen).tolist()) == {0}
    assert set(_next_tokens(logits, False, 1.0, 0.7, gen).tolist()) == {0, 1}
    assert set(_next_tokens(logits, False, 1.0, 1.0, gen).tolist()) == {0, 1, 2, 3}
    assert _next_tokens(logits[:3], True, 1.0, 1.0, None).tolist() == [0, 0, 0]


def test_frozen_backbone_trains_only_the_extra_layers_norm_and_head(tmp_path):
    from transformers import AutoModelForCausalLM

    from prmrl.models.factory import freeze_backbone

    tok = build_char_tokenizer()
    torch.manual_seed(0)
    policy = AutoModelForCausalLM.from_config(tiny_llama_config(tok, hidden=32, layers=2, heads=2, intermediate=64))
    save_model(policy, tok, tmp_path / "policy")
    model = load_scalar_model(tmp_path / "policy", extra_layers=1)
    n_trainable = freeze_backbone(model, 1)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    train_reward_model(model, tok, _toy_prm_records(), kind="prm", epochs=2, lr=3e-3, batch_size=8)
    changed = {n for n, p in model.named_parameters() if not torch.equal(before[n], p)}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert n_trainable == sum(p.numel() for n, p in model.named_parameters() if n in trainable)
    assert changed and changed <= trainable                      # nothing frozen moved
    assert all(".layers.2." in n or n.startswith(("score.", "model.norm.")) for n in trainable)
    assert any(".layers.2." in n for n in changed) and "score.weight" in changed
    with pytest.raises(ValueError, match="trainable_layers"):
        freeze_backbone(model, 4)
