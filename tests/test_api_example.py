"""The README's Python API example, run as written (a tiny policy in place of the model name):
a custom PRM callable, a custom splitter and a custom task train for two iterations."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from prmrl.models.factory import build_tiny_policy, save_model

pytestmark = pytest.mark.slow
README = Path(__file__).resolve().parents[1] / "README.md"


def readme_example() -> str:
    text = README.read_text()
    section = text.split("## Python API", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_api_example_trains_two_iterations(tmp_path, monkeypatch, capsys):
    model, tok = build_tiny_policy(seed=0, hidden=32, layers=2, heads=2, intermediate=64)
    save_model(model, tok, tmp_path / "policy")
    rows = [{"problem": f"Start with {a}. (a) {b} more.", "answer": str(a + b)} for a in range(5) for b in range(4)]
    (tmp_path / "problems.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    code = readme_example()
    assert 'POLICY = "Qwen/Qwen2.5-Math-1.5B"' in code
    code = code.replace('"Qwen/Qwen2.5-Math-1.5B"', repr(str(tmp_path / "policy")))
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    torch.manual_seed(0)
    exec(compile(code, "README.md", "exec"), namespace)

    run = tmp_path / "runs" / "api-example"
    metrics = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [m["iteration"] for m in metrics] == [0, 1]
    assert (run / "policy" / "model.safetensors").exists()
    assert (run / "checkpoints" / "latest").read_text().strip() == "iter-000002"
    out = capsys.readouterr().out
    assert out.splitlines()[-1].endswith("runs/api-example/policy")
    # the custom pieces were used: the task's problems, the splitter's spans, the PRM's scores
    trainer = namespace["trainer"]
    b = trainer.generate(["Start with 1. (a) 2 more."], ["3"])
    texts = b.texts[0]
    want = [texts[s:e].strip() for s, e in namespace["my_splitter"](texts)]
    assert b.step_texts[0] == [w for w in want if w] or b.step_texts[0] == want
    trainer.score(b)
    expected = namespace["my_prm"](None, b.step_texts, question=b.questions)
    got = [row[: len(e)] for row, e in zip(b.prm_scores.tolist(), expected)]
    assert all(g == pytest.approx(e) for g, e in zip(got, expected))
    assert trainer.task.train_questions[0] == rows[0]["problem"]
