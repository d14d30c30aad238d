"""Success reward for real math: is a response's final answer equal to the gold answer?

    grade(response, gold) -> True | False | None      # None: could not decide (counted)

Equivalence is math-verify's (https://github.com/huggingface/Math-Verify); this module extracts
the final answer of the response and unwraps the gold (:mod:`prmrl.answers`: boxes, "the answer
is", the last math, a bare number only for ``numeric`` tasks such as GSM8K), runs math-verify
under a deadline, and counts what happened. Beyond math-verify's own comparison, an inequality
answer is compared with an interval gold as a set ("0 \\le x < 1" vs "[0,1)"), and a gold such as
"70,110" (a list written without spaces) also matches the list "70, 110".

Why a process pool: math-verify bounds its own time with ``signal.alarm``, which only works on the
main thread; a trainer grades from threads and subprocesses, and a checker that fails there must
not become a silent 0 reward (docs/method.md, "Pitfalls"). So each check runs in a worker process with
math-verify's timeouts off, and the caller enforces a per-answer deadline from outside: a worker
that passes it is killed and respawned, and that answer grades None ("timeout"). A worker that
dies grades its answer None ("crash"). Every None is counted in ``MathGrader.stats``.

Model text is untrusted. Nothing here ``eval``s it, and math-verify's plain-expression extractor
is not used: it hands extracted text to sympy's ``parse_expr``, which evals. (Its LaTeX extractor,
used here, calls ``sympy.Number(text)`` only on number tokens of its grammar.) Only the tail of a
long response is read; answers too long or too deeply nested are not parsed; workers run under
an address-space limit (``RLIMIT_AS``) and a deadline.
"""

from __future__ import annotations

import atexit
import json
import os
import re
import select
import socket
import subprocess
import sys
import threading
import time
import weakref
from collections import OrderedDict, deque
from decimal import Decimal
from pathlib import Path

from prmrl.answers import MAX_RESPONSE_CHARS, extract_answer, extract_gold

__all__ = ["MathGrader", "default_grader", "extract_answer", "extract_gold", "grade"]

DEFAULT_TIMEOUT_S = 5.0  # per answer; math-verify's own default
DEFAULT_CACHE_SIZE = 100_000  # (answer, gold) pairs
DEFAULT_MEMORY_MB = 2048  # address-space limit per worker
MAX_ANSWER_CHARS = 1_000  # the longest MATH gold answer is 159 characters
# math-verify's LaTeX parser slows down steeply with nesting (12 nested braces: ~3 s here);
# MATH gold answers nest {[( at most 3 deep, so deeper answers are not parsed at all.
MAX_ANSWER_NESTING = 10
WORKER_START_TIMEOUT_S = 120.0  # importing sympy on a loaded machine can take a while

# Worker result codes (one character on the wire).
_TRUE, _FALSE, _UNPARSEABLE, _CRASH = "T", "F", "U", "C"
_TIMEOUT = "timeout"  # never comes from a worker: the caller decides it

# ---------------------------------------------------------------------------------------------
# Final-answer extraction (cheap, regex-only, runs in the caller): prmrl.answers.


# Fast path: when both sides are plain integers/decimals ("1,000", "1 000", "-3.50") they are
# compared here, exactly, without math-verify (which spends ~1 ms parsing each side). Equal
# values are True. Unequal values are False when math-verify could not call them equal either:
# integers it compares exactly, floats after rounding to 6 places (float_rounding), so numbers
# further apart than that rounding can be are False; the rest go to math-verify.
_PLAIN = re.compile(r"[-+]?(?:\d{1,3}(?:,\d{3})+(?!\d)|\d{1,3}(?: \d{3})+(?!\d)|\d+)?(?:\.\d+)?")
_FAR_APART = Decimal("1e-5")  # relative; math-verify's rounding blurs at most 1e-6 (and Float
# keeps 15 significant digits, hence relative)


def _plain_number(s: str) -> Decimal | None:
    s = s.strip().replace("{,}", ",")
    if not s or not _PLAIN.fullmatch(s) or not any(c.isdigit() for c in s):
        return None
    return Decimal(s.replace(",", "").replace(" ", ""))


