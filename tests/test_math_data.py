"""Loading GSM8K, MATH and MATH500 from the shared JSONL copies; malformed rows and counts."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import pytest

from prmrl.tasks.math_data import (
    TASKS,
    DataFormatError,
    Problem,
    TaskSpec,
    gsm8k_final_answer,
    load_problems,
)

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
pytestmark = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="no ../shared/data")

# (task, split) -> (loaded, skipped): what every row of the shared copies becomes.
EXPECTED = {
    ("gsm8k", "train"): (7473, 0),
    ("gsm8k", "test"): (1319, 0),
    ("math", "train"): (7498, 2),  # two rows with an empty answer
    ("math", "test"): (5000, 0),
    ("math500", "test"): (500, 0),
}


@pytest.mark.parametrize("task, split", list(EXPECTED))
def test_every_row_loads_or_is_skipped_with_a_count(task, split):
    problems, report = load_problems(task, split)
    loaded, skipped = EXPECTED[(task, split)]
    assert (report.loaded, report.num_skipped) == (loaded, skipped)
    assert report.rows == loaded + skipped and len(problems) == loaded
    assert Path(report.source).resolve() == (SHARED_DATA / TASKS[task].files[split]).resolve()
    assert len({p.id for p in problems}) == loaded
    for p in problems:
        assert isinstance(p, Problem) and p.question.strip() and p.answer
        assert p.id.startswith(f"{task}:{split}:")
    if task == "math" and split == "train":
        assert report.skipped == {"empty answer": 2}
        assert "Level ?" in {p.meta["level"] for p in problems}  # kept as is, not a failure


def test_gsm8k_answers_are_integers_without_commas():
    problems = [p for s in ("train", "test") for p in load_problems("gsm8k", s)[0]]
    assert all(p.answer.lstrip("-").isdigit() for p in problems)
    files = [SHARED_DATA / f"gsm8k/{s}.jsonl" for s in ("train", "test")]
    raw = [json.loads(line)["answer"] for f in files for line in open(f)]
    assert sum("," in a.rsplit("####", 1)[1] for a in raw) == 93  # the README's count, now gone
    assert problems[0].answer == "72" and problems[0].solution is None


def test_gsm8k_final_answer():
    assert gsm8k_final_answer("a\nb <<2*3=6>>6\n#### 1,234") == "1234"
    assert gsm8k_final_answer("#### -5 ") == "-5"


def test_math500_has_solutions_and_math_does_not():
    m500 = load_problems("math500", "test")[0]
    assert all(p.solution and "\\boxed" in p.solution for p in m500)
    assert m500[0].answer == "\\left( 3, \\frac{\\pi}{2} \\right)"
    assert m500[0].meta == {"subject": "Precalculus", "level": 2}
    assert all(p.solution is None for p in load_problems("math", "test", limit=50)[0])


def test_limit_and_explicit_path(tmp_path):
    problems, report = load_problems("gsm8k", "test", limit=10)
    assert len(problems) == report.loaded == 10
    src = SHARED_DATA / "gsm8k" / "test.jsonl"
    by_file, _ = load_problems("gsm8k", "test", path=src, limit=3)
    by_root, _ = load_problems("gsm8k", "test", path=SHARED_DATA, limit=3)
    assert by_file == by_root == problems[:3]
    with pytest.raises(FileNotFoundError):
        load_problems("gsm8k", "test", path=tmp_path / "nope.jsonl")


def test_found_from_other_working_directories(tmp_path, monkeypatch):
    monkeypatch.delenv("PRMRL_DATA_DIR", raising=False)
    monkeypatch.chdir(tmp_path)  # ../shared/data is not here: found relative to the repository
    _, report = load_problems("math500", "test", limit=1)
    assert Path(report.source).resolve() == (SHARED_DATA / "math500/test.jsonl").resolve()
    monkeypatch.chdir(Path(__file__).resolve().parents[1])  # the repository root
    _, report = load_problems("math500", "test", limit=1)
    assert Path(report.source).resolve() == (SHARED_DATA / "math500/test.jsonl").resolve()


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


GOOD = json.dumps({"question": "1+1?", "answer": "1+1=2\n#### 2"})


@pytest.mark.parametrize(
    "line, field, reason",
    [
        ('{"question": "1+1?", "answer": ', "<json>", "bad JSON"),
        ('{"answer": "#### 2"}', "question", "missing"),
        ('{"question": "1+1?"}', "answer", "missing"),
        ('{"question": 7, "answer": "#### 2"}', "question", "expected a string, got int"),
        ('{"question": "1+1?", "answer": "2"}', "answer", "no '####'"),
        ('{"question": "  ", "answer": "#### 2"}', "question", "empty"),
        ("[1, 2]", "<row>", "expected a JSON object"),
    ],
)
def test_malformed_row_names_file_line_and_field(tmp_path, line, field, reason):
    f = _write(tmp_path / "bad.jsonl", [GOOD, "", GOOD, line, GOOD])
    with pytest.raises(DataFormatError) as err:
        load_problems("gsm8k", "train", path=f)
    msg = str(err.value)
    assert f"{f}:4:" in msg and repr(field) in msg and reason in msg

    problems, report = load_problems("gsm8k", "train", path=f, skip_bad=True)
    assert len(problems) == report.loaded == 3
    assert report.rows == 4 and report.blank_lines == 1 and report.num_skipped == 1
    (why,) = report.skipped
    assert why.startswith(f"{field}: ") and reason in why
    assert report.examples == [f"line 4: {why}"]
    assert "3 loaded, 1 skipped" in str(report)


def test_empty_answer_is_skipped_even_without_skip_bad(tmp_path):
    rows = [
        {"problem": "p1", "answer": "5", "unique_id": "a"},
        {"problem": "p2", "answer": " ", "unique_id": "b"},
    ]
    f = _write(tmp_path / "m.jsonl", [json.dumps(r) for r in rows])
    problems, report = load_problems("math", "test", path=f)
    assert [p.id for p in problems] == ["math:test:a"] and report.skipped == {"empty answer": 1}


def test_registry_and_errors():
    assert sorted(TASKS) == ["gsm8k", "math", "math500"]
    for spec in TASKS.values():
        assert spec.step_delimiter == "\n\n" and spec.version
        assert spec.format_question("What is {x}?") == "What is {x}?"
    with pytest.raises(ValueError, match="allowed: \\['gsm8k', 'math', 'math500'\\]"):
        load_problems("mathh", "test")
    with pytest.raises(ValueError, match="no split 'train'"):
        load_problems("math500", "train")
    bad = dataclasses.replace(TASKS["math"], answer_extractor="magic")
    with pytest.raises(ValueError, match="answer_extractor"):
        load_problems(bad, "test")


def test_spec_variant_with_custom_template(tmp_path):
    spec = dataclasses.replace(TASKS["gsm8k"], prompt_template="Q: {question}\nA:", step_delimiter="\n")
    problems, _ = load_problems(spec, "test", limit=1)
    assert spec.format_question(problems[0].question).startswith("Q: Janet")


def test_without_a_local_copy_the_hub_needs_datasets(tmp_path, monkeypatch):
    monkeypatch.setenv("PRMRL_DATA_DIR", str(tmp_path))
    spec = TaskSpec(
        name="nowhere", version="1", files={"test": "nowhere/test.jsonl"}, question_field="q",
        answer_field="a", answer_extractor="as_is", hf_name="someone/nowhere",
    )
    monkeypatch.setitem(sys.modules, "datasets", None)  # as if not installed (it is not)
    with pytest.raises(ImportError, match="needs the `datasets` package"):
        load_problems(spec, "test")
    with pytest.raises(FileNotFoundError, match="no Hugging Face name"):
        load_problems(dataclasses.replace(spec, hf_name=None), "test")
