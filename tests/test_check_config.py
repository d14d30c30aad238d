"""`prmrl check-config`: every shipped config passes (hub names count as warnings offline, dataset
files are found under ../shared/data), and broken ones fail with a message that names the problem.

Models are tiny Qwen2 checkpoints saved with the real Qwen2.5-Math tokenizer; nothing is trained.
Tests that need the sibling ../shared folder (datasets, tokenizer, model configs) skip, naming the
path, in a clone without it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from prmrl.check import check_config, main_check
from prmrl.models.factory import save_model

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
TOKENIZER = SHARED / "tokenizers" / "qwen2.5-math-instruct"
CONFIGS = SHARED / "tokenizers" / "configs"        # config.json only: no weights, no tokenizer
DATA = SHARED / "data"
GSM8K = (DATA / "gsm8k" / "train.jsonl", DATA / "gsm8k" / "test.jsonl")
MATH = (DATA / "math" / "train.jsonl", DATA / "math500" / "test.jsonl")   # math500's files
SHIPPED = sorted(p for p in (REPO / "configs").rglob("*.yaml") if p.parent.name != "verl")  # verl's own


def need(*paths: Path) -> None:
    """Skip the test unless every path exists (they lie under the sibling ../shared folder)."""
    for path in paths:
        if not path.exists():
            pytest.skip(f"needs {path} (the shared data folder is not in this clone)")


@pytest.fixture(autouse=True)
def _repo_cwd(monkeypatch):
    monkeypatch.chdir(REPO)   # configs name paths relative to the repository, as `prmrl` runs


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Folders of a tiny policy (causal LM), native PRM (1-label head) and qwen_prm-style PRM
    (2-label head), each with the real tokenizer."""
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM, Qwen2ForTokenClassification

    need(TOKENIZER / "tokenizer.json")
    tok = AutoTokenizer.from_pretrained(str(TOKENIZER))
    root = tmp_path_factory.mktemp("check")
    torch.manual_seed(0)

    def config(**extra):
        return Qwen2Config(vocab_size=len(tok) + 1, hidden_size=8, intermediate_size=16, num_hidden_layers=1,
                           num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=2048, **extra)

    save_model(Qwen2ForCausalLM(config()), tok, root / "policy")
    save_model(Qwen2ForTokenClassification(config(num_labels=1)), tok, root / "prm_native")
    save_model(Qwen2ForTokenClassification(config(num_labels=2)), tok, root / "prm_qwen")
    return root


def overrides_for(path: Path, request) -> list[str]:
    """A native PRM is one you trained: shipped configs name a placeholder folder for it (a tiny
    one stands in). Skips unless the files the config needs are here."""
    data = yaml.safe_load(path.read_text()) or {}
    task = (data.get("task") or {}).get("name", "arith")
    if task != "arith":
        need(*(GSM8K if task == "gsm8k" else MATH))
    reward = data.get("reward") or {}
    if reward.get("prm_format") == "native" and reward.get("prm"):
        return [f"reward.prm={request.getfixturevalue('tiny') / 'prm_native'}"]
    return []


def test_configs_are_shipped():
    names = {p.relative_to(REPO / "configs").as_posix() for p in SHIPPED}
    assert "demo.yaml" in names
    assert sum(n.startswith("full/") for n in names) >= 5


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.relative_to(REPO / "configs").as_posix())
def test_every_shipped_config_passes(path, request):
    report = check_config(str(path), overrides_for(path, request))
    assert report.ok, "\n".join(report.lines())
    cfg = report.config
    if cfg.task.name != "arith":
        # The dataset files under ../shared/data are found and counted.
        data = [m for level, m in report.findings if level == "ok" and m.startswith("data:")]
        assert any(m.startswith("data: train: 7498 math problems") for m in data), data
        assert any(m.startswith("data: test: 500 math500 problems") for m in data), data
        # A hub name is a warning offline (or ok, where the local cache has it), never an error.
        assert any(m.startswith(f"model.policy: not reachable offline: {cfg.model.policy}")
                   or m.startswith(f"model.policy: {cfg.model.policy} (local Hugging Face cache)")
                   for _, m in report.findings), report.lines()
    if "full" in path.parts:
        assert cfg.task.step_delimiter == "\n\n" and cfg.model.dtype == "bfloat16"
        assert cfg.ppo.max_new_tokens >= 1024
        head = path.read_text().split("\n", 25)[:25]
        assert any("ESTIMATE" in line for line in head), "memory estimate missing from the header"


def test_hub_names_are_warnings_offline():
    need(*MATH)
    path = REPO / "configs" / "full" / "qwen2.5-math-1.5b-qwen-prm-clip-delta.yaml"
    report = check_config(str(path), ["model.policy=nobody-has/this-model-0"])
    assert report.ok
    assert any(w.startswith("model.policy: not reachable offline: nobody-has/this-model-0")
               for w in report.warnings), report.lines()


def test_native_config_needs_its_prm():
    need(*MATH)
    path = REPO / "configs" / "full" / "qwen2.5-math-1.5b-native-prm-clip-delta.yaml"
    report = check_config(str(path))
    assert len(report.errors) == 1 and report.errors[0].startswith("reward.prm: no model at"), report.lines()


