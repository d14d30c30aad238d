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


def _pinned():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "pinned_results.py"
    spec = importlib.util.spec_from_file_location("pinned_results", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _report(machine, greedy_after, seeds=(0, 1)):
    runs = [{"seed": s, "threads": 1,
             "figures": {"greedy_before": 0.45, "greedy_after": greedy_after + 0.01 * s, "greedy_gain": 0.05,
                         "sampling_before": 0.2, "sampling_after": 0.3, "sampling_gain": 0.1,
                         "steps_after": 3.9, "wall_seconds": 100.0 + s}} for s in seeds]
    return {"runs": runs, "machine": machine, "torch": "2.13.0"}


def test_pinned_results_see_a_moved_run_on_the_same_machine_and_a_moved_mean_anywhere():
    pinned = _pinned()
    base = _report("cpu A", 0.50)
    assert pinned.compare(_report("cpu A", 0.50), base) == []
    moved = pinned.compare(_report("cpu A", 0.51), base)           # each run moved by 0.01
    assert len(moved) == 2 and all("greedy_after" in m for m in moved)
    assert pinned.compare(_report("cpu B", 0.51), base) == []      # another CPU: means, 0.01 < 0.03
    moved = pinned.compare(_report("cpu B", 0.55), base)
    assert len(moved) == 1 and moved[0].startswith("mean greedy_after")
    assert "no run" in pinned.compare(_report("cpu A", 0.5, seeds=(7,)), base)[0]
