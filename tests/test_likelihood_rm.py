"""The reward model that reads its backbone's token likelihoods (prmrl.models.likelihood)."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM

from prmrl.models.factory import freeze_backbone, load_scalar_model, save_model, tiny_llama_config
from prmrl.models.forward import position_ids_from_mask
from prmrl.models.likelihood import LikelihoodRewardModel, running_min_logprobs
from prmrl.models.tokenizer import build_char_tokenizer
from prmrl.rm.formats import NativeFormat
from prmrl.rm.records import OutcomeRecord, StepLabelRecord
from prmrl.rewards.reward_models import ORMScorer, PRMScorer, forward_logits, pad_batch, response_mask
from prmrl.rm.train import prm_training_batch, train_reward_model

QUESTIONS = ["Start with 3. (a) 4 more.", "Start with 5. (a) 2 times. (b) 1 less."]
STEPS = [["(a) 4 more: 3+4=7", "\\boxed{7}"], ["Start: 5", "(a) 2 times: 5*2=10", "(b) 1 less: 10-1=9"]]


def test_running_min_by_hand():
    lp, run = running_min_logprobs(torch.tensor([[-5.0, -1.0, -3.0, -0.5]]), torch.tensor([[0, 1, 1, 1]]))
    assert lp.tolist() == [[0.0, -1.0, -3.0, -0.5]]
    assert run.tolist() == [[0.0, -1.0, -3.0, -3.0]]


def test_response_mask_by_hand():
    assert response_mask(torch.Size([2, 5]), [1, 0], [2, 1], [4, 5]).tolist() == [[0, 0, 0, 1, 1], [0, 1, 1, 1, 1]]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tok = build_char_tokenizer()
    torch.manual_seed(0)
    policy = AutoModelForCausalLM.from_config(tiny_llama_config(tok, hidden=32, layers=2, heads=2, intermediate=64))
    path = tmp_path_factory.mktemp("lik") / "policy"
    save_model(policy, tok, path)
    model = LikelihoodRewardModel.from_causal_lm(load_scalar_model(path, extra_layers=1), path)
    return policy.eval(), model.eval(), tok, path


def test_it_reads_the_policys_own_token_logprobs_below_the_extra_layers(setup):
    policy, model, tok, _ = setup
    fmt = NativeFormat(tok)
    seqs = [fmt.encode(q, s).input_ids for q, s in zip(QUESTIONS, STEPS)]
    ids, mask, offs = pad_batch(seqs, tok.pad_token_id, "left")
    starts = [fmt.prompt_length(q) for q in QUESTIONS]
    resp = response_mask(ids.shape, offs, starts, [len(s) for s in seqs])
    with torch.no_grad():
        torch.nn.init.normal_(model.scalar.score.weight)
        plain = forward_logits(model.scalar, ids, mask)                  # the head alone
        model.mix.weight.copy_(torch.tensor([[0.0, 1.0]]))                # logit = head + lp
        got = forward_logits(model, ids, mask, resp) - plain
        ref = policy(input_ids=ids, attention_mask=mask, position_ids=position_ids_from_mask(mask)).logits
        want = ref.log_softmax(-1)[:, :-1].gather(-1, ids[:, 1:, None])[..., 0]
        model.mix.weight.zero_()
        torch.nn.init.zeros_(model.scalar.score.weight)
    for b in range(2):
        r = resp[b].nonzero().squeeze(1)
        assert len(r) == len(seqs[b]) - starts[b] > 10
        assert torch.allclose(got[b, r, 0], want[b, r - 1], atol=1e-4)      # log p(x_t | x_<t)
        assert float(got[b, resp[b] == 0].abs().max()) == 0.0                # prompt and pads: 0
    with pytest.raises(ValueError, match="response mask"):
        forward_logits(model, ids, mask)


def test_one_pass_scores_equal_per_prefix_and_survive_save_and_load(setup, tmp_path):
    _, model, tok, _ = setup
    with torch.no_grad():
        torch.nn.init.normal_(model.scalar.score.weight)
        model.mix.weight.copy_(torch.tensor([[0.7, 0.3]]))
    scorer = PRMScorer(model, tok, NativeFormat(tok))
    full = scorer.score(QUESTIONS, STEPS)
    assert len({round(x, 4) for s in full for x in s}) == 5
    for q, steps, got in zip(QUESTIONS, STEPS, full):
        for k in range(1, len(steps) + 1):
            assert scorer.score([q], [steps[:k]])[0][-1] == pytest.approx(got[k - 1], abs=1e-5)
    save_model(model, tok, tmp_path / "prm")
    again = load_scalar_model(tmp_path / "prm")
    assert isinstance(again, LikelihoodRewardModel) and again.backbone_layers == 2
    flat = lambda xss: [x for xs in xss for x in xs]  # noqa: E731
    reloaded = PRMScorer(again, tok, NativeFormat(tok)).score(QUESTIONS, STEPS)
    assert flat(reloaded) == pytest.approx(flat(full), abs=1e-6)
    orm = ORMScorer(model, tok).score(QUESTIONS, ["\n".join(s) for s in STEPS])
    assert ORMScorer(again, tok).score(QUESTIONS, ["\n".join(s) for s in STEPS]) == pytest.approx(orm, abs=1e-6)
    with torch.no_grad():
        model.mix.weight.zero_()
        torch.nn.init.zeros_(model.scalar.score.weight)


def test_training_moves_the_mix_and_leaves_the_lm_copy_alone(setup):
    _, _, tok, path = setup
    model = load_scalar_model(path, extra_layers=1)
    freeze_backbone(model, 1)
    model = LikelihoodRewardModel.from_causal_lm(model, path)
    frozen = {k: v.clone() for k, v in model.named_parameters() if not v.requires_grad}
    assert any(k.startswith("lm_head.") for k in frozen) and any(k.startswith("lm_norm.") for k in frozen)
    # any labels do: the mix starts at 0 and gets a gradient from the first batch
    recs = [StepLabelRecord(q, s, [1.0] * (len(s) - 1) + [0.0]) for q, s in zip(QUESTIONS, STEPS)] * 4
    batch = prm_training_batch(tok, NativeFormat(tok), recs[:2])
    assert batch["response_mask"].sum() > 0
    train_reward_model(model, tok, recs, kind="prm", epochs=3, lr=1e-2, batch_size=4)
    assert float(model.mix.weight.detach().abs().sum()) > 0
    for k, v in model.named_parameters():
        if k in frozen:
            assert torch.equal(v, frozen[k]), k
    orm = LikelihoodRewardModel.from_causal_lm(load_scalar_model(path, extra_layers=1), path)
    train_reward_model(orm, tok, [OutcomeRecord(q, "\n".join(s), 1.0) for q, s in zip(QUESTIONS, STEPS)],
                       kind="orm", epochs=2, lr=1e-2, batch_size=2)
    assert float(orm.mix.bias.detach().abs()) > 0
