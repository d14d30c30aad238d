"""`prmrl reproduce` end to end at toy size: SFT, labels, ORM and PRM, every arm in worker
processes, then results.json / results.md / plots. The figures are meaningless at this size;
what is checked is that every arm ran with its own rewards and the report holds what it says."""

from __future__ import annotations

import json

import pytest

from prmrl.jobs.ablation import ARMS, FINAL_METRICS
from prmrl.cli import main

pytestmark = pytest.mark.slow

TOY = ["model.hidden=32", "model.heads=2", "model.intermediate=64", "sft.steps=30", "sft.batch_size=16",
       "rm.n_problems=6", "rm.samples_per_problem=2", "rm.completions_per_step=2", "rm.epochs=1",
       "rm.max_new_tokens=48", "ppo.prompts_per_iteration=4", "ppo.samples_per_prompt=2",
       "ppo.minibatch_size=8", "ppo.max_new_tokens=48", "eval.n_problems=6", "eval.sampling_samples=2",
       "eval.pass_k=[1,2]", "eval.max_new_tokens=48", "eval.every=1", "eval.n_problems_during=4",
       "ablation.iterations=2", "ablation.seeds=2", "ablation.workers=2", "run.progress=false"]


def test_reproduce_runs_every_arm_and_reports(tmp_path, capsys):
    out = tmp_path / "ablation"
    rc = main(["reproduce", f"run.out_dir={out}", f"run.cache_dir={tmp_path}/cache", *TOY])
    assert rc == 0
    report = json.loads((out / "results.json").read_text())
    assert list(report["arms"]) == list(ARMS) and report["seeds"] == [0, 1]
    for arm, stats in report["arms"].items():
        for m in FINAL_METRICS:
            per_seed = [report["per_seed"][arm][str(s)][m] for s in (0, 1)]
            assert stats[m]["mean"] == pytest.approx(sum(per_seed) / 2)
            assert stats[m]["std"] == pytest.approx(abs(per_seed[0] - per_seed[1]) / 2)
        for seed in (0, 1):
            run = out / arm / f"seed{seed}"
            rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
            assert [r["iteration"] for r in rows] == [0, 1]
            # each arm trained on its own reward: PRM arms log PRM scores, the ORM arm ORM scores
            assert ("rollout/prm_mean_score" in rows[0]) == ("PRM" in arm)
            assert ("rollout/orm_score" in rows[0]) == (arm == "SR+ORM")
            assert (run / "policy" / "config.json").exists()
    # same seed, different rewards -> different step rewards logged (the arms really differ)
    sums = {arm: json.loads((out / arm / "seed0" / "metrics.jsonl").read_text().splitlines()[0])
            ["rollout/step_reward_sum"] for arm in ARMS if "PRM" in arm}
    assert sums["SR+PRM"] > 0 and sums["SR+PRM-Clip-Delta"] <= 0 and sums["SR+PRM-Clip"] <= 0
    assert (out / "results.md").read_text().startswith("| arm | greedy_accuracy")
    for key in ["rollout_steps_per_answer", "rollout_repeated_step_rate", "rollout_tokens_per_step",
                "rollout_prm_mean_score", "eval_greedy_accuracy"]:
        assert (out / "plots" / f"{key}.png").stat().st_size > 1000
    assert "| SR+PRM-Clip-Delta |" in capsys.readouterr().out
