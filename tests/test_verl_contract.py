"""prmrl.integrations.verl without verl: the pure part the verl reward manager and estimators
run (token_rewards_for_batch, verl_advantages) equals PPOTrainer's score / shape / advantages on
the same responses. tests/verl/ runs the verl side in its own venv (make test-verl)."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

import prmrl.rl.trainer as trainer_mod
from prmrl import PPOConfig, PPOTrainer, RewardConfig, Task
from prmrl.config import ConfigError
from prmrl.integrations import verl as pv
from prmrl.models.factory import build_tiny_policy, save_model
from prmrl.models.sampler import Generation, encode_prompts
from prmrl.tasks import arith

QUESTIONS, GOLDS, N = ["12+30=?", "7*6=?"], ["42", "42"], 2
RESPONSES = [("12+30 = 42\nSo 42\n\\boxed{42}", True), ("12+30 = 41\n12+30 = 41\n\\boxed{41}", True),
             ("", True), ("7*6 = 40\n40+2 = 42\nso \\boxed{42} and", False)]
REWARD = RewardConfig(shaping="clip_delta", eta=0.5, prm_alpha=1.0, unscorable_reward=-0.5)


def fake_prm(prompts, steps, **_):
    """Scores from the step text; the 3rd step of every answer is past the PRM's context (None)."""
    return [[None if k >= 2 else (len(s) % 7) / 7 for k, s in enumerate(row)] for row in steps]


def fake_success(prompts, completions, *, gold, **_):
    """arith's grader, but an answer without a box is ungradable (None: counted, not 0)."""
    return [None if "boxed" not in c else float(arith.grade(c, g)) for c, g in zip(completions, gold)]


@pytest.fixture(scope="module")
def policy(tmp_path_factory):
    model, tok = build_tiny_policy(seed=0, hidden=32, layers=1, heads=2, intermediate=64)
    path = tmp_path_factory.mktemp("policy") / "p"
    save_model(model, tok, path)
    return path, tok


def generation(tok) -> Generation:
    pids, pmask = encode_prompts(tok, [arith.prompt(q) for q in QUESTIONS])
    rows = [tok(t, add_special_tokens=False)["input_ids"] + ([tok.eos_token_id] if eos else []) for t, eos in RESPONSES]
    R = max(map(len, rows)) + 1
    ids = torch.full((len(rows), R), tok.pad_token_id)
    mask = torch.zeros((len(rows), R), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)], mask[i, : len(r)] = torch.tensor(r), 1
    return Generation(pids.repeat_interleave(N, 0), pmask.repeat_interleave(N, 0), ids, mask,
                      torch.tensor([not e for _, e in RESPONSES]), tok.batch_decode(ids, skip_special_tokens=True),
                      torch.zeros(ids.shape))


@pytest.fixture
def trained(policy, monkeypatch):
    path, tok = policy
    gen = generation(tok)
    monkeypatch.setattr(trainer_mod, "generate", lambda *a, **k: gen)
    task = Task(name="arith", train_questions=QUESTIONS, train_golds=GOLDS, test_questions=[], test_golds=[],
                prompt=arith.prompt, grade_batch=lambda rs, gs: [arith.grade(r, g) for r, g in zip(rs, gs)],
                delimiter="\n")
    tr = PPOTrainer(str(path), task=task, success=fake_success, prm=fake_prm, reward=REWARD,
                    ppo=PPOConfig(samples_per_prompt=N, prompts_per_iteration=2, minibatch_size=4,
                                  max_new_tokens=gen.response_ids.shape[1], advantage="grpo", kl_beta=0.1))
    b = tr.generate(QUESTIONS, GOLDS)
    b.old_logprobs = None                      # recomputed by the actor: the KL to its copy is 0
    tr.score(b)
    tr.shape(b)
    return tr, b, gen, tok


