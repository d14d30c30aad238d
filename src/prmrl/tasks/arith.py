"""The embedded task: multi-step arithmetic word problems, generated from a seed.

A problem is a starting number and a chain of labelled operations ("Start with 37. (a) 4 times.
(b) 12 more. (c) 9 less."). Its reference solution has one step a line, each copying its
operation's words before the arithmetic (``(a) 4 times: 37*4=148``), and ends with a
``\\boxed{151}`` line, the same final-answer form real math uses. The SFT corpus adds realistic
imperfection: optional restatement and check lines (so step counts vary), random arithmetic slips
that carry through to a wrong answer, and a few "confused" facts the corpus usually gets wrong the
same way (so even the greedy SFT policy is imperfect and RL has work to do).

The ground-truth step checker gives oracle step labels: a step is right while the chain of
values it continues is still the problem's true chain.
"""

from __future__ import annotations

import random
import re
import zlib
from dataclasses import dataclass, field

from prmrl.answers import extract_boxed
from prmrl.prompts import QUESTION_TEMPLATE

FORMAT_VERSION = 5   # bump when problems, solutions or SFT batching change (cached SFT policies)

OPS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b}
# An operation in words, operand first ("9 more"): right after its label, so a step copies it
# from the question by matching the label alone.
_WORDS = {"more": "+", "added": "+", "less": "-", "fewer": "-", "times": "*"}
_PHRASES = {op: tuple(w for w, o in _WORDS.items() if o == op) for op in OPS}
# A computation line: optional "Check: ", optional label, optional operation in words, arithmetic.
# Groups: label, words' operand, words, a, op, b, result.
_STEP = re.compile(r"^(?:Check: )?(?:\(([a-z])\) )?(?:(\d+) ([a-z]+(?: [a-z]+)*): )?"
                   r"(-?\d+)([+\-*])(\d+)=(-?\d+)$")
_START = re.compile(r"^Start: (-?\d+)$")
_MALFORMED = re.compile(r"[\d=]")   # a line with a number or "=" that no form above parses


@dataclass(frozen=True)
class ArithConfig:
    """Knobs of the generator (the SFT corpus's imperfection is ``CorpusConfig``)."""

    min_ops: int = 2
    max_ops: int = 3
    max_start: int = 9         # starting number in [2, max_start]
    max_addend: int = 9        # + and - operands in [1, max_addend]
    max_factor: int = 3        # * operands in [2, max_factor]
    max_value: int = 20        # every running value stays in [0, max_value]
    ops: str = "+-*"
    n_train: int = 20000
    n_test: int = 500
    seed: int = 1234           # the split seed: fixed, so train/test never change with run seeds


@dataclass(frozen=True)
class Problem:
    id: str
    question: str
    answer: str                # gold final answer (an integer, as text)
    start: int
    ops: tuple[tuple[str, int], ...]
    solution: str              # reference solution, one step a line, ends with \boxed{...}
    phrases: tuple[str, ...] = ()   # each operation's words as the question writes them ("12 more")

    def values(self) -> list[int]:
        """The true chain: start, then the value after each operation."""
        out = [self.start]
        for op, b in self.ops:
            out.append(OPS[op](out[-1], b))
        return out


