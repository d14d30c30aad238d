import subprocess
import sys

import pytest

from prmrl.config import Config, ConfigError, load_config


def test_defaults_validate():
    cfg = load_config()
    assert isinstance(cfg, Config) and cfg.task.name == "arith" and cfg.reward.shaping == "none"


def test_yaml_and_overrides(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("ppo:\n  iterations: 7\n  kl_beta: 0.05\nreward:\n  eta: 0.3\n")
    cfg = load_config(f, ["ppo.iterations=9", "eval.pass_k=[1,2]", "run.out_dir=runs/x"])
    assert cfg.ppo.iterations == 9 and cfg.ppo.kl_beta == 0.05 and cfg.reward.eta == 0.3
    assert cfg.eval.pass_k == [1, 2] and cfg.run.out_dir == "runs/x"


@pytest.mark.parametrize("overrides, needle", [
    (["ppo.iterationz=3"], "unknown key 'ppo.iterationz'"),
    (["reward.shaping=clipp", "reward.prm=x"], "reward.shaping: 'clipp' is not allowed; choose one of"),
    (["ppo.gamma=1.5"], "ppo.gamma"),
    (["ppo.iterations=ten"], "ppo.iterations: expected an integer"),
    (["reward.shaping=clip"], "needs reward.prm"),
    (["eval.pass_k=[8]"], "eval.pass_k"),
    (["nosuch.key=1"], "unknown key 'nosuch'"),
    (["ppo.whiten_advantages=maybe"], "expected true or false"),
    (["rm.extra_layers=0"], "rm.freeze_backbone: needs rm.extra_layers >= 1"),
    (["rm.completer_temperature=0"], "rm.completer_temperature: 0.0 is out of range; allowed (0, inf)"),
])
def test_bad_values_name_the_key(overrides, needle):
    with pytest.raises(ConfigError, match=None) as e:
        load_config(None, overrides)
    assert needle in str(e.value)


def test_malformed_yaml_names_file_and_line(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("ppo:\n  iterations: 3\n  kl_beta: [0.1\n")
    with pytest.raises(ConfigError) as e:
        load_config(f)
    assert "bad.yaml" in str(e.value) and "line" in str(e.value)


def _cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "prmrl.cli", *args], capture_output=True,
                          text=True, timeout=120, cwd=cwd)


@pytest.mark.parametrize("args, needle", [
    (["train", "ppo.iterationz=3"], "unknown key 'ppo.iterationz'"),
    (["eval", "--policy", "/nonexistent/policy"], "no model at '/nonexistent/policy'"),
    (["train", "--config", "missing.yaml"], "config file not found"),
    (["train", "ppo.max_grad_norm=-1"], "ppo.max_grad_norm: -1.0 is out of range; allowed (0, inf)"),
])
def test_cli_errors_are_one_line(args, needle, tmp_path):
    r = _cli(*args, cwd=tmp_path)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    lines = [line for line in r.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and needle in lines[0], r.stderr


def test_cli_malformed_config_one_line(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("ppo: [unclosed\n")
    r = _cli("train", "--config", str(f), cwd=tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "bad.yaml" in r.stderr