def test_token_rewards_equal_the_trainers(trained):
    tr, b, gen, tok = trained
    out = pv.token_rewards_for_batch(
        tok, gen.response_ids.tolist(), gen.response_mask, questions=b.questions, golds=b.golds, reward=REWARD,
        success=fake_success, prm=fake_prm, splitter="\n", truncated=gen.truncated.tolist())
    assert torch.equal(b.kl, torch.zeros_like(b.kl))
    assert torch.equal(out.token_rewards, b.token_rewards)
    assert torch.equal(out.step_scored, b.step_scored) and torch.equal(out.answer_rewards, b.answer_rewards)
    assert out.unscorable == tr.unscorable and out.unscorable["success"] == 1 and out.unscorable["prm_steps"] > 0
    ours, theirs = out.metrics(), tr.rollout_metrics(b)
    for k in set(ours) & set(theirs):
        assert ours[k] == pytest.approx(theirs[k]), k
    info = out.extra_info()
    assert info["prmrl_ungradable"] == [0.0, 0.0, 1.0, 0.0] and info["acc"][2] == 0.0
    assert info["prmrl_answer_reward"][2] == -0.5           # unscorable_reward, counted above
    assert info["prmrl_repeated_steps"][1] == 1.0 and info["prmrl_truncated"] == [0.0, 0.0, 0.0, 1.0]
    assert all(not math.isnan(x) for v in info.values() for x in v)


@pytest.mark.parametrize("estimator", ["grpo", "rloo", "reinforce_pp"])
def test_verl_advantages_equal_the_trainers(trained, estimator):
    tr, b, _, _ = trained
    torch.manual_seed(0)
    b.kl = torch.rand_like(b.kl) * b.response_mask
    # grpo with the KL in the loss (verl: use_kl_loss), the others with it in the rewards
    # (verl: use_kl_in_reward), as the trainer's kl_mode "auto" and "reward" give them
    kl_mode = "auto" if estimator == "grpo" else "reward"
    tr.ppo = dataclasses.replace(tr.ppo, advantage=estimator, credit="return_to_go", kl_mode=kl_mode)
    tr.advantages(b)
    uids = [f"u{i // N}" for i in range(len(b))]
    kl = tr.ppo.kl_beta * b.kl if kl_mode == "reward" else 0.0
    adv, ret = pv.verl_advantages(b.token_rewards - kl, b.response_mask, uids, estimator=estimator)
    torch.testing.assert_close(adv, b.advantages, rtol=1e-5, atol=1e-5)
    assert adv is ret


def test_verl_layout_and_question():
    prompts = torch.tensor([[0, 5, 6], [7, 8, 9]])
    responses = torch.tensor([[1, 2, 0], [3, 0, 0]])
    am = torch.tensor([[0, 1, 1, 1, 1, 0], [1, 1, 1, 1, 0, 0]])
    ids, mask = pv.verl_layout(prompts, responses, am)
    assert ids == [[5, 6], [7, 8, 9]] and mask.tolist() == [[1, 1, 0], [1, 0, 0]]
    assert pv.question_of({"extra_info": {"question": "q1"}}, "p") == "q1"
    assert pv.question_of({"raw_prompt": [{"role": "system", "content": "s"}, {"role": "user", "content": "q2"}]},
                          "p") == "q2"
    assert pv.question_of({}, "p") == "p"


def test_settings_are_checked_as_a_prmrl_config():
    s = pv.Settings.from_dict({"task": {"name": "math500", "step_delimiter": "\n\n"},
                               "reward": {"prm_url": "http://h:8000", "prm_format": "qwen_prm",
                                          "shaping": "clip_delta", "eta": 0.5}})
    assert s.reward.shaping == "clip_delta" and s.task.step_delimiter == "\n\n"
    with pytest.raises(ConfigError, match="shapping"):
        pv.Settings.from_dict({"reward": {"shapping": "clip"}})
    with pytest.raises(ConfigError, match="needs reward.prm"):
        pv.Settings.from_dict({"reward": {"shaping": "clip"}})
    with pytest.raises(ConfigError, match="unknown section"):
        pv.Settings.from_dict({"ppo": {}})


def test_verl_rows_carry_gold_and_raw_question():
    rows = pv.verl_rows(["1+1?"], ["2"], data_source="prmrl/x", split="train")
    assert rows[0]["prompt"][-1] == {"role": "user", "content": "1+1?"}
    assert rows[0]["reward_model"]["ground_truth"] == "2" and rows[0]["extra_info"]["question"] == "1+1?"


def test_verl_classes_need_verl():
    import importlib.util

    if importlib.util.find_spec("verl.protocol") is None:      # (tests/verl may pose as a "verl")
        with pytest.raises(ImportError, match="make verl-setup"):
            pv.PRMRLRewardManager
    else:
        assert pv.PRMRLRewardManager.__name__ == "PRMRLRewardManager"
