"""Real math problems (GSM8K, MATH, MATH500) as ``Problem`` records, from local JSONL or the hub.

Each dataset is a small, versioned :class:`TaskSpec`: where its files are, which field holds the
question, how the gold answer is extracted, the user-prompt template and the step delimiter of
policy outputs. ``TASKS`` maps a name to its spec (a plain dict; ``dataclasses.replace`` makes
a variant). :func:`load_problems` reads one split and returns the problems with a
:class:`LoadReport` that says how many rows were loaded and how many were skipped, and why.

Local copies live in ``../shared/data/`` relative to the project root (see that folder's README);
the loader looks there relative to the working directory and to the repository, or reads the
file given as ``path=``. Without a local file it tries the Hugging Face ``datasets`` package,
imported only then (it is not a dependency).

Row policy: a malformed row (bad JSON, a missing or non-string field, a GSM8K answer without
``####``, bytes that are not UTF-8, a line longer than ``MAX_ROW_BYTES``) is an error that names
the file, line and field; ``skip_bad=True`` skips it and counts the reason instead. An over-long
line is never read whole: it is measured and skipped in bounded chunks. A row whose gold answer is empty (two MATH train rows) is always skipped and
counted: there is nothing to grade against.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Environment variable that overrides where the local data copies are looked up.
DATA_DIR_ENV = "PRMRL_DATA_DIR"

# Longest JSONL line read (bytes, without its newline). The longest row of the shared copies is
# under 5 KB; a line past this is an error (a 30 MB line once took 12 GB to parse).
MAX_ROW_BYTES = 1 << 20


@dataclass(frozen=True)
class Problem:
    """One math problem: the question and the gold final answer (what success is checked against)."""

    id: str  # "<task>:<split>:<row id>"; unique within a split
    question: str
    answer: str  # gold final answer, e.g. "72" (GSM8K) or "\\frac{1}{2}" (MATH)
    solution: str | None = None  # reference solution where the file has one (MATH500 only)
    meta: dict[str, Any] = field(default_factory=dict, compare=False)  # e.g. subject, level


class DataFormatError(ValueError):
    """A row that cannot be turned into a Problem; the message names file, line and field."""


class _BadRow(Exception):
    """Internal: raised by field access and extractors; carries (field, reason)."""

    def __init__(self, field_name: str, reason: str):
        super().__init__(field_name, reason)
        self.field_name = field_name
        self.reason = reason


# ---------------------------------------------------------------------------------------------
# Gold-answer extractors: raw answer field -> gold answer string ("" means "no answer": skipped).
# Selected by name from a TaskSpec through this plain dict.

def gsm8k_final_answer(raw: str) -> str:
    """The final answer after ``####`` with thousands commas removed.

    >>> gsm8k_final_answer("48/2 = <<48/2=24>>24 clips.\\n#### 1,072")
    '1072'
    """
    if "####" not in raw:
        raise _BadRow("answer", "no '####' final-answer marker")
    final = raw.rsplit("####", 1)[1].strip()
    return final.replace(",", "")


def answer_as_is(raw: str) -> str:
    """The answer field itself, stripped (MATH and MATH500 store the final answer separately)."""
    return raw.strip()


ANSWER_EXTRACTORS: dict[str, Callable[[str], str]] = {
    "gsm8k_hash": gsm8k_final_answer,
    "as_is": answer_as_is,
}


@dataclass(frozen=True)
class TaskSpec:
    """Where one dataset lives and how to read it. Change a field with ``dataclasses.replace``."""

    name: str
    version: str  # bump when anything below changes what problems come out
    files: dict[str, str]  # split -> path relative to the data root, e.g. "gsm8k/train.jsonl"
    question_field: str
    answer_field: str
    answer_extractor: str  # a key of ANSWER_EXTRACTORS
    solution_field: str | None = None
    id_field: str | None = None  # None: the row's line number is its id
    meta_fields: tuple[str, ...] = ()
    # User message; {question} is replaced. The system prompt belongs to prmrl.prompts.
    prompt_template: str = "{question}"
    # How policy outputs are split into steps (Qwen2.5-Math writes one step per paragraph).
    step_delimiter: str = "\n\n"
    hf_name: str | None = None  # Hugging Face `datasets` name, used when no local file is found
    hf_config: str | None = None

    def format_question(self, question: str) -> str:
        return self.prompt_template.replace("{question}", question)


TASKS: dict[str, TaskSpec] = {
    "gsm8k": TaskSpec(
        name="gsm8k",
        version="1",
        files={"train": "gsm8k/train.jsonl", "test": "gsm8k/test.jsonl"},
        question_field="question",
        answer_field="answer",
        answer_extractor="gsm8k_hash",
        hf_name="openai/gsm8k",
        hf_config="main",
    ),
    "math": TaskSpec(
        name="math",
        version="1",
        files={"train": "math/train.jsonl", "test": "math/test.jsonl"},
        question_field="problem",
        answer_field="answer",
        answer_extractor="as_is",
        # unique_id is unique within a file, but every train row's starts with "test/" (a quirk
        # of the copy): the split comes from the file, never from this id.
        id_field="unique_id",
        meta_fields=("subject", "level"),
        # No hub dataset with exactly these fields (answer, no solution) could be verified
        # offline; point path= at a JSONL copy or replace() this with a hub name.
        hf_name=None,
    ),
    "math500": TaskSpec(
        name="math500",
        version="1",
        files={"test": "math500/test.jsonl"},
        question_field="problem",
        answer_field="answer",
        answer_extractor="as_is",
        solution_field="solution",
        id_field="unique_id",
        meta_fields=("subject", "level"),
        hf_name="HuggingFaceH4/MATH-500",
    ),
}


@dataclass
class LoadReport:
    """What one load did: rows seen, problems loaded, rows skipped by reason."""

    task: str
    version: str
    split: str
    source: str  # file path, or "hf:<name>" for the hub
    rows: int = 0  # non-blank rows read (loaded + skipped, before any limit cut the read short)
    loaded: int = 0
    skipped: Counter = field(default_factory=Counter)  # reason -> count
    blank_lines: int = 0
    examples: list[str] = field(default_factory=list)  # first few "line N: field: reason"

    @property
    def num_skipped(self) -> int:
        return sum(self.skipped.values())

    def __str__(self) -> str:
        why = ", ".join(f"{k}: {v}" for k, v in sorted(self.skipped.items())) or "none"
        return (
            f"{self.task} v{self.version} [{self.split}] from {self.source}: "
            f"{self.loaded} loaded, {self.num_skipped} skipped ({why})"
        )


_MAX_EXAMPLES = 10


def get_spec(name_or_spec: str | TaskSpec) -> TaskSpec:
    if isinstance(name_or_spec, TaskSpec):
        return name_or_spec
    try:
        return TASKS[name_or_spec]
    except KeyError:
        raise ValueError(
            f"unknown math task {name_or_spec!r}; allowed: {sorted(TASKS)}"
        ) from None


def data_roots() -> list[Path]:
    """Folders searched for the local copies, in order (``$PRMRL_DATA_DIR`` first if set)."""
    roots = []
    if os.environ.get(DATA_DIR_ENV):
        roots.append(Path(os.environ[DATA_DIR_ENV]))
    roots.append(Path.cwd() / ".." / "shared" / "data")
    # src/prmrl/tasks/math_data.py -> the repository root is three folders up from tasks/.
    repo_root = Path(__file__).resolve().parents[3]
    roots.append(repo_root / ".." / "shared" / "data")
    return roots


def resolve_path(spec: TaskSpec, split: str, path: str | os.PathLike | None = None) -> Path | None:
    """The local file for ``split``: ``path`` itself (a file, or a data root folder), else the
    first data root that holds ``spec.files[split]``; None when there is no local copy."""
    if split not in spec.files and path is None:
        raise ValueError(
            f"task {spec.name!r} has no split {split!r}; allowed: {sorted(spec.files)}"
        )
    if path is not None:
        p = Path(path)
        if p.is_dir():
            if split not in spec.files:
                raise ValueError(f"task {spec.name!r} has no split {split!r}; allowed: {sorted(spec.files)}")
            p = p / spec.files[split]
        if not p.is_file():
            raise FileNotFoundError(f"{spec.name} [{split}]: no such file {p}")
        return p
    for root in data_roots():
        p = root / spec.files[split]
        if p.is_file():
            return p.resolve()
    return None


def load_problems(
    name_or_spec: str | TaskSpec,
    split: str,
    path: str | os.PathLike | None = None,
    skip_bad: bool = False,
    limit: int | None = None,
) -> tuple[list[Problem], LoadReport]:
    """Load one split of a math task as Problems, with a report of what was loaded or skipped.

    ``path``: a JSONL file (or a data root folder) to read instead of searching the default
    locations. ``skip_bad``: skip malformed rows and count them instead of raising
    :class:`DataFormatError`. ``limit``: stop after this many problems.
    """
    spec = get_spec(name_or_spec)
    if spec.answer_extractor not in ANSWER_EXTRACTORS:
        raise ValueError(
            f"task {spec.name!r}: unknown answer_extractor {spec.answer_extractor!r}; "
            f"allowed: {sorted(ANSWER_EXTRACTORS)}"
        )
    file = resolve_path(spec, split, path)
    if file is not None:
        report = LoadReport(spec.name, spec.version, split, str(file))
        rows = _jsonl_rows(file, report)
    else:
        report = LoadReport(spec.name, spec.version, split, f"hf:{spec.hf_name}")
        rows = _hub_rows(spec, split)
    problems = _to_problems(spec, split, rows, report, skip_bad, limit)
    return problems, report


class LineError(ValueError):
    """A line that is not text of at most the size limit (see :func:`read_lines`)."""


def read_lines(path: str | os.PathLike, max_bytes: int) -> Iterator[tuple[int, str | LineError]]:
    """(1-based line number, the line decoded from UTF-8 without its line end, or a LineError
    saying why it is not) for each line of ``path``. Lines end at ``\\n``. A line over
    ``max_bytes`` bytes is never held in memory: it is skipped in chunks and its size reported."""
    with open(path, "rb") as f:
        lineno = 0
        while True:
            raw = f.readline(max_bytes + 1)
            if not raw:
                return
            lineno += 1
            ended = raw.endswith(b"\n")
            if not ended and len(raw) > max_bytes:
                size = len(raw)
                while not ended:
                    chunk = f.readline(1 << 16)
                    if not chunk:
                        break
                    ended = chunk.endswith(b"\n")
                    size += len(chunk) - ended
                yield lineno, LineError(f"line of {size} bytes is over the limit of {max_bytes} bytes")
                continue
            raw = raw.rstrip(b"\r\n") if ended else raw
            try:
                yield lineno, raw.decode("utf-8")
            except UnicodeDecodeError as e:
                yield lineno, LineError(f"not UTF-8 (byte 0x{raw[e.start]:02x} at byte {e.start + 1} of the line)")


def _jsonl_rows(file: Path, report: LoadReport) -> Iterator[tuple[int, Any]]:
    """(line number, parsed JSON, the JSONDecodeError or the LineError) for each non-blank line."""
    for lineno, line in read_lines(file, MAX_ROW_BYTES):
        if isinstance(line, LineError):
            yield lineno, line
            continue
        if not line.strip():
            report.blank_lines += 1
            continue
        try:
            yield lineno, json.loads(line)
        except json.JSONDecodeError as e:
            yield lineno, e


def _hub_rows(spec: TaskSpec, split: str) -> Iterator[tuple[int, Any]]:
    searched = ", ".join(str(r / spec.files.get(split, "?")) for r in data_roots())
    if spec.hf_name is None:
        raise FileNotFoundError(
            f"{spec.name} [{split}]: no local file (looked in {searched}) and the task has no "
            f"Hugging Face name; pass path= to a JSONL copy"
        )
    try:
        import datasets  # optional: only needed when there is no local copy
    except ImportError as e:
        raise ImportError(
            f"{spec.name} [{split}]: no local file (looked in {searched}); loading "
            f"{spec.hf_name!r} from the Hugging Face hub needs the `datasets` package "
            f"(pip install datasets), or pass path= to a JSONL copy"
        ) from e
    ds = datasets.load_dataset(spec.hf_name, spec.hf_config, split=split)
    for i, row in enumerate(ds, start=1):
        yield i, dict(row)


def _to_problems(
    spec: TaskSpec,
    split: str,
    rows: Iterable[tuple[int, Any]],
    report: LoadReport,
    skip_bad: bool,
    limit: int | None,
) -> list[Problem]:
    extract = ANSWER_EXTRACTORS[spec.answer_extractor]
    problems: list[Problem] = []
    for lineno, row in rows:
        if limit is not None and len(problems) >= limit:
            break
        report.rows += 1
        try:
            problem = _to_problem(spec, split, lineno, row, extract)
        except _BadRow as bad:
            reason = f"{bad.field_name}: {bad.reason}"
            if not skip_bad:
                raise DataFormatError(
                    f"{report.source}:{lineno}: field {bad.field_name!r}: {bad.reason}"
                ) from None
            report.skipped[reason] += 1
            if len(report.examples) < _MAX_EXAMPLES:
                report.examples.append(f"line {lineno}: {reason}")
            continue
        if problem is None:  # empty gold answer: nothing to grade against
            report.skipped["empty answer"] += 1
            if len(report.examples) < _MAX_EXAMPLES:
                report.examples.append(f"line {lineno}: empty answer")
            continue
        problems.append(problem)
        report.loaded += 1
    return problems


def _to_problem(
    spec: TaskSpec, split: str, lineno: int, row: Any, extract: Callable[[str], str]
) -> Problem | None:
    if isinstance(row, LineError):
        raise _BadRow("<line>", str(row))
    if isinstance(row, json.JSONDecodeError):
        raise _BadRow("<json>", f"bad JSON ({row.msg} at column {row.colno})")
    if not isinstance(row, dict):
        raise _BadRow("<row>", f"expected a JSON object, got {type(row).__name__}")
    question = _string_field(row, spec.question_field)
    if not question.strip():
        raise _BadRow(spec.question_field, "empty")
    answer = extract(_string_field(row, spec.answer_field))
    if not answer:
        return None
    solution = _string_field(row, spec.solution_field) if spec.solution_field else None
    raw_id = str(lineno) if spec.id_field is None else _string_field(row, spec.id_field)
    meta = {k: row[k] for k in spec.meta_fields if k in row}
    return Problem(
        id=f"{spec.name}:{split}:{raw_id}",
        question=question,
        answer=answer,
        solution=solution,
        meta=meta,
    )


def _string_field(row: dict, name: str) -> str:
    if name not in row:
        raise _BadRow(name, "missing")
    value = row[name]
    if not isinstance(value, str):
        raise _BadRow(name, f"expected a string, got {type(value).__name__}")
    return value
