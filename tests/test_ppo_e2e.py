"""End to end on a tiny model: PPO changes parameters, rewards are finite and land on the right
tokens, and the run folder holds what it should."""

from __future__ import annotations

import json
import math

import pytest
import torch

from prmrl.config import load_config
from prmrl.models.factory import build_tiny_policy, save_model
from prmrl.rl.trainer import PPOTrainer
from prmrl.rewards.scorers import SuccessReward
from prmrl.tasks import Task, arith

pytestmark = pytest.mark.slow


def tiny_cfg(tmp_path, *extra):
    return load_config(None, [
        "ppo.iterations=2", "ppo.prompts_per_iteration=4", "ppo.samples_per_prompt=2",
        "ppo.max_new_tokens=24", "ppo.minibatch_size=4", "ppo.ppo_epochs=1",
        "ppo.actor_lr=1e-3", "eval.every=0", "run.progress=false",
        f"run.out_dir={tmp_path}/run", f"run.cache_dir={tmp_path}/cache", *extra])


@pytest.fixture(scope="module")
def tiny_policy(tmp_path_factory):
    model, tok = build_tiny_policy(seed=0, hidden=32, layers=2, heads=2, intermediate=64)
    path = tmp_path_factory.mktemp("policy") / "p"
    save_model(model, tok, path)
    return path


def arith_task(questions=("Start with 3. (a) 4 more.",), golds=("7",)) -> Task:
    return Task(name="arith", train_questions=list(questions), train_golds=list(golds),
                test_questions=[], test_golds=[], prompt=arith.prompt,
                grade_batch=lambda rs, gs: [arith.grade(r, g) for r, g in zip(rs, gs)], delimiter="\n")


def make_trainer(cfg, path, prm=None, orm=None):
    return PPOTrainer(str(path), ppo=cfg.ppo, reward=cfg.reward, task=arith_task(),
                      success=SuccessReward(grade=arith.grade), prm=prm, orm=orm)


