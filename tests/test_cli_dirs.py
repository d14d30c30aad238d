"""Each CLI command writes into its own run folder unless one is given."""

from types import SimpleNamespace

from prmrl.cli import _config


def _args(command, *overrides, quick=False):
    return SimpleNamespace(command=command, config=None, overrides=list(overrides), quick=quick)


def test_each_command_has_its_own_run_folder():
    assert _config(_args("demo")).run.out_dir == "runs/demo"
    assert _config(_args("reproduce")).run.out_dir == "runs/reproduce"
    assert _config(_args("reproduce", quick=True)).run.out_dir == "runs/reproduce-quick"
    assert _config(_args("bon")).run.out_dir == "runs/bon"
    assert _config(_args("bon", "run.out_dir=elsewhere")).run.out_dir == "elsewhere"