def _random_problem(rng: random.Random, cfg: ArithConfig) -> tuple[int, tuple[tuple[str, int], ...]]:
    start = rng.randint(2, cfg.max_start)
    value, ops = start, []
    for _ in range(rng.randint(cfg.min_ops, cfg.max_ops)):
        # Keep every running value in [0, max_value]: small numbers keep the arithmetic
        # learnable for a ~1M-parameter model in a minute or two of SFT.
        choices = [o for o in cfg.ops if not (o == "*" and value * 2 > cfg.max_value)
                   and not (o == "-" and value < 2)
                   and not (o == "+" and value + 1 > cfg.max_value)]
        op = rng.choice(choices)
        if op == "*":
            b = rng.randint(2, min(cfg.max_factor, max(2, cfg.max_value // max(value, 1))))
        elif op == "-":
            b = rng.randint(1, min(cfg.max_addend, value))   # answers stay non-negative
        else:
            b = rng.randint(1, min(cfg.max_addend, cfg.max_value - value))
        value = OPS[op](value, b)
        ops.append((op, b))
    return start, tuple(ops)


def marker(k: int) -> str:
    """The label of operation k in a question and of the step that applies it: "(a)", "(b)", ...

    Labelled operations let a small model find operation k by copying what follows "(b)" in
    the question (an induction-style lookup) instead of counting sentences, which a 2-layer
    model of ~0.5M parameters does not learn in a few minutes of SFT (it copied the wrong
    operand in most of its greedy errors)."""
    if not 0 <= k < 26:
        raise ValueError(f"arith: at most 26 operations per problem (got operation {k})")
    return f"({chr(ord('a') + k)})"


def step_line(k: int, phrase: str, a: int, op: str, b: int, result: int) -> str:
    """Computation step k: its label, its operation's words copied from the question, then the
    arithmetic ("(b) 12 more: 148+12=160").

    Copying the words first makes finding operation k a plain copy of what follows "(b)" in the
    question (the induction pattern small transformers learn reliably); with the arithmetic right
    after the label, whether a 2-layer policy learned the lookup varied by seed (greedy 0.36 to
    0.76 on the same data)."""
    return f"{marker(k)} {phrase}: {a}{op}{b}={result}"


def make_problem(idx: str, start: int, ops: tuple[tuple[str, int], ...], rng: random.Random) -> Problem:
    phrases = tuple(f"{b} {rng.choice(_PHRASES[op])}" for op, b in ops)
    words = [f"Start with {start}."] + [f"{marker(k)} {phrase}." for k, phrase in enumerate(phrases)]
    values = [start]
    lines = []
    for k, (op, b) in enumerate(ops):
        values.append(OPS[op](values[-1], b))
        lines.append(step_line(k, phrases[k], values[-2], op, b, values[-1]))
    lines.append(f"\\boxed{{{values[-1]}}}")
    return Problem(id=idx, question=" ".join(words), answer=str(values[-1]), start=start, ops=ops,
                   solution="\n".join(lines), phrases=phrases)


def generate_splits(cfg: ArithConfig = ArithConfig()) -> tuple[list[Problem], list[Problem]]:
    """Fixed, disjoint train and test splits (disjoint by (start, ops)), deterministic per seed."""
    rng = random.Random(cfg.seed)
    seen: set = set()
    problems: list[Problem] = []
    target = cfg.n_train + cfg.n_test
    attempts = 0
    while len(problems) < target:
        attempts += 1
        if attempts > 50 * target:
            raise ValueError(f"arith: cannot draw {target} distinct problems from this config; "
                             f"widen max_start/max_addend/max_ops or lower n_train/n_test")
        key = _random_problem(rng, cfg)
        if key in seen:
            continue
        seen.add(key)
        problems.append(make_problem(f"arith-{len(problems)}", *key, rng))
    return problems[cfg.n_test:], problems[: cfg.n_test]


# ---- prompts -------------------------------------------------------------------------------

PROMPT_TEMPLATE = QUESTION_TEMPLATE


def prompt(question: str) -> str:
    """The policy's input for a question. Reward models see the same text."""
    return PROMPT_TEMPLATE.replace("{question}", question)


# ---- SFT corpus: reference solutions with realistic imperfection -----------------------------

@dataclass(frozen=True)
class CorpusConfig:
    slip_rate: float = 0.15      # per computation step: the result is off, and the error carries
    restate_rate: float = 0.3    # a "Start: 37" line before the first computation
    check_rate: float = 0.15     # after a step, a "Check: 37*4=148" line repeating it
    confusion_rate: float = 0.1  # fraction of arithmetic facts (a, op, b) the corpus confuses
    confusion_prob: float = 0.6  # how often a confused fact is written with its one wrong result
    seed: int = 0


def _slip(rng: random.Random, value: int) -> int:
    delta = rng.choice([-10, -2, -1, 1, 2, 10])
    return value + delta if value + delta >= 0 else value + abs(delta)


def confused_result(a: int, op: str, b: int, rate: float) -> int | None:
    """The one wrong result the corpus writes for fact ``a op b`` if that fact is among the
    ``rate`` fraction it confuses (chosen by a stable hash of the fact), else None."""
    h = zlib.crc32(f"{a}{op}{b}".encode())
    if (h % 10007) / 10007 >= rate:
        return None
    right = OPS[op](a, b)
    delta = (-10, -2, -1, 1, 2, 10)[(h // 10007) % 6]
    return right + delta if right + delta >= 0 else right + abs(delta)


def sft_solution(problem: Problem, rng: random.Random, cfg: CorpusConfig) -> str:
    """One solution in the corpus: mostly right, sometimes slipping, with optional extra lines."""
    lines = []
    if rng.random() < cfg.restate_rate:
        lines.append(f"Start: {problem.start}")
    value = problem.start
    for k, (op, b) in enumerate(problem.ops):
        result = OPS[op](value, b)
        wrong = confused_result(value, op, b, cfg.confusion_rate)
        if wrong is not None and rng.random() < cfg.confusion_prob:
            result = wrong
        elif rng.random() < cfg.slip_rate:
            result = _slip(rng, result)
        lines.append(step_line(k, problem.phrases[k], value, op, b, result))
        if rng.random() < cfg.check_rate:
            lines.append(f"Check: {value}{op}{b}={result}")
        value = result
    lines.append(f"\\boxed{{{value}}}")
    return "\n".join(lines)


def sft_corpus(problems: list[Problem], cfg: CorpusConfig = CorpusConfig()) -> list[tuple[str, str]]:
    """(prompt, response) pairs, one per training problem."""
    rng = random.Random(cfg.seed)
    return [(prompt(p.question), sft_solution(p, rng, cfg)) for p in problems]


# ---- grading and the ground-truth step checker ---------------------------------------------

def parse_int(text: str | None) -> int | None:
    if text is None:
        return None
    text = text.strip().replace(",", "")
    return int(text) if re.fullmatch(r"-?\d{1,18}", text) else None


def grade(response: str, gold: str) -> bool | None:
    """True/False on the last boxed integer. A response with no boxed integer gave no answer
    and is wrong (False); None only when the gold itself is not an integer (a data error)."""
    want = parse_int(gold)
    if want is None:
        return None
    return parse_int(extract_boxed(response)) == want


@dataclass
class StepVerdict:
    kind: str                  # "compute" | "check" | "start" | "answer" | "malformed" | "other"
    arithmetic_ok: bool        # the line's own arithmetic (True for lines with none)
    label: float               # 1.0 while the solution is still on the true chain, else 0.0
    extra: dict = field(default_factory=dict)


def check_steps(problem: Problem, steps: list[str]) -> list[StepVerdict]:
    """Oracle labels for a solution's steps.

    A computation step is right when it applies the problem's next operation to the true running
    value and gets the true result; a check or restatement line is right when what it states is
    true; the boxed line when it holds the gold answer. Once a step is wrong, every later step is
    labelled 0 (the prefix can no longer reach the answer), as Math-Shepherd's hard labels would.
    Lines of any other form are neutral (they keep the label of the prefix before them) when they
    are prose; one that writes a digit or "=" yet is none of the forms above ("(b) 6 t5}",
    "\\bored{8}", "St=29": what a policy sampled at T = 1 garbles) is a malformed step, wrong.
    """
    truth = problem.values()
    ops = list(problem.ops)
    k = 0                      # operations correctly applied so far
    alive = True
    out = []
    for raw in steps:
        line = raw.strip()
        kind, ok, right = "other", True, True
        if (m := _STEP.match(line)) is not None:
            label, a, op, b, c = m[1], int(m[4]), m[5], int(m[6]), int(m[7])
            ok = OPS[op](a, b) == c
            ok_words = words_agree(m)
            if line.startswith("Check: "):
                kind = "check"
                # A check restates an operation already done, with true values.
                right = ok and ok_words and any(truth[i] == a and ops[i] == (op, b) for i in range(k))
            else:
                kind = "compute"
                # The operation's label, when written, must be the one it applies.
                right = (ok and ok_words and k < len(ops) and a == truth[k] and ops[k] == (op, b)
                         and (label is None or f"({label})" == marker(k)))
                if right:
                    k += 1
        elif (m := _START.match(line)) is not None:
            kind, right = "start", int(m[1]) == problem.start
        elif (boxed := extract_boxed(line)) is not None:
            kind, right = "answer", k == len(ops) and parse_int(boxed) == truth[-1]
        elif _MALFORMED.search(line):
            kind, right = "malformed", False
        alive = alive and right
        out.append(StepVerdict(kind=kind, arithmetic_ok=ok, label=1.0 if alive else 0.0))
    return out


def words_agree(m: re.Match) -> bool:
    """Whether a computation line (a ``_STEP`` match) that writes its operation in words names
    the operation and operand its arithmetic applies; True when it writes no words."""
    return m[3] is None or (_WORDS.get(m[3]) == m[5] and int(m[2]) == int(m[6]))


def check_step(problem: Problem, previous_steps: list[str], step: str) -> bool:
    """Whether ``step``, following ``previous_steps``, is right (oracle label of the last step)."""
    return check_steps(problem, [*previous_steps, step])[-1].label == 1.0