def test_local_models_pass_with_counts(tiny):
    need(*GSM8K)
    report = check_config(None, [
        "task.name=gsm8k", "task.limit_train=16", "task.limit_test=8", 'task.step_delimiter="\\n\\n"',
        f"model.policy={tiny / 'policy'}", f"reward.prm={tiny / 'prm_native'}", "reward.shaping=clip_delta"])
    assert report.ok, "\n".join(report.lines())
    oks = [m for level, m in report.findings if level == "ok"]
    assert any(m.startswith("data: train: 16 gsm8k problems") and "limit_train=16" in m for m in oks)
    assert any(m.startswith("data: test: 8 gsm8k problems") for m in oks)
    assert any(m.startswith("model.policy: local folder") and "Qwen2ForCausalLM" in m for m in oks)
    assert any(m.startswith("reward.prm: format native encodes a 2-step answer") for m in oks)
    assert not report.warnings, report.warnings


def test_qwen_prm_format_on_a_two_label_head(tiny):
    need(*MATH)
    report = check_config(None, ["task.name=math500", 'task.step_delimiter="\\n\\n"',
                                 f"model.policy={tiny / 'policy'}", f"reward.prm={tiny / 'prm_qwen'}",
                                 "reward.prm_format=qwen_prm", "reward.shaping=clip"])
    assert report.ok, "\n".join(report.lines())
    # The Qwen2.5 tokenizer has no single <extra_0> token: the format adds one (said, not hidden).
    assert any("lacks the '<extra_0>' token" in w for w in report.warnings)
    assert any(m.startswith("reward.prm: format qwen_prm encodes") for _, m in report.findings)


# ---- broken configs ---------------------------------------------------------------------------

def errors_of(*overrides, path=None) -> list[str]:
    report = check_config(path, list(overrides))
    assert not report.ok
    return report.errors


def test_unknown_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("task:\n  name: gsm8k\nppo:\n  iterationz: 3\n")
    (err,) = errors_of(path=str(bad))
    assert "unknown key 'ppo.iterationz'" in err and "iterations" in err


def test_missing_dataset_file(tmp_path, tiny):
    need(GSM8K[1])
    missing = tmp_path / "nope.jsonl"
    errs = errors_of("task.name=gsm8k", f"task.train_path={missing}", f"model.policy={tiny / 'policy'}")
    assert errs == [f"data: task.train_path: gsm8k [train]: no such file {missing}"]


def test_malformed_dataset_rows(tmp_path, tiny):
    need(GSM8K[0])
    rows = tmp_path / "rows.jsonl"
    rows.write_text('{"question": "1+1?", "answer": "#### 2"}\n{"question": "2+2?", "answer": "4"}\n')
    (err,) = errors_of("task.name=gsm8k", f"task.test_path={rows}", f"model.policy={tiny / 'policy'}")
    assert err.startswith(f"data: {rows}: 1 malformed row(s), first line 2: answer: no '####'")


def test_local_model_without_config_json(tmp_path):
    empty = tmp_path / "empty_model"
    empty.mkdir()
    (err,) = errors_of("task.name=gsm8k", f"model.policy={empty}")
    assert err.startswith(f"model.policy: no model at '{empty}': expected a folder with config.json")


def test_config_only_folder_lacks_weights_and_tokenizer():
    folder = CONFIGS / "Qwen2.5-Math-1.5B-Instruct"
    need(folder)
    errs = errors_of("task.name=gsm8k", f"model.policy={folder}")
    assert [e.split(":")[0] for e in errs] == ["model.policy", "model.policy"], errs
    assert errs[0].startswith(f"model.policy: no weights in {folder}")
    assert errs[1].startswith(f"model.policy: no tokenizer in {folder}")


@pytest.mark.parametrize("prm, fmt, message", [
    ("prm_native", "math_shepherd", "format math_shepherd needs a causal LM"),
    ("prm_native", "qwen_prm", "format qwen_prm needs a 2-label token head"),
    ("policy", "native", "is a causal LM, not a trained reward model"),
    ("prm_qwen", "native", "needs a 1-label token head"),
])
def test_wrong_prm_format(tiny, prm, fmt, message):
    errs = errors_of("task.name=gsm8k", f"model.policy={tiny / 'policy'}", f"reward.prm={tiny / prm}",
                     f"reward.prm_format={fmt}", "reward.shaping=delta")
    assert len(errs) == 1 and errs[0].startswith("reward.prm: ") and message in errs[0], errs


def test_math_shepherd_format_on_a_causal_lm_runs_the_tag_check(tiny):
    # A causal LM passes the architecture check; the format then checks its own tokens.
    report = check_config(None, ["task.name=gsm8k", f"model.policy={tiny / 'policy'}",
                                 f"reward.prm={tiny / 'policy'}", "reward.prm_format=math_shepherd",
                                 "reward.shaping=clip_delta"])
    assert report.ok, report.lines()
    assert any(m.startswith("reward.prm: format math_shepherd encodes") for _, m in report.findings)


def test_remote_code_prm_head_is_a_warning():
    need(CONFIGS / "Qwen2.5-Math-PRM-7B")
    report = check_config(None, ["task.name=gsm8k", f"reward.prm={CONFIGS / 'Qwen2.5-Math-PRM-7B'}",
                                 "reward.prm_format=qwen_prm", "model.policy=Qwen/Qwen2.5-Math-1.5B-Instruct"])
    assert any("remote-code head ['Qwen2ForProcessRewardModel']" in w and "trust_remote_code" in w
               for w in report.warnings), report.lines()


def test_main_check_exit_status(tmp_path, capsys):
    good = REPO / "configs" / "demo.yaml"
    assert main_check([str(good)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("ok: fields:") and out[-1].endswith("0 error(s), 0 warning(s)")
    bad = tmp_path / "bad.yaml"
    bad.write_text("reward:\n  shaping: clip\n")   # shaping without a PRM
    assert main_check([str(bad)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("error: ") and "reward.shaping" in out[0]