def _nesting(s: str) -> int:
    """How deeply {[( nest in ``s``."""
    depth = deepest = 0
    for c in s:
        if c in "{[(":
            depth += 1
            deepest = max(deepest, depth)
        elif c in "}])" and depth:
            depth -= 1
    return deepest


def _fast_path(answer: str, gold: str) -> bool | None:
    a, g = _plain_number(answer), _plain_number(gold)
    if a is None or g is None:
        return None
    if a == g:
        return True
    if "." not in answer and "." not in gold:
        return False
    if abs(a - g) > _FAR_APART * max(1, abs(a), abs(g)):
        return False
    return None


# ---------------------------------------------------------------------------------------------
# Worker processes. Starting Python with sympy and math-verify takes ~1.5 s of CPU, too long to
# wait after every killed worker, so one "zygote" process imports and warms them up once and
# then forks each worker on request (milliseconds). The zygote only forks, reaps and kills; it
# never runs a check, and it is single-threaded, so forking it is safe.
#
# Wire protocol (one stream socket per worker): the worker sends "ready <pid>\n"; the caller
# sends JSON lines [[id, answer, gold], ...]; the worker answers one "id code\n" per item.
# Control socket (caller <-> zygote, SOCK_SEQPACKET): b"fork" carrying the worker's socket as
# an SCM_RIGHTS fd, and b"kill <pid>" (the zygote kills only its own unreaped children, so a
# recycled pid can never be hit).

_WARM_UP = [
    ("\\frac{1}{2}", "0.5"),
    ("(1, 2)", "(2,1)"),
    ("[0, \\infty)", "x \\ge 0"),
    ("x^2+1", "1+x^2"),
    ("\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}", "\\begin{pmatrix} 1 \\\\ 3 \\end{pmatrix}"),
    ("\\text{Evelyn}", "\\text{(B)}"),
    ("x = 5", "5"),
]


def _zygote_main() -> None:  # pragma: no cover -- runs in the zygote process
    import logging
    import resource
    import signal

    memory_mb, ctl_fd = int(sys.argv[1]), int(sys.argv[2])
    limit = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))  # inherited by every worker
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    os.dup2(2, 1)  # anything a library prints goes to stderr
    sys.stdout = sys.stderr
    ctl = socket.socket(fileno=ctl_fd)
    logging.getLogger("math_verify").setLevel(logging.CRITICAL)
    logging.getLogger("latex2sympy2_extended").setLevel(logging.CRITICAL)
    # Warm up before any deadline: sympy imports its set, matrix and relational code on first
    # use, which would otherwise land in some worker's first checks.
    for answer, gold in _WARM_UP:
        _check_pair(answer, gold)
    zygote_pid = os.getpid()
    children: set[int] = set()
    while True:
        readable, _, _ = select.select([ctl], [], [], 1.0)
        while children:  # reap the exited ones; until reaped a pid cannot be reused
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            children.discard(pid)
        if not readable:
            continue
        try:
            msg, fds, _, _ = socket.recv_fds(ctl, 64, 1)
        except OSError:
            msg, fds = b"", []
        if not msg:  # the caller is gone (or closed us): take the workers along
            for pid in children:
                os.kill(pid, signal.SIGKILL)
            os._exit(0)
        if msg == b"fork" and fds:
            pid = os.fork()
            if pid == 0:
                try:
                    ctl.close()
                    _serve(socket.socket(fileno=fds[0]), zygote_pid)
                finally:
                    os._exit(0)
            os.close(fds[0])
            children.add(pid)
        elif msg.startswith(b"kill "):
            pid = int(msg[5:])
            if pid in children:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    children.discard(pid)


def _serve(sock: socket.socket, zygote_pid: int) -> None:  # pragma: no cover -- in a worker
    import signal

    try:  # die with the zygote even while stuck in C code holding the GIL (Linux)
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != zygote_pid:
        return
    sock.sendall(f"ready {os.getpid()}\n".encode())
    for line in sock.makefile("rb"):
        for item_id, answer, gold in json.loads(line):
            try:
                code = _check_pair(answer, gold)
            except Exception:  # incl. MemoryError (RLIMIT_AS), RecursionError: a crash
                code = _CRASH
            sock.sendall(f"{item_id} {code}\n".encode())


