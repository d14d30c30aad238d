"""One record format for reward-model labels, JSONL I/O, and readers of PRM800K and Math-Shepherd.

A PRM example is a question, its steps as plain texts (no delimiter, no tag) and one float label
per step. Labels stay floats end to end: Math-Shepherd-style soft labels (the fraction of
completions that reach the right answer) become 0 when cast to int (docs/method.md, "Pitfalls").

Every reader checks each line and raises :class:`DataError` naming the file, the 1-based line and
the field; with ``skip_bad=True`` it skips the line instead and says why in the report. A line that
is not UTF-8, or longer than ``MAX_ROW_BYTES``, is such a line (field ``<line>``); an over-long line
is never read whole.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterable

from prmrl.tasks.math_data import LineError, read_lines

# Longest line read (bytes, without its newline): generous for a PRM800K trajectory with all its
# rated completions (the shared samples' longest is 17 KB); past it a line is an error.
MAX_ROW_BYTES = 4 << 20

class DataError(ValueError):
    """A malformed line in a data file: the message names the file, the line and the field."""

    def __init__(self, path: str | os.PathLike, line: int, field_name: str, why: str):
        self.path, self.line, self.field = str(path), line, field_name
        super().__init__(f"{path}:{line}: field '{field_name}': {why}")


@dataclass
class StepLabelRecord:
    """One solution with a float label per step (1.0 = the prefix up to this step is right)."""

    question: str
    steps: list[str]
    labels: list[float]
    source: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.steps) != len(self.labels):
            raise ValueError(f"{len(self.steps)} steps but {len(self.labels)} labels")
        self.labels = [float(x) for x in self.labels]


@dataclass
class OutcomeRecord:
    """One whole response with a float label (ORM training: 1.0 = final answer correct)."""

    question: str
    response: str
    label: float


@dataclass
class ReadReport:
    n_read: int = 0          # records returned
    n_skipped: int = 0       # malformed lines skipped (only with skip_bad=True)
    n_empty: int = 0         # well-formed lines with no labelled step (PRM800K), not returned
    reasons: list[str] = field(default_factory=list)  # one "file:line: field ...: why" per skip


class _Bad(Exception):
    """Internal: a field check failed; turned into DataError with file and line by _read_lines."""

    def __init__(self, field_name: str, why: str):
        super().__init__(why)
        self.field, self.why = field_name, why


def _get(obj: Any, key: str, typ: type | tuple[type, ...], where: str, nullable: bool = False) -> Any:
    if not isinstance(obj, dict) or key not in obj:
        raise _Bad(f"{where}{key}", "missing")
    val = obj[key]
    if val is None and nullable:
        return None
    # bool is an int in Python; a rating of true is as malformed as a rating of "1".
    if not isinstance(val, typ) or (isinstance(val, bool) and bool not in _as_tuple(typ)):
        raise _Bad(f"{where}{key}", f"expected {_names(typ)}, got {type(val).__name__}")
    return val


def _as_tuple(typ: type | tuple[type, ...]) -> tuple[type, ...]:
    return typ if isinstance(typ, tuple) else (typ,)


def _names(typ: type | tuple[type, ...]) -> str:
    return " or ".join(t.__name__ for t in _as_tuple(typ))


def _read_lines(path: str | os.PathLike, parse: Callable[[dict], StepLabelRecord | None],
                skip_bad: bool) -> tuple[list[StepLabelRecord], ReadReport]:
    records: list[StepLabelRecord] = []
    report = ReadReport()
    for lineno, line in read_lines(path, MAX_ROW_BYTES):
        if not isinstance(line, LineError) and not line.strip():
            continue
        try:
            try:
                if isinstance(line, LineError):
                    raise _Bad("<line>", str(line))
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise _Bad("<json>", f"invalid JSON ({e.msg} at column {e.colno})") from None
            if not isinstance(obj, dict):
                raise _Bad("<json>", f"expected an object, got {type(obj).__name__}")
            rec = parse(obj)
        except _Bad as bad:
            err = DataError(path, lineno, bad.field, bad.why)
            if not skip_bad:
                raise err from None
            report.n_skipped += 1
            report.reasons.append(str(err))
            continue
        if rec is None:
            report.n_empty += 1
            continue
        rec.meta.setdefault("line", lineno)
        records.append(rec)
    report.n_read = len(records)
    return records, report


# --- prmrl's own JSONL -----------------------------------------------------------------------


def write_records(path: str | os.PathLike, records: Iterable[StepLabelRecord]) -> None:
    from prmrl.runs import atomic_write_text

    atomic_write_text(path, "".join(json.dumps(asdict(r), ensure_ascii=False) + "\n" for r in records))


def _parse_own(obj: dict) -> StepLabelRecord:
    question = _get(obj, "question", str, "")
    steps = _get(obj, "steps", list, "")
    labels = _get(obj, "labels", list, "")
    for i, s in enumerate(steps):
        if not isinstance(s, str):
            raise _Bad(f"steps[{i}]", f"expected str, got {type(s).__name__}")
    for i, x in enumerate(labels):
        if isinstance(x, bool) or not isinstance(x, (int, float)):
            raise _Bad(f"labels[{i}]", f"expected a number, got {type(x).__name__}")
    if len(steps) != len(labels):
        raise _Bad("labels", f"{len(labels)} labels for {len(steps)} steps")
    source = obj.get("source", "")
    meta = obj.get("meta", {})
    if not isinstance(source, str):
        raise _Bad("source", f"expected str, got {type(source).__name__}")
    if not isinstance(meta, dict):
        raise _Bad("meta", f"expected dict, got {type(meta).__name__}")
    return StepLabelRecord(question, steps, [float(x) for x in labels], source, meta)


def read_records(path: str | os.PathLike, skip_bad: bool = False
                 ) -> tuple[list[StepLabelRecord], ReadReport]:
    """Read a file written by :func:`write_records`."""
    return _read_lines(path, _parse_own, skip_bad)


# --- PRM800K ---------------------------------------------------------------------------------


def _parse_prm800k(obj: dict, neutral_label: float, stop_at_first_error: bool
                   ) -> StepLabelRecord | None:
    question = _get(_get(obj, "question", dict, ""), "problem", str, "question.")
    label = _get(obj, "label", dict, "")
    raw_steps = _get(label, "steps", list, "label.")
    rating_to_label = {-1: 0.0, 0: float(neutral_label), 1: 1.0}
    steps: list[str] = []
    labels: list[float] = []
    for i, step in enumerate(raw_steps):
        where = f"label.steps[{i}]."
        comps = _get(step, "completions", list, where, nullable=True)
        chosen = _get(step, "chosen_completion", int, where, nullable=True)
        if not comps:  # the trajectory ran out of model completions: nothing left to label
            break
        # chosen_completion is null when the labeller rejected every completion (and usually
        # wrote a human_completion that the trajectory continues from) or ended the task on
        # this step. The first completion is then a rated step from the same prefix, but later
        # steps do not follow it, so it is the record's last step.
        last = chosen is None
        idx = 0 if chosen is None else chosen
        if not 0 <= idx < len(comps):
            raise _Bad(f"{where}chosen_completion", f"index {idx} out of range for {len(comps)} completions")
        comp = comps[idx]
        text = _get(comp, "text", str, f"{where}completions[{idx}].")
        rating = _get(comp, "rating", int, f"{where}completions[{idx}].", nullable=True)
        if rating is None:  # unrated (e.g. the labeller gave up here): stop before it
            break
        if rating not in rating_to_label:
            raise _Bad(f"{where}completions[{idx}].rating", f"expected -1, 0 or 1, got {rating}")
        steps.append(text)
        labels.append(rating_to_label[rating])
        if last or (stop_at_first_error and rating == -1):
            break
    if not steps:
        return None
    meta = {"finish_reason": label.get("finish_reason"),
            "ground_truth_answer": obj["question"].get("ground_truth_answer")}
    return StepLabelRecord(question, steps, labels, "prm800k", meta)


def read_prm800k(path: str | os.PathLike, neutral_label: float = 1.0, stop_at_first_error: bool = True,
                 skip_bad: bool = False) -> tuple[list[StepLabelRecord], ReadReport]:
    """Raw PRM800K label records (phase 1 and 2 ``*.jsonl``) as one trajectory per line.

    Steps follow ``chosen_completion``; where it is null the first completion is taken as the
    last step (see ``_parse_prm800k``). Ratings map -1 -> 0.0, +1 -> 1.0, 0 -> ``neutral_label``.
    The default 1.0 reads a neutral step as "not wrong", the question a Math-Shepherd-style PRM
    answers (can this prefix still reach the answer?); pass 0.0 for the strict reading.
    With ``stop_at_first_error`` a -1 step ends the record, as the phase-2 labelling does: the
    labels of steps after a mistake say nothing about the solution being right.
    A line with no rated step is not returned and is counted in ``report.n_empty``.
    """
    return _read_lines(path, lambda o: _parse_prm800k(o, neutral_label, stop_at_first_error), skip_bad)


# --- Math-Shepherd ---------------------------------------------------------------------------

MATH_SHEPHERD_TAG = "ки"
_FIRST_STEP = re.compile(r"Step 1\s*:")


def _parse_math_shepherd(obj: dict) -> StepLabelRecord:
    text = _get(obj, "input", str, "")
    labelled = _get(obj, "label", str, "")
    tag = MATH_SHEPHERD_TAG
    n_tags = text.count(tag)
    if n_tags == 0:
        raise _Bad("input", f"no step tag '{tag}'")
    if not text.rstrip().endswith(tag):
        raise _Bad("input", f"does not end with the step tag '{tag}'")
    # `label` is `input` with each tag replaced by one sign: read the sign at each tag's place,
    # then check the rest of the text is the same, so a count mismatch cannot go unnoticed.
    parts = text.split(tag)
    signs: list[str] = []
    pos = 0
    for part in parts[:-1]:
        pos += len(part)
        sign = labelled[pos:pos + 1]
        if sign not in ("+", "-"):
            raise _Bad("label", f"expected '+' or '-' at tag {len(signs) + 1} of {n_tags}, got {sign!r}")
        signs.append(sign)
        pos += 1
    if "".join(p + s for p, s in zip(parts, signs + [""])) != labelled:
        raise _Bad("label", f"is not 'input' with its {n_tags} tags replaced by '+'/'-'")
    m = _FIRST_STEP.search(parts[0])
    if m is None:
        raise _Bad("input", "no 'Step 1:' before the first tag")
    question = parts[0][:m.start()].strip()
    # Step texts keep their "Step k:" prefix: the Math-Shepherd PRM was trained on it, and the
    # math_shepherd format then rebuilds the original input exactly.
    steps = [parts[0][m.start():].strip()] + [p.strip() for p in parts[1:-1]]
    if any(not s for s in steps):
        raise _Bad("input", "empty step between two tags")
    meta = {"task": obj["task"]} if isinstance(obj.get("task"), str) else {}
    return StepLabelRecord(question, steps, [1.0 if s == "+" else 0.0 for s in signs],
                           "math_shepherd", meta)


def read_math_shepherd(path: str | os.PathLike, skip_bad: bool = False
                       ) -> tuple[list[StepLabelRecord], ReadReport]:
    """Math-Shepherd lines: ``input`` ends each step with the tag ``ки``, ``label`` is the same
    text with each tag replaced by ``+`` (label 1.0) or ``-`` (0.0)."""
    return _read_lines(path, _parse_math_shepherd, skip_bad)
