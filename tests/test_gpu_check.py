"""The GPU check script runs its five steps end to end (tiny, on CPU): the script a GPU session
runs is not left untested until then."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

pytestmark = [pytest.mark.slow, pytest.mark.needs_shared(
    "tokenizers/qwen2.5-math-instruct/tokenizer.json",
    "tokenizers/configs/Qwen2.5-Math-1.5B-Instruct/config.json", "data/math500/test.jsonl")]


def test_gpu_check_runs_tiny_on_cpu(tmp_path):
    out = tmp_path / "check.json"
    r = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_check.py"), "--tiny", "--device", "cpu",
                        "--json", str(out)], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert r.returncode == 0, r.stderr[-3000:]
    figures = json.loads(out.read_text())
    assert figures["kl_iteration0_max_abs"] == 0.0            # the reference's numeric path
    assert figures["padded_vs_unpadded_max_abs"] < 1e-2
    assert figures["peak_gb"]["planned"] > 0 and figures["sampler_tokens_per_s"] > 0
    assert set(figures["ppo_iteration_seconds"]) == {"generate", "score", "shape", "update"}