_parse_cache: OrderedDict = OrderedDict()  # in a worker: latex -> parse() result
_INTEGER = re.compile(r"-?\d{1,50}")


def _parse_boxed(latex: str) -> list:
    """math-verify's parse of ``\\boxed{latex}``, LaTeX extractor only, no signal timeout."""
    hit = _parse_cache.get(latex)
    if hit is not None:
        _parse_cache.move_to_end(latex)
        return hit
    if _INTEGER.fullmatch(latex):
        # What parse() returns for a plain integer (e.g. every GSM8K gold), built without its
        # ~1 ms LaTeX parser; tests/test_grading.py checks the two agree.
        from sympy import Integer

        return [Integer(int(latex)), latex]
    from math_verify import LatexExtractionConfig, parse

    parsed = parse(
        "\\boxed{" + latex + "}",
        extraction_config=[LatexExtractionConfig(boxed_match_priority=0)],
        parsing_timeout=None,  # the caller's deadline bounds time; signals break off-main-thread
    )
    _parse_cache[latex] = parsed
    if len(_parse_cache) > 4096:
        _parse_cache.popitem(last=False)
    return parsed


def _check_pair(answer: str, gold: str) -> str:
    """One comparison with math-verify; returns a result code. Runs in a worker."""
    from math_verify import verify

    parsed_gold = _parse_boxed(gold)
    if not parsed_gold:
        return _UNPARSEABLE          # no gold to compare with: cannot decide (counted)
    parsed_answer = _parse_boxed(answer)
    # parse() appends the raw string after the sympy object; an answer that is only a string
    # did not parse as math. Against a gold that did, the answer is wrong, not "cannot decide":
    # garbage in a box ("\boxed{@@@}", "$-[0,1)$") must never earn the unscorable reward,
    # which a user may set above 0.
    if not parsed_answer or (all(isinstance(x, str) for x in parsed_answer) and not all(
            isinstance(x, str) for x in parsed_gold)):
        return _FALSE
    # raise_on_error stays False: verify tries every (gold, answer) reading and one reading's
    # sympy error (e.g. "05\!:\!00") must not hide another's string match.
    ok = verify(parsed_gold, parsed_answer, timeout_seconds=None)
    if not ok:
        ok = _set_vs_inequality(parsed_gold, parsed_answer)
    if not ok and _THOUSANDS_OR_LIST.fullmatch(gold) and ", " in answer:
        # "70,110" is 70110 to math-verify; as a gold it may be the list 70, 110.
        ok = verify(_parse_boxed(gold.replace(",", ", ")), parsed_answer, timeout_seconds=None)
    return _TRUE if ok else _FALSE


_THOUSANDS_OR_LIST = re.compile(r"\d{1,3}(?:,\d{3})+")


def _as_set(expr):
    """The solution set of an inequality in one variable ("0 \\le x < 1", "x<1 or x>2"), else
    None. Equations are left to math-verify."""
    from sympy import And, FiniteSet, Or
    from sympy.core.relational import Eq, Ne, Relational

    if isinstance(expr, FiniteSet) and expr.args and all(isinstance(a, Relational) for a in expr.args):
        expr = Or(*expr.args)  # "x < 1 \\text{ or } x > 2" parses as a set of relations

    def inequality(e) -> bool:
        return isinstance(e, Relational) and not isinstance(e, (Eq, Ne))

    if inequality(expr) or (isinstance(expr, (And, Or)) and all(inequality(a) for a in expr.args)):
        if len(expr.free_symbols) == 1:
            return expr.as_set()
    return None


def _set_vs_inequality(parsed_gold: list, parsed_answer: list) -> bool:
    """math-verify compares a gold inequality with an interval answer, but not an interval gold
    with an inequality answer, nor chained inequalities ("0 \\le x < 1") or "x < 1 or x > 2"
    with intervals: compare solution sets. Two inequalities compare so only in the same
    variable."""
    from math_verify import verify
    from sympy import Set

    for g in parsed_gold:
        for a in parsed_answer:
            if isinstance(g, str) or isinstance(a, str):
                continue
            try:
                g_set = _as_set(g)
                g_set = g if g_set is None and isinstance(g, Set) else g_set
                a_set = _as_set(a)
                a_set = a if a_set is None and isinstance(a, Set) else a_set
            except Exception:  # sympy cannot solve it: no set to compare
                continue
            if g_set is None or a_set is None or (g_set is g and a_set is a):
                continue
            if g_set is not g and a_set is not a and g.free_symbols != a.free_symbols:
                continue
            if verify(g_set, a_set, timeout_seconds=None):
                return True
    return False


