"""Loading GSM8K, MATH and MATH500: every row of the shared JSONL copies (those tests skip
without ../shared/data), and the same loader on small files the tests write; malformed rows and
counts."""

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

# (task, split) -> (loaded, skipped): what every row of the shared copies becomes.
EXPECTED = {
    ("gsm8k", "train"): (7473, 0),
    ("gsm8k", "test"): (1319, 0),
    ("math", "train"): (7498, 2),  # two rows with an empty answer
    ("math", "test"): (5000, 0),
    ("math500", "test"): (500, 0),
}


def _shared(*files: str):
    """Mark a test that reads these dataset files under ../shared/data."""
    return pytest.mark.needs_shared(*(f"data/{f}" for f in files))


@pytest.mark.parametrize("task, split", [
    pytest.param(t, s, marks=_shared(TASKS[t].files[s])) for t, s in EXPECTED])
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


@_shared("gsm8k/train.jsonl", "gsm8k/test.jsonl")
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


@_shared("math500/test.jsonl", "math/test.jsonl")
def test_math500_has_solutions_and_math_does_not():
    m500 = load_problems("math500", "test")[0]
    assert all(p.solution and "\\boxed" in p.solution for p in m500)
    assert m500[0].answer == "\\left( 3, \\frac{\\pi}{2} \\right)"
    assert m500[0].meta == {"subject": "Precalculus", "level": 2}
    assert all(p.solution is None for p in load_problems("math", "test", limit=50)[0])


# --- the loader on files the tests write (no ../shared needed) -----------------------------------


def _gsm8k_row(i: int) -> dict:
    return {"question": f"Sam has {i} apples and buys {i + 2} more. How many now?",
            "answer": f"{i} + {i + 2} = <<{i}+{i + 2}={2 * i + 2}>>{2 * i + 2}\n#### {2 * i + 2:,}"}


@pytest.fixture
def data_root(tmp_path):
    """A data root laid out like ../shared/data: gsm8k/test.jsonl (12 rows, the last three with a
    thousands comma), math500/test.jsonl and math/test.jsonl (2 rows each)."""
    root = tmp_path / "data"
    rows = [_gsm8k_row(i) for i in (1, 2, 3, 4, 5, 6, 7, 8, 9, 600, 700, 800)]
    _lines(root / "gsm8k" / "test.jsonl", rows)
    m500 = [{"problem": "Write the point $(0,-2)$ in polar coordinates.",
             "answer": "\\left( 2, \\frac{3\\pi}{2} \\right)",
             "solution": "$r = 2$ and $\\theta = \\frac{3\\pi}{2}$: $\\boxed{\\left( 2, \\frac{3\\pi}{2} \\right)}$.",
             "subject": "Precalculus", "level": 2, "unique_id": "test/precalculus/1.json"},
            {"problem": "What is $1+1$?", "answer": "2", "solution": "$1+1=\\boxed{2}$.",
             "subject": "Prealgebra", "level": 1, "unique_id": "test/prealgebra/2.json"}]
    _lines(root / "math500" / "test.jsonl", m500)
    _lines(root / "math" / "test.jsonl", [{k: v for k, v in r.items() if k != "solution"} for r in m500])
    return root


def _lines(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_gsm8k_answers_lose_their_commas(data_root):
    problems, report = load_problems("gsm8k", "test", path=data_root)
    assert report.loaded == 12 and report.num_skipped == 0
    assert [p.answer for p in problems[-3:]] == ["1202", "1402", "1602"]  # "#### 1,202" in the file
    assert all(p.answer.isdigit() and p.solution is None for p in problems)
    assert [p.id for p in problems[:2]] == ["gsm8k:test:1", "gsm8k:test:2"]  # the line number


def test_math500_rows_keep_solution_and_meta(data_root):
    (m, _), _ = load_problems("math500", "test", path=data_root)
    assert m.answer == "\\left( 2, \\frac{3\\pi}{2} \\right)" and "\\boxed" in m.solution
    assert m.meta == {"subject": "Precalculus", "level": 2}
    assert m.id == "math500:test:test/precalculus/1.json"
    problems, _ = load_problems("math", "test", path=data_root)
    assert [p.solution for p in problems] == [None, None]


def test_limit_and_explicit_path(data_root, tmp_path, monkeypatch):
    monkeypatch.setenv("PRMRL_DATA_DIR", str(data_root))  # searched first
    problems, report = load_problems("gsm8k", "test", limit=10)
    assert len(problems) == report.loaded == 10
    src = data_root / "gsm8k" / "test.jsonl"
    assert Path(report.source).resolve() == src.resolve()
    by_file, _ = load_problems("gsm8k", "test", path=src, limit=3)
    by_root, _ = load_problems("gsm8k", "test", path=data_root, limit=3)
    assert by_file == by_root == problems[:3]
    with pytest.raises(FileNotFoundError):
        load_problems("gsm8k", "test", path=tmp_path / "nope.jsonl")


def test_found_in_shared_beside_the_working_directory(data_root, tmp_path, monkeypatch):
    monkeypatch.delenv("PRMRL_DATA_DIR", raising=False)
    work = tmp_path / "work"
    work.mkdir()
    (tmp_path / "shared").mkdir()
    data_root.rename(tmp_path / "shared" / "data")
    monkeypatch.chdir(work)  # ../shared/data from here is the folder just written
    _, report = load_problems("math500", "test", limit=1)
    assert Path(report.source).resolve() == (tmp_path / "shared/data/math500/test.jsonl").resolve()


@_shared("math500/test.jsonl")
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


def test_spec_variant_with_custom_template(data_root):
    spec = dataclasses.replace(TASKS["gsm8k"], prompt_template="Q: {question}\nA:", step_delimiter="\n")
    problems, _ = load_problems(spec, "test", path=data_root, limit=1)
    assert spec.format_question(problems[0].question) == "Q: Sam has 1 apples and buys 3 more. How many now?\nA:"


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
