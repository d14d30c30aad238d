"""Seed sweeps: seed lists parse, each run gets its own folder, cache and thread count, and the
spread is computed from the runs' own figures."""

from __future__ import annotations

import json
import math

import pytest

from prmrl.config import ConfigError, load_config
from prmrl.jobs.sweep import format_sweep, parse_ints, spread, summarise, sweep


@pytest.mark.parametrize("text, want", [("0-3", [0, 1, 2, 3]), ("1-2,7", [1, 2, 7]), ("5", [5]),
                                        (" 0 , 2 ", [0, 2])])
def test_seed_lists(text, want):
    assert parse_ints(text) == want


@pytest.mark.parametrize("text", ["3-1", "a", "0,0", "-1", "", "1-"])
def test_bad_seed_lists_are_one_line_errors(text):
    with pytest.raises(ConfigError, match="--seeds"):
        parse_ints(text)


def test_spread_by_hand():
    s = spread([0.1, 0.3, 0.2])
    assert s["mean"] == pytest.approx(0.2) and s["std"] == pytest.approx(0.1)
    assert (s["min"], s["max"], s["n"]) == (0.1, 0.3, 3)
    assert spread([0.5])["std"] == 0.0
    assert spread([math.nan, 1.0])["n"] == 1          # a figure a run could not compute is left out
    assert math.isnan(spread([])["mean"])


def test_summary_has_every_figure_of_every_run():
    runs = [{"figures": {"a": 1.0}}, {"figures": {"a": 3.0, "b": 2.0}}]
    s = summarise(runs)
    assert s["a"]["mean"] == 2.0 and s["b"]["n"] == 1


@pytest.mark.slow
def test_a_demo_sweep_runs_each_seed_and_thread_count_in_its_own_folder(tmp_path):
    cfg = load_config(None, [f"run.out_dir={tmp_path / 'sw'}", "sft.steps=20", "sft.warmup_steps=2",
                             "ppo.iterations=1", "ppo.prompts_per_iteration=4", "ppo.minibatch_size=16",
                             "ppo.max_new_tokens=24", "eval.n_problems=8", "eval.sampling_samples=1",
                             "eval.pass_k=[1]", "eval.max_new_tokens=24", "eval.every=0",
                             "task.n_train=200", "task.n_test=20", "model.hidden=32",
                             "model.heads=2", "model.intermediate=64"])
    lines = []
    report = sweep(cfg, "demo", seeds=[0, 1], threads=[1], workers=2, progress=lines.append)
    assert [(r["seed"], r["threads"]) for r in report["runs"]] == [(0, 1), (1, 1)] and len(lines) == 2
    for seed in (0, 1):
        run = tmp_path / "sw" / f"seed{seed}-t1"
        summary = json.loads((run / "summary.json").read_text())
        figures = report["runs"][seed]["figures"]
        assert figures["greedy_after"] == summary["after"]["greedy_accuracy"]
        assert figures["sampling_gain"] == pytest.approx(
            summary["after"]["sampling_accuracy"] - summary["before"]["sampling_accuracy"])
        assert any((run / "cache" / "sft").iterdir())          # its own SFT policy
        cfg_text = (run / "config.yaml").read_text()
        assert f"seed: {seed}" in cfg_text and "threads: 1" in cfg_text
    saved = json.loads((tmp_path / "sw" / "sweep.json").read_text())
    assert saved["summary"]["greedy_after"]["n"] == 2
    assert "greedy_gain" in format_sweep(report)


@pytest.mark.parametrize("argv, message", [
    (["demo", "--seeds", "3-1"], "--seeds: '3-1'"), (["bon", "--seeds", "0", "--threads", "0"], "--threads"),
    (["demo", "--seeds", "0", "--workers", "0"], "--workers: 0")])
def test_cli_sweep_arguments_fail_in_one_line(argv, message, tmp_path, capsys):
    from prmrl.cli import main

    assert main([*argv, f"run.out_dir={tmp_path / 'r'}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
