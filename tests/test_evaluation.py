import math

from prmrl.ablation import ARMS, arm_config, results_markdown
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
