"""The same PPO training under `accelerate launch` with two CPU processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from prmrl.models.factory import build_tiny_policy, save_model

pytestmark = pytest.mark.slow


def test_two_process_ppo_runs_two_iterations(tmp_path):
    model, tok = build_tiny_policy(seed=0, hidden=32, layers=2, heads=2, intermediate=64)
    save_model(model, tok, tmp_path / "policy")
    launcher = Path(sys.executable).with_name("accelerate")
    # On a CPU-only machine `--multi_gpu` starts the processes with torchrun and gloo; `--cpu`
    # would make accelerate use its single-process launcher.
    cmd = [str(launcher), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no",
           "-m", "prmrl.cli", "train", f"model.policy={tmp_path / 'policy'}",
           "ppo.iterations=2", "ppo.prompts_per_iteration=4", "ppo.samples_per_prompt=2",
           "ppo.max_new_tokens=16", "ppo.minibatch_size=4", "ppo.micro_batch_size=2",  # no_sync path
           "eval.every=2", "eval.n_problems_during=7", "eval.max_new_tokens=16", "run.progress=false",
           f"run.out_dir={tmp_path / 'run'}", "run.threads=1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [x["iteration"] for x in lines] == [0, 1]     # one log, written by the main process
    assert (tmp_path / "run" / "policy" / "model.safetensors").exists()
    # both processes generated: the logged batch metrics are means over 2 x 8 responses
    assert all(x["rollout/mean_response_tokens"] > 0 for x in lines)
    assert all(x["charts/num_processes"] == 2 for x in lines)
    # the evaluation split over both processes (4 + 3 problems) and merged
    assert "eval/greedy_accuracy" not in lines[0] and lines[1]["eval/n_problems"] == 7
    assert r.stdout.count("policy:") == 1        # only the main process reports
    # the final checkpoint holds each process's own RNG states and data order
    ckpt = tmp_path / "run" / "checkpoints" / "iter-000002"
    assert {p.name for p in ckpt.iterdir()} == {"state.pt", "rank0.pt", "rank1.pt", "trainer_state.json"}


def _launch(*args: str, cwd) -> None:
    launcher = Path(sys.executable).with_name("accelerate")
    cmd = [str(launcher), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no",
           str(Path(__file__).with_name("parallel_run.py")), *map(str, args)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=cwd,
                       env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]


def _rows(run: Path) -> list[dict]:
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if not k.startswith(("time", "charts/"))} for r in rows]


def test_fsdp2_and_ddp_train_alike_and_fsdp2_saves_and_resumes(tmp_path):
    """2 processes: FSDP2 (actor, critic, reference sharded) and DDP give the same losses and
    weights after 2 iterations (float tolerance); the FSDP2 policy is one HF folder that loads;
    an FSDP2 run resumed from its (sharded) checkpoint after iteration 1 ends as the
    uninterrupted one."""
    from safetensors.torch import load_file

    from prmrl.models.factory import load_policy

    model, tok = build_tiny_policy(seed=0, hidden=32, layers=2, heads=2, intermediate=64)
    save_model(model, tok, tmp_path / "policy")
    for parallel in ("ddp", "fsdp2"):
        _launch(tmp_path / "policy", tmp_path / parallel, parallel, cwd=tmp_path)
    ddp, fsdp = _rows(tmp_path / "ddp"), _rows(tmp_path / "fsdp2")
    assert [r["iteration"] for r in fsdp] == [0, 1]
    for a, b in zip(ddp, fsdp):
        for k, v in a.items():
            if isinstance(v, float):
                # a clip fraction counts tokens past a threshold: float noise of 1e-7 can move
                # one token across it (one token of ~120 is 0.0084)
                tol = 0.02 if k.endswith("clipfrac") else 1e-6
                assert b[k] == pytest.approx(v, rel=1e-4, abs=tol), (a["iteration"], k)
    wd, wf = (load_file(tmp_path / p / "policy" / "model.safetensors") for p in ("ddp", "fsdp2"))
    base = load_file(tmp_path / "policy" / "model.safetensors")
    assert max(float((wd[k] - base[k]).abs().max()) for k in wd) > 1e-3      # it trained
    assert all(torch.allclose(wd[k], wf[k], atol=1e-6) for k in wd)
    assert type(load_policy(tmp_path / "fsdp2" / "policy")).__name__ == "LlamaForCausalLM"
    # resume: one iteration, then continue to two from its checkpoint
    _launch(tmp_path / "policy", tmp_path / "r", "fsdp2", 1, cwd=tmp_path)
    _launch(tmp_path / "policy", tmp_path / "r", "fsdp2", 2, "resume", cwd=tmp_path)
    ckpt = tmp_path / "r" / "checkpoints" / "iter-000002"
    assert (ckpt / "sharded" / ".metadata").exists() and len(list((ckpt / "sharded").glob("*.distcp"))) == 2
    wr = load_file(tmp_path / "r" / "policy" / "model.safetensors")
    assert all(torch.equal(wf[k], wr[k]) for k in wf)
    assert _rows(tmp_path / "r") == fsdp
