"""Strict config: every numeric field has a range checked at load, name-valued fields are checked
against their registries, string overrides decode escapes, and data files with over-long or
non-UTF-8 lines fail naming the file and line (in the loaders and in `check-config`)."""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from pathlib import Path

import pytest

import prmrl.rm.records as records
import prmrl.tasks.math_data as math_data
from prmrl import config as C
from prmrl.check import check_config
from prmrl.config import Config, ConfigError, Range, load_config

REPO = Path(__file__).resolve().parents[1]

# ---- every numeric field has a range --------------------------------------------------------


def _numeric(tp) -> bool:
    """int / float, optionally ``| None`` or inside ``list[...]``."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return any(_numeric(a) for a in args if a is not type(None))
    if origin is list:
        return _numeric(args[0])
    return tp in (int, float)


def numeric_fields() -> list[str]:
    out = []
    for section in dataclasses.fields(Config):
        cls = typing.get_type_hints(Config)[section.name]
        for name, tp in typing.get_type_hints(cls).items():
            if _numeric(tp):
                out.append(f"{section.name}.{name}")
    return out


def test_every_numeric_field_has_a_range():
    fields = numeric_fields()
    assert len(fields) > 60        # the enumeration itself works
    missing = [k for k in fields if k not in C.RANGES]
    assert not missing, f"numeric fields without an entry in prmrl.config.RANGES: {missing}"
    stale = [k for k in C.RANGES if k not in fields]
    assert not stale, f"RANGES entries that name no numeric field: {stale}"
    assert {"eval.pass_k", "rm.bon_n", "task.limit_train", "task.limit_test", "run.save_every"} <= set(fields)


def test_choices_name_real_fields_and_registries():
    from prmrl.rewards.shaping import SHAPING_METHODS
    from prmrl.rl.core import KL_ESTIMATORS
    from prmrl.rm.formats import PRM_FORMATS
    from prmrl.tasks import TASK_NAMES

    assert C.CHOICES["reward.shaping"] is SHAPING_METHODS
    assert C.CHOICES["ppo.kl_estimator"] is KL_ESTIMATORS
    assert C.CHOICES["reward.prm_format"] is PRM_FORMATS
    assert C.CHOICES["task.name"] is TASK_NAMES
    assert C.CHOICES["ablation.arms"] is C.ALL_ARMS
    for key in C.CHOICES:
        C._get(Config(), key)           # every key names a field


def test_defaults_sit_inside_their_ranges():
    cfg = Config()
    for key, allowed in C.RANGES.items():
        value = C._get(cfg, key)
        for v in value if isinstance(value, list) else [value]:
            assert v is None or v in allowed, (key, v, str(allowed))


@pytest.mark.parametrize("rng, inside, outside, text", [
    (Range(0, lo_open=True), [1e-9, 5.0], [0, -1.0, math.inf, math.nan], "(0, inf)"),
    (Range(0, 1), [0, 0.5, 1], [-0.01, 1.01, math.nan], "[0, 1]"),
    (Range(0, 1, lo_open=True, hi_open=True), [0.2], [0, 1], "(0, 1)"),
    (Range(-math.inf), [-1e9, 0, 1e9], [math.inf, -math.inf, math.nan], "(-inf, inf)"),
    (Range(2), [2, 100], [1, 0, -3], "[2, inf)"),
])
def test_range_bounds_and_text(rng, inside, outside, text):
    assert str(rng) == text
    assert all(v in rng for v in inside)
    assert not any(v in rng for v in outside)


# ---- invalid values fail at load with one line naming the key --------------------------------

@pytest.mark.parametrize("override, message", [
    ("ppo.max_grad_norm=-1", "ppo.max_grad_norm: -1.0 is out of range; allowed (0, inf)"),
    ("ppo.max_grad_norm=0", "ppo.max_grad_norm: 0.0 is out of range; allowed (0, inf)"),
    ("ppo.clip_eps=-0.1", "ppo.clip_eps: -0.1 is out of range; allowed (0, 1)"),
    ("ppo.kl_beta=-1", "ppo.kl_beta: -1.0 is out of range; allowed [0, inf)"),
    ("ppo.actor_lr=-1", "ppo.actor_lr: -1.0 is out of range; allowed (0, inf)"),
    ("reward.eta=7", "reward.eta: 7.0 is out of range; allowed [0, 1]"),
    ("eval.n_problems=-3", "eval.n_problems: -3 is out of range; allowed [1, inf)"),
    ("eval.temperature=0", "eval.temperature: 0.0 is out of range; allowed (0, inf)"),
    ("task.max_value=0", "task.max_value: 0 is out of range; allowed [2, inf)"),
    ("task.max_value=1", "task.max_value: 1 is out of range; allowed [2, inf)"),
    ("task.max_factor=1", "task.max_factor: 1 is out of range; allowed [2, inf)"),
    ("task.max_ops=27", "task.max_ops: 27 is out of range; allowed [1, 26]"),
    ("task.limit_train=0", "task.limit_train: 0 is out of range; allowed [1, inf)"),
    ("run.save_every=-1", "run.save_every: -1 is out of range; allowed [0, inf)"),
    ("run.seed=-1", "run.seed: -1 is out of range; allowed [0, 2147483647]"),
    ("eval.pass_k=[1,0]", "eval.pass_k[1]: 0 is out of range; allowed [1, inf)"),
    ("rm.bon_n=[1,-2]", "rm.bon_n[1]: -2 is out of range; allowed [1, inf)"),
    ("ppo.top_p=.nan", "ppo.top_p: nan is out of range; allowed (0, 1]"),
    ("reward.unscorable_reward=.inf", "reward.unscorable_reward: inf is out of range; allowed (-inf, inf)"),
    ("ppo.kl_estimator=k4", "ppo.kl_estimator: 'k4' is not allowed; choose one of ['k1', 'k2', 'k3', 'abs']"),
    ("reward.prm_format=shepherd", "reward.prm_format: 'shepherd' is not allowed; choose one of"),
    ("task.name=gsm9k", "task.name: 'gsm9k' is not allowed; choose one of"),
    ("ablation.arms=[SR,SR+XYZ]", "ablation.arms[1]: 'SR+XYZ' is not allowed; choose one of"),
    ("ablation.arms=[]", "ablation.arms: empty"),
    ("task.min_ops=4", "task.min_ops: 4 is above task.max_ops=3"),
    ("task.max_start=30", "task.max_start: 30 is above task.max_value=20"),
    ("task.name=jsonl", "task.train_path: task 'jsonl' needs a JSONL file"),
])
def test_invalid_value_is_one_line_naming_the_key(override, message):
    with pytest.raises(ConfigError) as e:
        load_config(None, [override])
    text = str(e.value)
    assert text.startswith(message), text
    assert "\n" not in text
    assert override.split("=")[0] in text or override == "task.name=jsonl"


def test_reward_shaping_names_come_from_the_registry():
    from prmrl.rewards.shaping import SHAPING_METHODS

    for name in SHAPING_METHODS:
        assert load_config(None, [f"reward.shaping={name}", "reward.prm=x"]).reward.shaping == name
    with pytest.raises(ConfigError, match=r"^reward\.shaping: 'clipp' is not allowed; choose one of \['none'"):
        load_config(None, ["reward.shaping=clipp", "reward.prm=x"])


def test_range_errors_in_a_file_name_the_file(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("ppo:\n  max_grad_norm: -1\n")
    with pytest.raises(ConfigError) as e:
        load_config(f)
    assert str(e.value) == f"{f}: ppo.max_grad_norm: -1.0 is out of range; allowed (0, inf)"


def test_boundaries_that_are_allowed():
    cfg = load_config(None, ["ppo.kl_beta=0", "reward.eta=0", "reward.eta=1", "eval.every=0",
                             "run.save_every=0", "rm.extra_layers=0", "rm.freeze_backbone=false",
                             "task.max_value=2", "task.max_start=2", "task.limit_train=1", "ppo.top_p=1",
                             "task.name=jsonl", "task.train_path=x.jsonl"])
    assert cfg.ppo.kl_beta == 0 and cfg.reward.eta == 1.0 and cfg.task.limit_train == 1


def test_arith_generator_runs_at_the_smallest_allowed_values():
    from prmrl.tasks import arith, arith_config

    cfg = load_config(None, ["task.max_value=2", "task.max_start=2", "task.max_addend=1",
                             "task.max_factor=2", "task.min_ops=1", "task.max_ops=26",
                             "task.n_train=3", "task.n_test=2"])
    train, test = arith.generate_splits(arith_config(cfg.task))
    assert len(train) == 3 and len(test) == 2
    assert all(0 <= v <= 2 for p in train + test for v in p.values())


def test_shipped_configs_load():
    paths = sorted(p for p in (REPO / "configs").rglob("*.yaml") if p.parent.name != "verl")  # verl's own
    assert paths
    for path in paths:
        load_config(path)


# ---- escapes in command-line strings ----------------------------------------------------------

@pytest.mark.parametrize("override, value", [
    (r"task.step_delimiter=\n\n", "\n\n"),
    (r"task.step_delimiter=\t", "\t"),
    (r'task.step_delimiter="\n\n"', "\n\n"),          # YAML double quotes decode their own
    (r"task.step_delimiter=\\n", "\\n"),             # an escaped backslash stays one backslash
    (r"task.step_delimiter=a\qb", "a\\qb"),          # other escapes are kept as written
])
def test_step_delimiter_escapes(override, value):
    assert load_config(None, [override]).task.step_delimiter == value


def test_escapes_in_text_fields_but_not_in_paths():
    cfg = load_config(None, [r"task.system_prompt=Reason step by step.\nBox the answer.",
                             r"run.out_dir=runs\tx", r"model.policy=C:\new\models",
                             r"reward.prm=D:\tmp\prm", r"task.train_path=C:\new.jsonl"])
    assert cfg.task.system_prompt == "Reason step by step.\nBox the answer."
    assert cfg.run.out_dir == "runs\\tx"
    assert cfg.model.policy == "C:\\new\\models"
    assert cfg.reward.prm == "D:\\tmp\\prm" and cfg.task.train_path == "C:\\new.jsonl"


@pytest.mark.parametrize("overrides, message", [
    (["model.hidden=130"], "model.hidden: 130 is not a multiple of model.heads=4"),
    (["ppo.advantage=grpo", "ppo.samples_per_prompt=1"], "needs a group of at least 2"),
    (["ppo.advantage=rloo", "ppo.samples_per_prompt=1"], "ppo.samples_per_prompt: 1"),
    (["ppo.advantage=grpo", "ppo.kl_mode=reward"], "ppo.kl_mode: 'reward' with ppo.advantage='grpo'"),
])
def test_fields_that_must_agree(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, overrides)


def test_the_kl_goes_in_the_loss_for_critic_free_estimators_unless_asked_otherwise():
    from prmrl.config import kl_place

    assert kl_place(load_config(None, []).ppo) == "reward"                       # gae
    assert kl_place(load_config(None, ["ppo.advantage=grpo"]).ppo) == "loss"
    assert kl_place(load_config(None, ["ppo.advantage=rloo", "ppo.kl_mode=reward"]).ppo) == "reward"
    # Dr. GRPO divides by no std: the KL in the rewards is then an ordinary reward
    cfg = load_config(None, ["ppo.advantage=grpo", "ppo.kl_mode=reward", "ppo.scale_rewards=false"])
    assert kl_place(cfg.ppo) == "reward"


def test_a_config_that_is_not_utf8_names_the_file(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_bytes(b"run:\n  seed: \xff\n")
    with pytest.raises(ConfigError, match=r"c.yaml: line 2 is not UTF-8 text \(byte 13\)"):
        load_config(f)


def test_escapes_are_not_decoded_in_yaml_files(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text('task:\n  step_delimiter: "\\n\\n"\nrun:\n  out_dir: \'a\\tb\'\n')
    cfg = load_config(f)
    assert cfg.task.step_delimiter == "\n\n" and cfg.run.out_dir == "a\\tb"


def test_parse_override_decodes_escapes():
    from prmrl.config import parse_override

    assert parse_override(r"task.step_delimiter=\n\n") == (["task", "step_delimiter"], "\n\n")
    assert parse_override(r"ppo.iterations=3") == (["ppo", "iterations"], 3)


# ---- data files: size limit and UTF-8 ---------------------------------------------------------

def _gsm8k_row(question: str = "1+1?", answer: str = "#### 2") -> str:
    return json.dumps({"question": question, "answer": answer})


def test_read_lines_is_bounded(tmp_path):
    f = tmp_path / "x.jsonl"
    f.write_bytes(b"ab\n" + b"x" * 100 + b"\n" + b"c" * 10 + b"\ncd")
    lines = list(math_data.read_lines(f, max_bytes=10))
    assert [n for n, _ in lines] == [1, 2, 3, 4]
    assert lines[0][1] == "ab" and lines[2][1] == "c" * 10 and lines[3][1] == "cd"
    assert isinstance(lines[1][1], math_data.LineError)
    assert str(lines[1][1]) == "line of 100 bytes is over the limit of 10 bytes"


def test_problems_row_over_the_limit(tmp_path, monkeypatch):
    monkeypatch.setattr(math_data, "MAX_ROW_BYTES", 200)
    f = tmp_path / "rows.jsonl"
    f.write_text(_gsm8k_row() + "\n" + _gsm8k_row("x" * 500) + "\n" + _gsm8k_row() + "\n")
    with pytest.raises(math_data.DataFormatError) as e:
        math_data.load_problems("gsm8k", "test", path=f)
    assert str(e.value).startswith(f"{f}:2: ") and "over the limit of 200 bytes" in str(e.value)
    problems, report = math_data.load_problems("gsm8k", "test", path=f, skip_bad=True)
    assert len(problems) == 2 and report.num_skipped == 1
    assert report.examples[0].startswith("line 2: <line>: line of 5")


def test_problems_non_utf8_line(tmp_path):
    f = tmp_path / "rows.jsonl"
    f.write_bytes(_gsm8k_row().encode() + b"\n" + b'{"question": "caf\xe9?", "answer": "#### 1"}\n')
    with pytest.raises(math_data.DataFormatError) as e:
        math_data.load_problems("gsm8k", "test", path=f)
    assert str(e.value).startswith(f"{f}:2: ") and "not UTF-8 (byte 0xe9" in str(e.value)


def test_problems_crlf_and_blank_lines_still_load(tmp_path):
    f = tmp_path / "rows.jsonl"
    f.write_bytes((_gsm8k_row() + "\r\n\r\n" + _gsm8k_row("2+2?", "#### 4")).encode())
    problems, report = math_data.load_problems("gsm8k", "test", path=f)
    assert [p.answer for p in problems] == ["2", "4"] and report.blank_lines == 1


def _record(question: str = "q") -> str:
    return json.dumps({"question": question, "steps": ["a", "b"], "labels": [1.0, 0.0]})


def test_records_row_over_the_limit(tmp_path, monkeypatch):
    monkeypatch.setattr(records, "MAX_ROW_BYTES", 100)
    f = tmp_path / "labels.jsonl"
    f.write_text(_record() + "\n" + _record("y" * 300) + "\n")
    with pytest.raises(records.DataError) as e:
        records.read_records(f)
    assert e.value.line == 2 and str(e.value).startswith(f"{f}:2: field '<line>': ")
    assert "over the limit of 100 bytes" in str(e.value)
    recs, report = records.read_records(f, skip_bad=True)
    assert len(recs) == 1 and report.n_skipped == 1


def test_records_non_utf8_line(tmp_path):
    f = tmp_path / "labels.jsonl"
    f.write_bytes(b"\xff\xfe" + _record().encode() + b"\n")
    with pytest.raises(records.DataError) as e:
        records.read_math_shepherd(f)
    assert str(e.value).startswith(f"{f}:1: field '<line>': not UTF-8 (byte 0xff at byte 1")


def test_check_config_reports_an_over_long_row(tmp_path, monkeypatch):
    monkeypatch.setattr(math_data, "MAX_ROW_BYTES", 200)
    train = tmp_path / "train.jsonl"
    long_row = _gsm8k_row("z" * 1000)
    train.write_text(_gsm8k_row() + "\n" + _gsm8k_row() + "\n" + long_row + "\n")
    report = check_config(None, ["task.name=jsonl", f"task.train_path={train}",
                                 "model.policy=nobody-has/this-model-0"])
    data = [e for e in report.errors if e.startswith("data:")]
    assert data == [f"data: {train}: 1 malformed row(s), first line 3: <line>: line of {len(long_row)} bytes is "
                    f"over the limit of 200 bytes; training stops at the first one"], report.lines()


def test_check_config_reports_a_non_utf8_row(tmp_path):
    test = tmp_path / "test.jsonl"
    test.write_bytes(_gsm8k_row().encode() + b"\n" + b'{"question": "\xc3(", "answer": "#### 1"}\n')
    train = tmp_path / "train.jsonl"
    train.write_text(_gsm8k_row() + "\n")
    report = check_config(None, ["task.name=gsm8k", f"task.train_path={train}", f"task.test_path={test}",
                                 "model.policy=nobody-has/this-model-0"])
    data = [e for e in report.errors if e.startswith("data:")]
    assert len(data) == 1 and data[0].startswith(f"data: {test}: 1 malformed row(s), first line 2: "
                                                 f"<line>: not UTF-8"), report.lines()


def test_check_config_jsonl_task_loads(tmp_path):
    train = tmp_path / "train.jsonl"
    train.write_text(json.dumps({"question": "1+1?", "answer": "2"}) + "\n")
    report = check_config(None, ["task.name=jsonl", f"task.train_path={train}",
                                 "model.policy=nobody-has/this-model-0"])
    assert report.ok, report.lines()
    assert any(m.startswith(f"data: train: 1 train problems from {train}") for _, m in report.findings)
