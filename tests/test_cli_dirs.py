"""Each CLI command writes into its own run folder unless one is given; a rerun never writes
into a folder that holds a run."""

from types import SimpleNamespace

from prmrl.cli import _config


def _args(command, *overrides, quick=False, config=None):
    return SimpleNamespace(command=command, config=config, overrides=list(overrides), quick=quick)


def test_each_command_has_its_own_run_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert _config(_args("demo")).run.out_dir == "runs/demo"
    assert _config(_args("reproduce")).run.out_dir == "runs/reproduce"
    assert _config(_args("reproduce", quick=True)).run.out_dir == "runs/reproduce-quick"
    assert _config(_args("bon")).run.out_dir == "runs/bon"
    assert _config(_args("bon", "run.out_dir=elsewhere")).run.out_dir == "elsewhere"


def test_a_rerun_at_the_default_folder_gets_the_next_free_one(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs" / "train").mkdir(parents=True)
    assert _config(_args("train")).run.out_dir == "runs/train"          # empty: not a run
    (tmp_path / "runs" / "train" / "metrics.jsonl").write_text("{}\n")
    assert _config(_args("train")).run.out_dir == "runs/train-2"
    (tmp_path / "runs" / "train-2" / "checkpoints").mkdir(parents=True)
    assert _config(_args("train")).run.out_dir == "runs/train-3"
    # resuming means the folder that holds the run
    assert _config(_args("train", "run.resume=true")).run.out_dir == "runs/train"
    # a folder named in the config file is used as it is
    cfg = tmp_path / "c.yaml"
    cfg.write_text("run:\n  out_dir: runs/train\n")
    assert _config(_args("train", config=str(cfg))).run.out_dir == "runs/train"
