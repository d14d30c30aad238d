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


def test_a_command_refuses_an_explicit_folder_that_holds_a_run_and_changes_nothing(tmp_path, capsys):
    from prmrl.cli import main

    run = tmp_path / "r"
    run.mkdir()
    (run / "config.yaml").write_text("earlier: run\n")
    for command in (["demo"], ["bon"], ["probe"], ["reproduce", "--quick"], ["eval", "--policy", "p"]):
        assert main([*command, f"run.out_dir={run}", "run.progress=false"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "holds a run already" in err[0], (command, err)
    assert sorted(p.name for p in run.iterdir()) == [".lock", "config.yaml"]
    assert (run / "config.yaml").read_text() == "earlier: run\n"


def test_a_command_refuses_a_folder_another_process_writes_into(tmp_path, capsys):
    from prmrl.cli import main
    from prmrl.runs import RunLock

    with RunLock(tmp_path / "busy"):           # a training run holds it
        assert main(["eval", "--policy", "p", f"run.out_dir={tmp_path / 'busy'}"]) == 2
    assert "a run is writing into this folder" in capsys.readouterr().err
    assert not (tmp_path / "busy" / "eval.json").exists()


def test_the_demo_runs_grpo_unless_told_otherwise(tmp_path, monkeypatch):
    """`prmrl demo`'s own defaults (config.COMMAND_DEFAULTS) sit below a YAML file and overrides,
    and other commands keep the sections' defaults; --help shows the command's."""
    from prmrl.cli import config_help

    monkeypatch.chdir(tmp_path)
    demo = _config(_args("demo")).ppo
    assert (demo.advantage, demo.actor_lr) == ("grpo", 2e-4)
    train = _config(_args("train")).ppo
    assert (train.advantage, train.actor_lr) == ("gae", 1e-4)
    assert _config(_args("demo", "ppo.advantage=gae")).ppo.advantage == "gae"
    (tmp_path / "c.yaml").write_text("ppo:\n  actor_lr: 3.0e-4\n")
    from_file = _config(_args("demo", config=str(tmp_path / "c.yaml"))).ppo
    assert (from_file.advantage, from_file.actor_lr) == ("grpo", 3e-4)
    assert "ppo.advantage (str) ['grpo']" in config_help(["ppo"], "demo")
    assert "ppo.advantage (str) ['gae']" in config_help(["ppo"], "train")