# ---------------------------------------------------------------------------------------------
# The caller's side of the zygote and of each worker.

_ZYGOTE_CODE = "from prmrl.grading import _zygote_main; _zygote_main()"


class _Zygote:
    def __init__(self, memory_mb: int):
        if not sys.executable:
            raise RuntimeError("MathGrader needs sys.executable to start its worker processes")
        env = dict(os.environ)
        package_root = str(Path(__file__).resolve().parents[1])  # .../src, so workers import us
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
        self.ctl, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", _ZYGOTE_CODE, str(memory_mb), str(theirs.fileno())],
                stdin=subprocess.DEVNULL,
                pass_fds=(theirs.fileno(),),
                env=env,
            )
        finally:
            theirs.close()
        self.proven = False  # set once a worker forked from it has come up

    def fork(self) -> socket.socket | None:
        """Our end of a new worker's socket (the worker comes up once the zygote is ready)."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            socket.send_fds(self.ctl, [b"fork"], [theirs.fileno()])
        except OSError:  # the zygote is gone
            ours.close()
            return None
        finally:
            theirs.close()
        return ours

    def kill(self, pid: int) -> None:
        try:
            self.ctl.send(b"kill %d" % pid)
        except OSError:
            pass  # the zygote is gone, and its workers with it

    def close(self) -> None:
        self.ctl.close()  # EOF: the zygote kills its workers and exits
        try:
            self.proc.wait(timeout=2.0)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class _Worker:
    def __init__(self, sock: socket.socket, zygote: _Zygote):
        self.sock = sock
        self.zygote = zygote
        self.fd = sock.fileno()
        self.pid: int | None = None  # known once it says "ready"
        self.buf = b""
        self.started = time.monotonic()
        self.inflight: deque[int] = deque()  # ids sent and not answered, in order
        self.item_started = 0.0  # when the worker began inflight[0]

    @property
    def ready(self) -> bool:
        return self.pid is not None

    def send(self, items: list[tuple[int, str, str]]) -> bool:
        try:
            self.sock.sendall(json.dumps(items).encode() + b"\n")
        except OSError:  # the worker is gone
            return False
        self.inflight.extend(item_id for item_id, _, _ in items)
        self.item_started = time.monotonic()
        return True

    def read_lines(self) -> tuple[list[bytes], bool]:
        """Complete lines available now, and whether the worker closed its end (exited)."""
        eof = False
        while True:
            try:
                chunk = self.sock.recv(65536, socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                eof = True
                break
            if not chunk:
                eof = True
                break
            self.buf += chunk
        *lines, self.buf = self.buf.split(b"\n")
        return lines, eof


class _Pool:
    """The zygote and the workers of one MathGrader, in the process that started them."""

    def __init__(self, memory_mb: int):
        self.memory_mb = memory_mb
        self.pid = os.getpid()
        self.zygote: _Zygote | None = None
        self.workers: list[_Worker] = []

    def spawn(self) -> _Worker:
        if self.zygote is None or self.zygote.proc.poll() is not None:
            if self.zygote is not None:
                self.zygote.close()
            self.zygote = _Zygote(self.memory_mb)
        sock = self.zygote.fork()
        if sock is None:  # it died between the check and the fork: one more try
            self.zygote.close()
            self.zygote = _Zygote(self.memory_mb)
            sock = self.zygote.fork()
            if sock is None:
                raise RuntimeError("the grader's zygote process will not start workers")
        worker = _Worker(sock, self.zygote)
        self.workers.append(worker)
        return worker

    def kill(self, w: _Worker) -> None:
        if w.pid is not None:
            w.zygote.kill(w.pid)
        w.sock.close()  # a worker that never came up sees EOF and exits
        self.workers.remove(w)

    def close(self) -> None:
        if os.getpid() != self.pid:  # a forked copy: the processes belong to the parent
            for w in self.workers:
                w.sock.close()
            if self.zygote is not None:
                self.zygote.ctl.close()
        else:
            for w in list(self.workers):
                self.kill(w)
            if self.zygote is not None:
                self.zygote.close()
        self.workers.clear()
        self.zygote = None


# ---------------------------------------------------------------------------------------------


def default_num_workers() -> int:
    """The usable cores divided among the processes of this node (``LOCAL_WORLD_SIZE``, set by
    torchrun / accelerate launch), at least 1: 8 training processes on a 96-core node start 12
    grader workers each, not 96."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    try:
        local = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    except ValueError:
        local = 1
    return max(1, cores // local)


class MathGrader:
    """Grades final answers against gold answers with math-verify, in parallel, under deadlines.

    ``num_workers`` processes (default: the usable cores over the node's training processes,
    :func:`default_num_workers`) each check one answer at a time; a check
    over ``timeout_s`` seconds is killed and grades None, and a fresh worker (forked from a warm
    zygote process, in milliseconds) takes its place. Results of (answer, gold) pairs are cached
    (LRU, ``cache_size`` pairs; timeouts and crashes are not cached: they may come from load).
    Processes start on first need (or :meth:`start`) and stay up until :meth:`close`. Safe to
    share between threads; concurrent calls are served one batch at a time.

    ``numeric_answers``: the task's answers are numbers (GSM8K): a response that marks no answer
    (no box, no "the answer is", no math) is read by its last number, if that number stands
    alone. Off, such a response has no answer (False). Golds are unwrapped from ``$..$``,
    ``\\boxed{}``, ``#### X`` (:func:`prmrl.answers.extract_gold`).

    ``stats`` counts, since construction: graded (pairs returned), true, false, none_unparseable,
    none_timeout, none_crash, cache_hits; and, for diagnosis, no_answer (responses with no final
    answer, graded False), fast_path (decided without math-verify), too_complex (answers over
    max_answer_chars long or max_answer_nesting deep: not parsed, graded None and counted in
    none_unparseable), worker_starts, and max_check_s (the slowest check that finished).
    """

    def __init__(
        self,
        num_workers: int | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        cache_size: int = DEFAULT_CACHE_SIZE,
        memory_mb: int = DEFAULT_MEMORY_MB,
        max_response_chars: int = MAX_RESPONSE_CHARS,
        max_answer_chars: int = MAX_ANSWER_CHARS,
        max_answer_nesting: int = MAX_ANSWER_NESTING,
        use_fast_path: bool = True,
        numeric_answers: bool = False,
    ):
        if num_workers is None:
            num_workers = default_num_workers()
        if num_workers < 1:
            raise ValueError(f"num_workers must be >= 1, got {num_workers}")
        if not timeout_s > 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
        self.num_workers = num_workers
        self.timeout_s = float(timeout_s)
        self.cache_size = cache_size
        self.memory_mb = memory_mb
        self.max_response_chars = max_response_chars
        self.max_answer_chars = max_answer_chars
        self.max_answer_nesting = max_answer_nesting
        self.use_fast_path = use_fast_path
        self.numeric_answers = numeric_answers
        self._golds: OrderedDict[str, str] = OrderedDict()  # raw gold -> extract_gold(gold)
        self.stats: dict[str, float] = dict.fromkeys(
            [
                "graded", "true", "false", "none_unparseable", "none_timeout", "none_crash",
                "cache_hits", "no_answer", "fast_path", "too_complex", "worker_starts",
            ],
            0,
        )
        self.stats["max_check_s"] = 0.0
        self._cache: OrderedDict[tuple[str, str], str] = OrderedDict()
        self._lock = threading.Lock()
        self._closed = False
        self._pool = _Pool(memory_mb)
        self._finalizer = weakref.finalize(self, self._pool.close)

    # -- public -------------------------------------------------------------------------------

    def grade(self, response: str, gold: str, numeric: bool | None = None) -> bool | None:
        return self.grade_batch([response], [gold], numeric=numeric)[0]

    def grade_batch(self, responses: list[str], golds: list[str],
                    numeric: bool | None = None) -> list[bool | None]:
        """``grade`` for each (response, gold) pair, checked in parallel; order is kept.
        ``numeric``: as ``numeric_answers``, for this call (None: the grader's setting)."""
        numeric = self.numeric_answers if numeric is None else bool(numeric)
        if len(responses) != len(golds):
            raise ValueError(f"{len(responses)} responses but {len(golds)} golds")
        with self._lock:
            if self._closed:
                raise RuntimeError("MathGrader is closed")
            codes: list[str | None] = [None] * len(responses)
            todo: dict[tuple[str, str], list[int]] = {}  # unique pair -> positions
            for i, (response, gold) in enumerate(zip(responses, golds)):
                if not isinstance(response, str) or not isinstance(gold, str):
                    raise TypeError(f"pair {i}: response and gold must be str")
                codes[i] = self._grade_locally(response, self._gold(gold), i, todo, numeric)
            if todo:
                checked = self._check_in_workers(list(todo))
                for key, positions in todo.items():
                    code = checked[key]
                    self.stats["cache_hits"] += len(positions) - 1  # repeats within the batch
                    if code in (_TRUE, _FALSE, _UNPARSEABLE):
                        self._cache_put(key, code)
                    for i in positions:
                        codes[i] = code
            return [self._count(code) for code in codes]

    def start(self) -> MathGrader:
        """Start the processes now and wait until they are ready (else: on the first check)."""
        with self._lock:
            self._ensure_workers()
            while not all(w.ready for w in self._pool.workers):
                self._poll({}, deque())
        return self

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._pool.close()

    def __enter__(self) -> MathGrader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- in the caller: extraction, fast path, cache -------------------------------------------

    def _gold(self, gold: str) -> str:
        hit = self._golds.get(gold)
        if hit is None:
            hit = extract_gold(gold)
            self._golds[gold] = hit
            if len(self._golds) > 50_000:
                self._golds.popitem(last=False)
        return hit

    def _grade_locally(
        self, response: str, gold: str, i: int, todo: dict[tuple[str, str], list[int]],
        numeric: bool = False,
    ) -> str | None:
        """A result code if the pair is decided without a worker, else None (queued in todo)."""
        answer = extract_answer(response, self.max_response_chars, numeric=numeric)
        if answer is None:
            self.stats["no_answer"] += 1
            return _FALSE
        if self.use_fast_path:
            fast = _fast_path(answer, gold)
            if fast is not None:
                self.stats["fast_path"] += 1
                return _TRUE if fast else _FALSE
        if len(answer) > self.max_answer_chars or _nesting(answer) > self.max_answer_nesting:
            self.stats["too_complex"] += 1
            return _UNPARSEABLE
        key = (answer, gold)
        code = self._cache.get(key)
        if code is not None:
            self._cache.move_to_end(key)
            self.stats["cache_hits"] += 1
            return code
        todo.setdefault(key, []).append(i)
        return None

    def _cache_put(self, key: tuple[str, str], code: str) -> None:
        if self.cache_size <= 0:
            return
        self._cache[key] = code
        if len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)

    def _count(self, code: str | None) -> bool | None:
        self.stats["graded"] += 1
        if code == _TRUE:
            self.stats["true"] += 1
            return True
        if code == _FALSE:
            self.stats["false"] += 1
            return False
        key = {_UNPARSEABLE: "none_unparseable", _TIMEOUT: "none_timeout"}.get(code, "none_crash")
        self.stats[key] += 1
        return None

    # -- the worker pool ------------------------------------------------------------------------

    def _ensure_workers(self) -> None:
        if os.getpid() != self._pool.pid:  # we were forked: those processes are the parent's
            self._pool.close()
            self._finalizer.detach()
            self._pool = _Pool(self.memory_mb)
            self._finalizer = weakref.finalize(self, self._pool.close)
        while len(self._pool.workers) < self.num_workers:
            self._pool.spawn()
            self.stats["worker_starts"] += 1

    def _check_in_workers(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], str]:
        items = dict(enumerate(keys))
        pending = deque(items)  # ids not yet sent
        results: dict[int, str] = {}
        self._ensure_workers()
        while len(results) < len(items):
            # Hand work to idle workers in chunks: fewer messages, and still balanced at the end.
            for w in [w for w in self._pool.workers if w.ready and not w.inflight]:
                if not pending:
                    break
                size = max(1, min(32, len(pending) // (2 * self.num_workers)))
                chunk = [pending.popleft() for _ in range(min(size, len(pending)))]
                if not w.send([(n, *items[n]) for n in chunk]):
                    pending.extendleft(reversed(chunk))
                    self._replace(w)
            self._poll(results, pending)
        return {items[n]: code for n, code in results.items()}

    def _poll(self, results: dict[int, str], pending: deque) -> None:
        """Wait for worker output or the nearest deadline; record results, replace dead workers."""
        watched = [w for w in self._pool.workers if not w.ready or w.inflight]
        if not watched:
            return
        deadlines = [
            w.item_started + self.timeout_s if w.ready else w.started + WORKER_START_TIMEOUT_S
            for w in watched
        ]
        wait = max(0.0, min(deadlines) - time.monotonic())
        poller = select.poll()  # not select(): a trainer may hold more than 1024 open files
        for w in watched:
            poller.register(w.fd, select.POLLIN)
        readable = {fd for fd, _ in poller.poll(wait * 1000)}
        for w in watched:
            if w.fd in readable:
                lines, eof = w.read_lines()
                for line in lines:
                    self._on_line(w, line, results)
                if eof:  # the worker died: its current answer crashed it (or it never started)
                    self._on_exit(w, results, pending, code=_CRASH)
        now = time.monotonic()
        for w in list(self._pool.workers):
            if not w.ready and now > w.started + WORKER_START_TIMEOUT_S:
                raise RuntimeError(f"a grader worker did not start within {WORKER_START_TIMEOUT_S}s")
            if w.ready and w.inflight and now > w.item_started + self.timeout_s:
                self._on_exit(w, results, pending, code=_TIMEOUT)

    def _on_line(self, w: _Worker, line: bytes, results: dict[int, str]) -> None:
        if line.startswith(b"ready "):
            w.pid = int(line.split()[1])
            w.zygote.proven = True
            return
        item_id, code = line.split()
        item_id = int(item_id)
        if not w.inflight or w.inflight[0] != item_id:
            raise RuntimeError(f"grader worker answered {item_id}, expected {list(w.inflight)[:1]}")
        now = time.monotonic()
        self.stats["max_check_s"] = max(self.stats["max_check_s"], now - w.item_started)
        w.inflight.popleft()
        w.item_started = now
        results[item_id] = code.decode()

    def _on_exit(self, w: _Worker, results: dict[int, str], pending: deque, code: str) -> None:
        """Kill ``w``; its current answer gets ``code``; the rest of its chunk is re-queued."""
        if not w.ready:
            status = w.zygote.proc.poll()
            self._pool.kill(w)
            if w.zygote.proven:  # a zygote that worked has died (killed?): start another
                self._ensure_workers()
                return
            raise RuntimeError(
                f"a grader worker exited during start-up (zygote exit code {status}); "
                f"does `{sys.executable} -c 'import math_verify'` work?"
            )
        if w.inflight:
            # A dying zygote takes its workers along; not this answer's doing, so it is retried.
            zygote_died = code == _CRASH and w.zygote.proc.poll() is not None
            if not zygote_died:
                results[w.inflight.popleft()] = code
            pending.extendleft(reversed(w.inflight))
            w.inflight.clear()
        self._replace(w)

    def _replace(self, w: _Worker) -> None:
        self._pool.kill(w)
        self._ensure_workers()


# ---------------------------------------------------------------------------------------------
# Module-level grader behind ``grade()``: created on first use, closed at exit, recreated in a
# forked child (the parent's worker sockets are not ours to use).

_default: MathGrader | None = None
_default_lock = threading.Lock()


def default_grader() -> MathGrader:
    global _default
    with _default_lock:
        if _default is None or _default._pool.pid != os.getpid() or _default._closed:
            _default = MathGrader()
            atexit.register(_default.close)
        return _default


def grade(response: str, gold: str, numeric: bool = False) -> bool | None:
    """True/False if ``response``'s final answer equals ``gold``; None when undecidable.

    None means the answer could not be parsed, or its check timed out or crashed; all are
    counted in ``default_grader().stats``. A response with no final answer at all is False.
    ``numeric``: the answers are numbers (GSM8K), so a bare last number counts as the answer.

    >>> grade("... so the answer is \\\\boxed{1,000}.", "1000")
    True
    """
    return default_grader().grade(response, gold, numeric=numeric)
