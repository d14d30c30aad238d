"""Readers of PRM800K and Math-Shepherd on every shared sample record (those tests skip without
../shared/data) and on lines written here, malformed lines, soft labels."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from prmrl.models.tokenizer import build_char_tokenizer
from prmrl.rm.formats import NativeFormat
from prmrl.rm.records import (
    DataError,
    StepLabelRecord,
    read_math_shepherd,
    read_prm800k,
    read_records,
    write_records,
)
from prmrl.rm.train import prm_training_batch

SHARED = Path(__file__).resolve().parents[2] / "shared"
PRM800K = SHARED / "data" / "prm800k" / "samples_prm800k_records.jsonl"
SHEPHERD = SHARED / "data" / "math_shepherd" / "samples_math_shepherd.jsonl"
needs_prm800k = pytest.mark.needs_shared("data/prm800k/samples_prm800k_records.jsonl")
needs_shepherd = pytest.mark.needs_shared("data/math_shepherd/samples_math_shepherd.jsonl")


def _n_lines(path: Path) -> int:
    return sum(1 for line in path.read_text(encoding="utf-8").splitlines() if line.strip())


def _check_wellformed(records: list[StepLabelRecord]) -> None:
    for r in records:
        assert r.question and r.steps
        assert len(r.steps) == len(r.labels)
        assert all(isinstance(s, str) and s for s in r.steps)
        assert all(type(x) is float and 0.0 <= x <= 1.0 for x in r.labels)


# --- PRM800K ---------------------------------------------------------------------------------


@needs_prm800k
def test_prm800k_every_record():
    records, report = read_prm800k(PRM800K)
    assert report.n_skipped == 0 and report.reasons == []
    assert report.n_read + report.n_empty == _n_lines(PRM800K) == 8
    assert report.n_read == len(records) == 8
    _check_wellformed(records)
    assert all(r.source == "prm800k" for r in records)
    assert [r.meta["line"] for r in records] == list(range(1, 9))


@needs_prm800k
def test_prm800k_hand_checked_records():
    records, _ = read_prm800k(PRM800K)
    by_line = {r.meta["line"]: r for r in records}
    # Line 1: step 1 chosen (+1); step 2 has chosen_completion null (the labeller rejected all
    # five completions, all rated -1, and wrote their own): the first completion is the last step.
    r = by_line[1]
    assert r.steps[0].startswith("Let's call the price of a pencil p")
    assert r.steps[1].startswith("The first equation is 3p + e = 124, and ")
    assert r.labels == [1.0, 0.0]
    # Line 4 (phase 2, found_error): six chosen steps, the second rated 0 (neutral), then a
    # null-chosen step whose first completion is the -1 the labeller found.
    r = by_line[4]
    assert r.meta["finish_reason"] == "found_error"
    assert r.labels == [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0]
    strict, _ = read_prm800k(PRM800K, neutral_label=0.0)
    assert strict[3].labels == [1.0, 0.0, 1.0, 1.0, 1.0, 1.0, 0.0]
    # A soft reading of neutral stays a float.
    soft, _ = read_prm800k(PRM800K, neutral_label=0.5)
    assert soft[3].labels[1] == 0.5
    # Line 8: twelve chosen steps, all +1, and the last is the final answer.
    assert by_line[8].labels == [1.0] * 12 and "# Answer" in by_line[8].steps[-1]


def _prm800k_line(steps: list[tuple[int | None, list]], problem: str = "What is 1+1?") -> dict:
    return {"question": {"problem": problem, "ground_truth_answer": "2"},
            "label": {"finish_reason": "solution", "steps": [
                {"completions": [{"text": t, "rating": x, "flagged": False} for t, x in comps],
                 "human_completion": None, "chosen_completion": chosen}
                for chosen, comps in steps]}}


def _write_lines(path: Path, lines: list) -> Path:
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines),
                    encoding="utf-8")
    return path


def test_prm800k_stop_rules(tmp_path):
    line = _prm800k_line([(0, [("a", 1)]), (0, [("b", -1)]), (0, [("c", 1)]),
                          (None, [("d", None), ("e", 1)])])
    path = _write_lines(tmp_path / "p.jsonl", [line])
    (r,), _ = read_prm800k(path)
    assert r.steps == ["a", "b"] and r.labels == [1.0, 0.0]
    (r,), _ = read_prm800k(path, stop_at_first_error=False)
    assert r.steps == ["a", "b", "c"]  # the unrated first completion of the last step ends it
    # No rated step at all: not a record, counted as empty.
    path = _write_lines(tmp_path / "e.jsonl", [_prm800k_line([(None, [("x", None)])])])
    records, report = read_prm800k(path)
    assert records == [] and report.n_empty == 1 and report.n_skipped == 0


def _prm800k_full_line(steps: list[dict], finish_reason: str) -> dict:
    """A line with the fields of a raw PRM800K phase-1/2 record (values written for the tests)."""
    return {"labeler": "t", "timestamp": "2024-01-01T00:00:00", "generation": 2,
            "is_quality_control_question": False, "is_initial_screening_question": False,
            "question": {"problem": "What is $6 \\cdot 7$?", "ground_truth_answer": "42"},
            "label": {"steps": steps, "total_time": 1000, "finish_reason": finish_reason}}


def _step(chosen: int | None, comps: list[tuple[str, int | None]], human: str | None = None) -> dict:
    return {"completions": [{"text": t, "rating": x, "flagged": False} for t, x in comps],
            "human_completion": None if human is None else
            {"text": human, "rating": None, "source": "human", "flagged": False},
            "chosen_completion": chosen}


def test_prm800k_written_records(tmp_path):
    """The cases the shared samples hold, on lines written here: a null chosen_completion (the
    labeller rejected every completion and wrote their own) ends the record on its first
    completion; a neutral rating reads as ``neutral_label``; found_error stops at the -1."""
    rejected = _prm800k_full_line([
        _step(0, [("We need $6 \\cdot 7$.", 1)]),
        _step(None, [("That is 48.", -1), ("That is 43.", -1)], human="That is 42."),
        _step(0, [("# Answer\n\n42", 1)]),
    ], "solution")
    found_error = _prm800k_full_line([
        _step(0, [("Six sevens.", 1)]),
        _step(1, [("Let me think.", 1), ("Maybe add them.", 0)]),
        _step(0, [("6 + 7 = 13.", -1)]),
        _step(0, [("# Answer\n\n13", -1)]),
    ], "found_error")
    path = _write_lines(tmp_path / "p.jsonl", [rejected, found_error])
    records, report = read_prm800k(path)
    assert report.n_read == 2 and report.n_skipped == report.n_empty == 0
    _check_wellformed(records)
    r, e = records
    assert r.steps == ["We need $6 \\cdot 7$.", "That is 48."] and r.labels == [1.0, 0.0]
    assert r.meta == {"finish_reason": "solution", "ground_truth_answer": "42", "line": 1}
    assert e.steps == ["Six sevens.", "Maybe add them.", "6 + 7 = 13."] and e.labels == [1.0, 1.0, 0.0]
    assert e.meta["finish_reason"] == "found_error" and e.source == "prm800k"
    strict, _ = read_prm800k(path, neutral_label=0.0)
    assert strict[1].labels == [1.0, 0.0, 0.0]
    soft, _ = read_prm800k(path, neutral_label=0.5)
    assert soft[1].labels[1] == 0.5 and type(soft[1].labels[1]) is float


@pytest.mark.parametrize("mutate, field", [
    (lambda d: d["question"].pop("problem"), "question.problem"),
    (lambda d: d.pop("label"), "label"),
    (lambda d: d["label"]["steps"][1]["completions"][0].update(rating="1"),
     "label.steps[1].completions[0].rating"),
    (lambda d: d["label"]["steps"][1]["completions"][0].update(rating=5),
     "label.steps[1].completions[0].rating"),
    (lambda d: d["label"]["steps"][0].update(chosen_completion=3), "label.steps[0].chosen_completion"),
])
def test_prm800k_malformed_names_file_line_field(tmp_path, mutate, field):
    good = _prm800k_line([(0, [("a", 1)]), (0, [("b", 1)])])
    bad = json.loads(json.dumps(good))
    mutate(bad)
    path = _write_lines(tmp_path / "bad.jsonl", [good, good, bad])
    with pytest.raises(DataError) as exc:
        read_prm800k(path)
    assert str(path) in str(exc.value) and ":3:" in str(exc.value) and f"'{field}'" in str(exc.value)
    assert (exc.value.line, exc.value.field) == (3, field)
    records, report = read_prm800k(path, skip_bad=True)
    assert len(records) == 2 and report.n_skipped == 1 and ":3:" in report.reasons[0]


# --- Math-Shepherd ---------------------------------------------------------------------------


@needs_shepherd
def test_math_shepherd_every_record():
    records, report = read_math_shepherd(SHEPHERD)
    assert report.n_read == len(records) == _n_lines(SHEPHERD) == 7 and report.n_skipped == 0
    _check_wellformed(records)
    raw = [json.loads(line) for line in SHEPHERD.read_text(encoding="utf-8").splitlines()]
    for r, d in zip(records, raw):
        signed_lines = sum(line.endswith((" +", " -")) for line in d["label"].split("\n"))
        assert len(r.steps) == d["input"].count("ки") == signed_lines
        assert d["input"].startswith(r.question + " Step 1:")
        assert [s.startswith(f"Step {k + 1}:") for k, s in enumerate(r.steps)] == [True] * len(r.steps)
        assert r.meta["task"] == "GSM8K"


@needs_shepherd
def test_math_shepherd_hand_checked():
    records, _ = read_math_shepherd(SHEPHERD)
    r = records[0]
    assert r.question.startswith("Janet pays $40/hour") and r.question.endswith("in a year?")
    assert r.steps[0] == "Step 1: Janet spends 3 hours + 5 hours = <<3+5=8>>8 hours per week on music lessons."
    assert r.labels == [1.0, 1.0, 1.0, 1.0, 0.0]
    assert records[1].labels == [0.0, 0.0, 0.0]
    assert records[4].labels == [1.0, 0.0, 0.0, 0.0, 0.0]


# Math-Shepherd lines written for these tests, in the dataset's layout: the question, then
# "Step k: ..." lines each ending in the tag (input) or in its sign (label).
MS_WRITTEN = [
    ("A box holds 6 pens. How many pens are in 4 boxes?",
     [("Step 1: 4 boxes hold 4 * 6 = <<4*6=24>>24 pens.", "+"), ("Step 2: The answer is: 24", "+")]),
    ("Tom reads 12 pages a day. How many pages does he read in a week?",
     [("Step 1: A week has 5 days.", "-"), ("Step 2: He reads 12 * 5 = <<12*5=60>>60 pages.", "-"),
      ("Step 3: The answer is: 60", "-")]),
    ("A 30 m rope is cut into 5 m pieces. How many pieces are there?",
     [("Step 1: 30 / 5 = <<30/5=6>>6 pieces.", "+"), ("Step 2: Then 6 + 1 = <<6+1=7>>7 cuts.", "-"),
      ("Step 3: The answer is: 7", "-")]),
]


def _ms_line(question: str, steps: list[tuple[str, str]]) -> dict:
    body = "\n".join(f"{s} {{}}" for s, _ in steps)
    return {"input": f"{question} " + body.format(*["ки"] * len(steps)),
            "label": f"{question} " + body.format(*[sign for _, sign in steps]), "task": "GSM8K"}


def test_math_shepherd_written_records(tmp_path):
    path = _write_lines(tmp_path / "ms.jsonl", [_ms_line(q, st) for q, st in MS_WRITTEN])
    records, report = read_math_shepherd(path)
    assert report.n_read == len(records) == 3 and report.n_skipped == 0
    _check_wellformed(records)
    for r, (question, steps) in zip(records, MS_WRITTEN):
        assert r.question == question and r.steps == [s for s, _ in steps]
        assert r.labels == [1.0 if sign == "+" else 0.0 for _, sign in steps]
        assert r.meta["task"] == "GSM8K" and r.source == "math_shepherd"
    assert [r.labels for r in records] == [[1.0, 1.0], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0]]


GOOD_MS = {"input": "Q? Step 1: a ки\nStep 2: b ки", "label": "Q? Step 1: a +\nStep 2: b -", "task": "t"}


@pytest.mark.parametrize("line, field", [
    ('{"input": "Q? Step 1: a ки", "label": ', "<json>"),
    ({"label": "Q? Step 1: a +"}, "input"),
    ({"input": 3, "label": "x"}, "input"),
    ({"input": "Q? Step 1: a ки"}, "label"),
    ({"input": "Q? Step 1: a ки\nStep 2: b ки", "label": "Q? Step 1: a +\nStep 2: b ки"}, "label"),
    ({"input": "Q? Step 1: a ки\nStep 2: b ки", "label": "Q? Step 1: a +\nStep 2: b"}, "label"),
    ({"input": "Q? Step 1: a ки", "label": "Q? Step 1: a + and more"}, "label"),
    ({"input": "Q? no steps here", "label": "Q? no steps here"}, "input"),
])
def test_math_shepherd_malformed_names_file_line_field(tmp_path, line, field):
    path = _write_lines(tmp_path / "ms.jsonl", [GOOD_MS, line, GOOD_MS])
    with pytest.raises(DataError) as exc:
        read_math_shepherd(path)
    msg = str(exc.value)
    assert msg.startswith(f"{path}:2: field '{field}'"), msg
    records, report = read_math_shepherd(path, skip_bad=True)
    assert len(records) == 2 and report.n_read == 2 and report.n_skipped == 1
    assert report.reasons == [msg]


def test_skip_bad_counts_several(tmp_path):
    lines = [GOOD_MS, "not json", {"input": "x"}, GOOD_MS, "[1, 2]", "", GOOD_MS]
    path = _write_lines(tmp_path / "ms.jsonl", lines)
    records, report = read_math_shepherd(path, skip_bad=True)
    assert (report.n_read, report.n_skipped) == (3, 3)
    assert [m.split(":")[1] for m in report.reasons] == ["2", "3", "5"]
    assert [r.meta["line"] for r in records] == [1, 4, 7]


# --- prmrl's own format; soft labels stay floats -------------------------------------------


def test_soft_labels_survive_write_read_and_batch(tmp_path):
    recs = [StepLabelRecord("Q", ["ab", "c"], [1 / 3, 0.75], source="mc", meta={"n": 4}),
            StepLabelRecord("QQ", ["d"], [0.125])]
    path = tmp_path / "r.jsonl"
    write_records(path, recs)
    back, report = read_records(path)
    assert report.n_read == 2
    assert [r.labels for r in back] == [[1 / 3, 0.75], [0.125]]
    assert all(type(x) is float for r in back for x in r.labels)
    assert back[0].source == "mc" and back[0].meta["n"] == 4

    tok = build_char_tokenizer()
    batch = prm_training_batch(tok, NativeFormat(tok), back)
    assert batch["labels"].dtype == torch.float32
    got = batch["labels"][batch["label_mask"]].tolist()  # row-major: row 0's steps, then row 1
    assert got == pytest.approx([1 / 3, 0.75, 0.125], abs=1e-7)


def test_own_format_malformed(tmp_path):
    path = _write_lines(tmp_path / "r.jsonl", [{"question": "q", "steps": ["a"], "labels": ["1"]},
                                               {"question": "q", "steps": ["a", "b"], "labels": [1.0]}])
    with pytest.raises(DataError, match=r":1: field 'labels\[0\]'"):
        read_records(path)
    _, report = read_records(path, skip_bad=True)
    assert report.n_skipped == 2 and "field 'labels'" in report.reasons[1]