@pytest.mark.parametrize("shaping", ["none", "clip", "delta", "clip_delta", "min_form", "normed"])
def test_rewards_land_on_the_right_tokens(tmp_path, tiny_policy, shaping):
    """Success (+ alpha x ORM) on the last response token; the PRM's shaped step rewards
    (alpha x shape(scores)) on each step's last token, for every refinement."""
    from prmrl.rewards.shaping import shape_step_rewards

    torch.manual_seed(0)
    def fake_prm(prompts, steps, **columns):
        return [[0.25 + 0.5 * (k % 2) for k in range(len(s))] for s in steps]
    def fake_orm(prompts, completions, **columns):
        return [0.6 for _ in completions]
    cfg = tiny_cfg(tmp_path, "reward.prm=fake", f"reward.shaping={shaping}", "reward.prm_alpha=0.5",
                   "reward.orm=fake", "reward.orm_alpha=0.5", "reward.eta=0.5", "ppo.kl_beta=0.0")
    tr = make_trainer(cfg, tiny_policy, prm=fake_prm, orm=fake_orm)
    b = tr.generate(["Start with 3. Add 4."] * 4, ["7"] * 4)
    # pretend the policy wrote a known answer, to check placement exactly
    tok = tr.tok
    text = "3+4=7\nCheck: 3+4=7\n\\boxed{7}"
    ids = tok(text, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    from prmrl.models.sampler import encode_prompts
    from prmrl.steps import steps_for_batch
    p_ids, p_mask = encode_prompts(tok, [arith.prompt("Start with 3. Add 4.")])
    b.input_ids = torch.cat([p_ids, torch.tensor([ids])], 1)
    b.attention_mask = torch.ones_like(b.input_ids)
    b.response_mask = torch.ones(1, len(ids), dtype=torch.long)
    b.truncated = torch.tensor([False])
    b.questions, b.golds, b.texts = ["Start with 3. Add 4."], ["7"], [text]
    st = steps_for_batch(tok, [ids], "\n")[0]
    b.step_texts = [st.texts]
    b.step_end_index = torch.tensor([st.end_tokens])
    b.step_mask = torch.ones(1, 3, dtype=torch.bool)
    b.old_logprobs = None                  # the sampler's were for the sampled answers
    b.extra = {"prompts": [arith.prompt("Start with 3. Add 4.")]}
    tr.score(b)
    tr.shape(b)
    r = b.token_rewards[0]
    assert torch.isfinite(r).all()
    ends = st.end_tokens
    assert [tok.decode([ids[e]]) for e in ends] == ["7", "7", "}"]
    expected = torch.zeros(len(ids))
    for end, reward in zip(ends, shape_step_rewards([0.25, 0.75, 0.25], shaping, eta=0.5)):
        expected[end] += 0.5 * reward
    expected[len(ids) - 1] += 1.0 + 0.5 * 0.6     # success + alpha x ORM on the last token (EOS)
    assert torch.allclose(r, expected, atol=1e-6), (r, expected)
    assert b.step_rewards[0].tolist() == pytest.approx(
        [0.5 * x for x in shape_step_rewards([0.25, 0.75, 0.25], shaping, eta=0.5)])


def test_sampler_logprobs_are_the_policys(tmp_path, tiny_policy):
    """PPO's old log-probs come from the sampler: they equal a full forward pass's at the
    training temperature on every response token, and are 0 past a row's end."""
    from prmrl.models.forward import token_logprobs
    from prmrl.models.sampler import encode_prompts, sample_tokens

    torch.manual_seed(0)
    cfg = tiny_cfg(tmp_path, "ppo.temperature=0.7")
    tr = make_trainer(cfg, tiny_policy)
    b = tr.generate(["Start with 3. (a) 4 more.", "Start with 12. (a) 2 times. (b) 9 less."], ["7", "15"])
    full, _ = token_logprobs(tr.actor, b.input_ids, b.attention_mask, b.n_response, 0.7)
    m = b.response_mask.bool()
    assert torch.allclose(b.old_logprobs[m], full[m], atol=1e-4)
    # rows of different lengths (budgets 5 and 12): padding gets 0
    prompts = [arith.prompt("Start with 3. (a) 4 more."), arith.prompt("Start with 12. (a) 2 times.")]
    ids, lengths, _, logprobs = sample_tokens(tr.actor, tr.tok, prompts, budgets=[5, 12], temperature=0.7,
                                               logprobs=True)
    assert lengths.tolist() == [5, 12] and (logprobs[0, 5:] == 0).all()
    p_ids, p_mask = encode_prompts(tr.tok, prompts)
    mask = (torch.arange(ids.shape[1])[None] < lengths[:, None]).long()
    full, _ = token_logprobs(tr.actor, torch.cat([p_ids, ids], 1), torch.cat([p_mask, mask], 1),
                             ids.shape[1], 0.7)
    assert torch.allclose(logprobs[mask.bool()], full[mask.bool()], atol=1e-4)


def test_ppo_changes_parameters_and_logs(tmp_path, tiny_policy):
    from prmrl.jobs.ppo import run_ppo

    cfg = tiny_cfg(tmp_path)
    from prmrl.models.factory import load_policy
    before = {k: v.clone() for k, v in load_policy(tiny_policy).state_dict().items()}
    out = run_ppo(cfg, tiny_policy, tmp_path / "run")
    after = load_policy(out["policy"]).state_dict()
    changed = sum(not torch.equal(before[k], after[k]) for k in before)
    assert changed > len(before) // 2, f"only {changed} of {len(before)} tensors changed"
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [x["iteration"] for x in lines] == [0, 1]
    for x in lines:
        assert all(math.isfinite(v) for v in x.values() if isinstance(v, float))
        assert "rollout/steps_per_answer" in x and "losses/policy" in x
    assert (tmp_path / "run" / "config.yaml").exists()
    assert (tmp_path / "run" / "versions.json").exists()
    assert (tmp_path / "run" / "plots" / "training.png").stat().st_size > 1000
    for diag in ["steps_per_answer", "repeated_step_rate", "tokens_per_step", "truncation_rate",
                 "mean_response_tokens"]:
        assert (tmp_path / "run" / "plots" / f"rollout_{diag}.png").stat().st_size > 1000


def test_success_reward_moves_the_policy_toward_reward(tmp_path):
    """A few PPO steps on a reward for starting with a digit raise that rate (the policy learns)."""
    model, tok = build_tiny_policy(seed=1, hidden=32, layers=2, heads=2, intermediate=64)
    path = tmp_path / "p"
    save_model(model, tok, path)
    cfg = tiny_cfg(tmp_path, "ppo.iterations=8", "ppo.samples_per_prompt=16", "ppo.max_new_tokens=2",
                   "ppo.minibatch_size=64", "ppo.ppo_epochs=2", "ppo.actor_lr=3e-3", "ppo.kl_beta=0.0")
    rewards = SuccessReward(grade=lambda r, g: r[:1].isdigit())
    from prmrl.models.factory import load_policy, load_scalar_model
    tr = PPOTrainer(load_policy(path), tokenizer=tok, critic=load_scalar_model(path), ppo=cfg.ppo,
                    reward=cfg.reward, prompts=["Say:"], success=rewards)
    rates = []
    torch.manual_seed(0)
    for it in range(cfg.ppo.iterations):
        b, m = tr.iteration(["Say:"] * 8, ["7"] * 8, it)
        rates.append(m["rollout/success"])
    assert sum(rates[-2:]) / 2 > sum(rates[:2]) / 2 + 0.15, rates


def test_prm_rows_must_match_steps_with_unscored_only_at_the_end():
    from prmrl.rl.trainer import _check_prm_rows

    _check_prm_rows([[0.5, 0.4, None], [None]], [["a", "b", "c"], ["d"]])   # a suffix: fine
    with pytest.raises(ValueError, match="2 scores for answer 0 with 3 steps"):
        _check_prm_rows([[0.5, 0.4]], [["a", "b", "c"]])
    with pytest.raises(ValueError, match="unscored before a scored one"):
        _check_prm_rows([[0.5, None, 0.3]], [["a", "b", "c"]])


def test_metrics_mean_over_processes_when_one_lacks_a_metric(monkeypatch):
    """A metric undefined in one process's batch is averaged over the processes that have it,
    and never paired with another metric's value."""
    import accelerate.utils
    from types import SimpleNamespace

    from prmrl.rl.trainer import _reduce

    other = {"rollout/success": 0.25}              # this process's batch had no scored PRM step
    monkeypatch.setattr(accelerate.utils, "gather_object", lambda objs: objs + [other])
    out = _reduce(SimpleNamespace(num_processes=2), {"rollout/success": 0.75, "rollout/prm_mean_score": 0.6})
    assert out == {"rollout/prm_mean_score": 0.6, "rollout/success": 0.5}
