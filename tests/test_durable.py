"""Runs survive kill -9, SIGTERM and NaN: a resumed run equals the uninterrupted one bit for bit
(CPU), a signal leaves a checkpoint, a non-finite quantity stops the run with one line."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from prmrl.models.factory import build_tiny_policy, save_model

pytestmark = pytest.mark.slow
SCRIPT = Path(__file__).with_name("durable_run.py")
TIMING = ("time", "charts/")


def run(*args, expect: int = 0) -> subprocess.CompletedProcess:
    r = subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True,
                       text=True, timeout=300, env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"},
                       umask=0o027)
    assert r.returncode == expect, (r.returncode, r.stderr[-3000:])
    return r


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(run_dir / "policy" / "model.safetensors")


def metrics(run_dir: Path) -> list[dict]:
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines() if x.strip()]
    return [{k: v for k, v in r.items() if not k.startswith(TIMING)} for r in rows]


@pytest.fixture(scope="module")
def policy(tmp_path_factory) -> Path:
    model, tok = build_tiny_policy(seed=0, hidden=32, layers=2, heads=2, intermediate=64)
    path = tmp_path_factory.mktemp("policy") / "p"
    save_model(model, tok, path)
    return path


@pytest.fixture(scope="module")
def uninterrupted(policy, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("full") / "run"
    run(policy, out)
    return out


def assert_same_run(a: Path, b: Path) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    differ = [k for k in wa if not torch.equal(wa[k], wb[k])]
    assert not differ, f"{len(differ)} tensors differ, e.g. {differ[:3]}"
    assert metrics(a) == metrics(b)


@pytest.mark.parametrize("where", ["first", "later"])
def test_kill_9_then_resume_equals_the_uninterrupted_run(policy, uninterrupted, tmp_path, where):
    """Killed in iteration 1 (before the first checkpoint: the resumed run starts over) or at a
    random later one (2-4, printed on failure): the result must not depend on where."""
    k = 1 if where == "first" else random.Random().randint(2, 4)
    out = tmp_path / "run"
    r = subprocess.run([sys.executable, str(SCRIPT), str(policy), str(out), "--kill-at", str(k)],
                       capture_output=True, text=True, timeout=300, env={"OMP_NUM_THREADS": "1"})
    assert r.returncode == -9, f"kill at {k}: {r.returncode} {r.stderr[-2000:]}"
    assert not (out / "policy").exists()
    done = sorted(p.name for p in (out / "checkpoints").glob("iter-*"))
    assert done == [f"iter-{i:06d}" for i in range(2, k + 1, 2)][-2:], (k, done)
    run(policy, out, "--resume")
    assert_same_run(uninterrupted, out)
    assert [r["iteration"] for r in metrics(out)] == list(range(5)), f"kill at {k}"
    assert (out / "config.resume-1.yaml").exists()


def test_sigterm_finishes_the_iteration_checkpoints_and_resumes_exactly(policy, uninterrupted, tmp_path):
    out = tmp_path / "run"
    r = run(policy, out, "--term-at", 2, expect=143)
    assert "stopped by signal 15 after iteration 2" in r.stderr
    assert (out / "checkpoints" / "latest").read_text().strip() == "iter-000003"
    run(policy, out, "--resume")
    assert_same_run(uninterrupted, out)


def test_non_finite_reward_stops_with_one_line_and_keeps_the_checkpoint(policy, tmp_path):
    out = tmp_path / "run"
    r = run(policy, out, "--inf-at", 3, expect=3)
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert lines == ["iteration 3: PRM score is inf; a scorer returns None for an answer it cannot "
                     "score (the last checkpoint is intact)"], r.stderr
    assert (out / "checkpoints" / "latest").read_text().strip() == "iter-000002"
    assert len(metrics(out)) == 3


def test_rerun_into_a_used_folder_refuses_and_a_locked_folder_is_refused(policy, uninterrupted, tmp_path):
    from prmrl.runs import RunFolderError, RunInUseError, RunLock

    r = run(policy, uninterrupted, expect=1)
    assert "holds a run already" in r.stderr and "run.resume=true" in r.stderr
    with RunLock(tmp_path / "x"):
        with pytest.raises(RunInUseError, match="a run is writing into this folder"):
            RunLock(tmp_path / "x").acquire()
    assert RunFolderError


def test_run_files_get_the_modes_of_the_umask(uninterrupted):
    """Files written whole under a temporary (owner-only) name end with the umask's modes, as
    files a plain open writes do (the runs run under umask 027)."""
    paths = [uninterrupted / "config.yaml", uninterrupted / "metrics.jsonl",
             *(uninterrupted / "checkpoints").rglob("*"), *(uninterrupted / "policy").rglob("*")]
    assert len(paths) > 6
    for p in paths:
        want = 0o750 if p.is_dir() else 0o640
        assert p.stat().st_mode & 0o777 == want, f"{p}: {oct(p.stat().st_mode & 0o777)}"
