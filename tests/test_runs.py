"""Run folders: atomic checkpoints, one run's metrics per folder, resolved config and versions."""

from __future__ import annotations

import json

import pytest

from prmrl.config import load_config
from prmrl.runs import MetricsLog, atomic_dir, read_jsonl, start_run, write_json


def test_atomic_dir_leaves_nothing_half_written(tmp_path):
    target = tmp_path / "ckpt"
    with atomic_dir(target) as tmp:
        (tmp / "weights").write_text("v1")
    assert (target / "weights").read_text() == "v1"
    with pytest.raises(RuntimeError):
        with atomic_dir(target) as tmp:
            (tmp / "weights").write_text("v2-partial")
            raise RuntimeError("crash mid-write")
    assert (target / "weights").read_text() == "v1"           # the old checkpoint survives
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]   # no temporary left behind
    with atomic_dir(target) as tmp:
        (tmp / "weights").write_text("v2")
    assert (target / "weights").read_text() == "v2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]


def test_a_second_run_in_a_folder_keeps_the_first_runs_metrics_apart(tmp_path):
    cfg = load_config(None, ["ppo.iterations=3"])
    run = start_run(tmp_path / "run", cfg)
    log = MetricsLog(run / "metrics.jsonl")
    log.write({"iteration": 0, "x": 1.0})
    log.close()
    assert "iterations: 3" in (run / "config.yaml").read_text()
    assert "torch" in json.loads((run / "versions.json").read_text())

    run = start_run(tmp_path / "run", load_config(None, ["ppo.iterations=5"]))
    log = MetricsLog(run / "metrics.jsonl")
    log.write({"iteration": 0, "x": 2.0})
    log.close()
    assert [r["x"] for r in read_jsonl(run / "metrics.jsonl")] == [2.0]
    assert [r["x"] for r in read_jsonl(run / "metrics.prev-1.jsonl")] == [1.0]
    assert "iterations: 5" in (run / "config.yaml").read_text()


def test_write_json_is_whole_or_absent(tmp_path):
    write_json(tmp_path / "a.json", {"k": 1})
    with pytest.raises(TypeError):
        write_json(tmp_path / "a.json", {"k": object()})
    assert json.loads((tmp_path / "a.json").read_text()) == {"k": 1}
