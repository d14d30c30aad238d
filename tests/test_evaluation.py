import math
from statistics import mean

import pytest

from prmrl.jobs.ablation import ARMS, arm_config, results_markdown
from prmrl.config import from_dict, load_config
from prmrl.evaluation.accuracy import pass_at_k


def test_pass_at_k_by_hand():
    assert pass_at_k(4, 0, 1) == 0.0
    assert pass_at_k(4, 4, 2) == 1.0
    assert math.isclose(pass_at_k(4, 1, 1), 0.25)
    # 1 - C(2,2)/C(4,2) = 1 - 1/6
    assert math.isclose(pass_at_k(4, 2, 2), 5 / 6)
    assert pass_at_k(4, 3, 2) == 1.0          # n - c < k: every pair holds a right answer


def test_arm_configs_differ_only_in_rewards_and_seed(tmp_path):
    cfg = load_config()
    dicts = {name: arm_config(cfg, arm, 1, "orm/path", "prm/path", tmp_path / name) for name, arm in ARMS.items()}
    for name, d in dicts.items():
        c = from_dict(d)                      # each arm is a valid config
        assert c.run.seed == 1 and c.task == cfg.task
        assert c.ppo.iterations == cfg.ablation.iterations   # the ablation's own run length
        c.ppo.iterations = cfg.ppo.iterations
        assert c.ppo == cfg.ppo
    assert from_dict(dicts["SR"]).reward == cfg.reward
    assert from_dict(dicts["SR+ORM"]).reward.orm == "orm/path"
    shapings = {n: from_dict(d).reward.shaping for n, d in dicts.items() if "PRM" in n}
    assert shapings == {"SR+PRM": "none", "SR+PRM-Clip": "clip", "SR+PRM-Delta": "delta",
                        "SR+PRM-Clip-Delta": "clip_delta"}
    assert all(from_dict(d).reward.prm == "prm/path" for n, d in dicts.items() if "PRM" in n)


def test_results_markdown_table():
    ms = {m: {"mean": 0.5, "std": 0.1} for m in ["greedy_accuracy", "sampling_accuracy", "steps_per_answer",
                                                 "repeated_step_rate", "mean_response_tokens"]}
    md = results_markdown({"arms": {"SR": ms, "SR+PRM": ms}, "seeds": [0, 1, 2], "wall_seconds": 12.0})
    lines = md.splitlines()
    assert lines[0].startswith("| arm | greedy_accuracy")
    assert lines[2] == "| SR | " + " | ".join(["0.500 ± 0.100"] * 5) + " |"
    assert "3 seed(s)" in md


def test_arms_ignore_reward_models_set_in_the_config(tmp_path):
    """A config that already names a PRM/ORM/shaping does not leak into the arms."""
    cfg = load_config(None, ["reward.prm=some/prm", "reward.orm=some/orm", "reward.shaping=delta"])
    sr = from_dict(arm_config(cfg, ARMS["SR"], 0, "O", "P", tmp_path / "sr"))
    assert sr.reward.prm is None and sr.reward.orm is None and sr.reward.shaping == "none"
    clip = from_dict(arm_config(cfg, ARMS["SR+PRM-Clip"], 0, "O", "P", tmp_path / "c"))
    assert clip.reward.prm == "P" and clip.reward.orm is None and clip.reward.shaping == "clip"


def test_quick_reproduce_overrides_are_a_valid_config():
    from prmrl.cli import QUICK_REPRODUCE

    cfg = load_config(None, QUICK_REPRODUCE)
    assert cfg.ablation.seeds == 1 and cfg.ablation.iterations < load_config().ablation.iterations


def test_probe_returns_by_hand():
    """Every step scored 0.8 (0.2 for the final line): k copies add 0.8 each to the naive
    return; Clip (eta 0.5) charges only the final line; Delta stays at r_1."""
    from prmrl.jobs.probe import probe_returns

    base = [("q1", ["s1", "s2", "end"]), ("q2", ["t1", "end"])]

    def prm(questions, steps):
        return [[0.2 if s == "end" else 0.8 for s in st] for st in steps]

    r = probe_returns(base, prm, eta=0.5, max_copies=3)
    assert r["k"] == [0, 1, 2, 3] and r["n_answers"] == 2 and r["n_unscorable_answers"] == 0
    naive = r["returns"]["none"]
    assert naive == pytest.approx([mean([1.8, 1.0]) + 0.8 * k for k in range(4)])
    assert r["returns"]["clip"] == pytest.approx([-0.3] * 4)
    assert r["returns"]["delta"] == pytest.approx([0.8] * 4)
    assert r["returns"]["clip_delta"] == pytest.approx([0.0] * 4)

    def short_context(questions, steps):      # cannot score answers of more than 4 steps
        return [[0.8 if i < 4 else None for i in range(len(st))] for st in steps]

    r = probe_returns(base, short_context, eta=0.5, max_copies=2)
    assert r["n_answers"] == 1 and r["n_unscorable_answers"] == 1    # q1 has 5 steps at k = 2
