"""`prmrl serve-prm PATH`: serve a PRM over HTTP in prmrl's protocol (``prmrl.rewards.http_prm``).

    server = serve_prm("cache/rm/prm-XXXX", port=0)        # a background thread; port 0: any free
    HTTPPRMReward(server.url)(prompts, steps, question=qs)  # what PPOTrainer does with reward.prm_url
    server.close()

Any PRM ``prmrl.rewards.reward_models.load_prm`` loads is served (prmrl's own native PRMs,
Math-Shepherd, Qwen2.5-Math-PRM), rendered in its format here, so a client sends questions and
steps as text. Endpoints: ``POST /score_steps`` (``{"questions": [...], "steps": [[...], ...]}``
-> ``{"scores": [[p | null, ...], ...]}``) and ``GET /health`` (the format, the model and the
limits). Errors are ``{"error": "one line"}``: 400 a malformed body (names the field), 404 another
path, 411 no Content-Length, 413 a body over ``max_request_bytes`` (refused before it is read),
422 a step the format cannot score (e.g. an empty one), 500 scoring failed, 503 the request was
not scored within ``timeout`` seconds of its arrival (the client makes its steps None).

Batching: request threads (``ThreadingHTTPServer``) parse and validate; one scoring thread owns
the model and takes the queued requests in arrival order, merging those waiting into one
``score`` call of at most ``max_batch`` answers (a larger request is scored alone, in chunks of
``max_batch``). Merging changes which answers share a padded batch, which moves scores by float
rounding only (tests/test_rm_scoring.py: padding changes nothing to 1e-5); a client that sends
one request at a time (the trainer) gets the batches a local ``PRMReward`` of the same batch
size would make. A request whose deadline passed before its turn is dropped unscored. The
request body is JSON, parsed with ``json.loads`` and checked field by field; no text from a
request is ever evaluated.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

log = logging.getLogger("prmrl")

DEFAULT_MAX_REQUEST_BYTES = 16 * 2**20
_STOP = object()


class BadRequest(ValueError):
    """A request body that is not what /score_steps takes; the message names the field."""


def parse_score_request(raw: bytes) -> tuple[list[str], list[list[str]]]:
    """``{"questions": [str], "steps": [[str]]}`` (same length) -> (questions, steps)."""
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise BadRequest(f"body is not JSON ({e})") from None
    if not isinstance(body, dict):
        raise BadRequest(f"body: expected an object with 'questions' and 'steps', got {type(body).__name__}")
    unknown = sorted(set(body) - {"questions", "steps"})
    if unknown:
        raise BadRequest(f"unknown field(s) {unknown}; the body has 'questions' and 'steps'")
    questions, steps = body.get("questions"), body.get("steps")
    if not isinstance(questions, list):
        raise BadRequest(f"questions: expected a list of strings, got {type(questions).__name__}")
    if not isinstance(steps, list):
        raise BadRequest(f"steps: expected a list of lists of strings, got {type(steps).__name__}")
    if len(questions) != len(steps):
        raise BadRequest(f"steps: {len(steps)} step lists for {len(questions)} questions")
    for i, q in enumerate(questions):
        if not isinstance(q, str):
            raise BadRequest(f"questions[{i}]: expected a string, got {type(q).__name__}")
    for i, row in enumerate(steps):
        if not isinstance(row, list):
            raise BadRequest(f"steps[{i}]: expected a list of strings, got {type(row).__name__}")
        for k, s in enumerate(row):
            if not isinstance(s, str):
                raise BadRequest(f"steps[{i}][{k}]: expected a string, got {type(s).__name__}")
    return questions, steps


class _Job:
    def __init__(self, questions: list[str], steps: list[list[str]], deadline: float):
        self.questions, self.steps, self.deadline = questions, steps, deadline
        self.done = threading.Event()
        self.abandoned = False
        self.scores: list | None = None
        self.error: tuple[int, str] | None = None


class PRMServer(ThreadingHTTPServer):
    """The HTTP server and its scoring thread. ``url`` is where it listens; ``start()`` serves
    in a background thread, ``close()`` stops; a context manager closes on exit."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], scorer, *, info: dict, max_batch: int,
                 max_request_bytes: int, timeout: float):
        self.scorer, self.info = scorer, info
        self.max_batch, self.max_request_bytes, self.timeout_s = max_batch, max_request_bytes, timeout
        super().__init__(address, _Handler)
        self._queue: queue.Queue = queue.Queue()
        self._lock = threading.Lock()          # the model is used by one thread at a time
        self._worker = threading.Thread(target=self._work, name="prm-scorer", daemon=True)
        self._worker.start()
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{port}"

    def start(self) -> "PRMServer":
        self._thread = threading.Thread(target=self.serve_forever, name="prm-http", daemon=True)
        self._thread.start()
        return self

    def wait(self) -> None:
        """Block until the server stops (Ctrl-C raises KeyboardInterrupt here)."""
        while self._thread is not None and self._thread.is_alive():
            self._thread.join(0.5)

    def close(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            self.shutdown()
        self.server_close()
        self._queue.put(_STOP)

    def __enter__(self) -> "PRMServer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- scoring ------------------------------------------------------------------------------

    def submit(self, questions: list[str], steps: list[list[str]], arrived: float) -> _Job:
        job = _Job(questions, steps, arrived + self.timeout_s)
        self._queue.put(job)
        return job

    def _work(self) -> None:
        carry = None
        while True:
            job = carry if carry is not None else self._queue.get()
            carry = None
            if job is _STOP:
                return
            group, n = [job], len(job.questions)
            while n < self.max_batch:          # merge the requests already waiting
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is _STOP or n + len(nxt.questions) > self.max_batch:
                    carry = nxt
                    break
                group.append(nxt)
                n += len(nxt.questions)
            now = time.monotonic()
            live = []
            for j in group:
                if j.abandoned or now > j.deadline:        # its client was answered 503
                    j.error = (503, "not scored before the server's timeout")
                    j.done.set()
                else:
                    live.append(j)
            if live:
                self._score(live)

    def _score(self, group: list[_Job]) -> None:
        qs = [q for j in group for q in j.questions]
        ss = [s for j in group for s in j.steps]
        try:
            with self._lock:
                scores = self.scorer.score(qs, ss, batch_size=self.max_batch)
        except ValueError as e:
            if len(group) > 1:                 # find the request it belongs to; score the others
                for j in group:
                    self._score([j])
                return
            group[0].error = (422, f"cannot score this input: {_one_line(e)}")
            group[0].done.set()
            return
        except Exception as e:                 # noqa: BLE001 - reported to the client as a 500
            log.exception("PRM server: scoring failed")
            for j in group:
                j.error = (500, f"scoring failed: {type(e).__name__}: {_one_line(e)}")
                j.done.set()
            return
        start = 0
        for j in group:
            j.scores = [list(r) for r in scores[start:start + len(j.questions)]]
            start += len(j.questions)
            j.done.set()


class _Handler(BaseHTTPRequestHandler):
    server: PRMServer
    protocol_version = "HTTP/1.1"
    server_version = "prmrl-serve-prm"

    def setup(self) -> None:
        self.timeout = max(30.0, self.server.timeout_s)     # a client that stops sending mid-body
        super().setup()

    def log_message(self, format: str, *args) -> None:     # noqa: A002 - the base class's name
        log.debug("PRM server %s: " + format, self.address_string(), *args)

    def _reply(self, status: int, body: dict, close: bool = False) -> None:
        data = json.dumps(body, allow_nan=False).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(data)

    def _discard(self, length: int, cap: int = 64 * 2**20) -> None:
        """Read (and drop) up to ``cap`` bytes of a refused body, in chunks, so the client, still
        sending it, reads the refusal instead of a reset connection."""
        left = min(length, cap)
        try:
            while left > 0:
                chunk = self.rfile.read(min(left, 2**16))
                if not chunk:
                    break
                left -= len(chunk)
        except OSError:
            pass

    def _path(self) -> str:
        return self.path.split("?", 1)[0].rstrip("/")

    def do_GET(self) -> None:
        if self._path() == "/health":
            self._reply(200, {"status": "ok", **self.server.info})
        else:
            self._reply(404, {"error": f"no such path {self._path()!r}; GET /health, POST /score_steps"})

    def do_POST(self) -> None:
        arrived = time.monotonic()
        srv = self.server
        if self._path() != "/score_steps":
            return self._reply(404, {"error": f"no such path {self._path()!r}; POST /score_steps"}, close=True)
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            return self._reply(411, {"error": "send the body with a Content-Length, not chunked"}, close=True)
        try:
            length = int(self.headers.get("Content-Length", ""))
            if length < 0:
                raise ValueError
        except ValueError:
            return self._reply(411, {"error": "Content-Length: missing or not a byte count"}, close=True)
        if length > srv.max_request_bytes:
            self._discard(length)
            return self._reply(413, {"error": f"request body of {length} bytes is over the server's limit "
                                              f"of {srv.max_request_bytes} bytes"}, close=True)
        raw = self.rfile.read(length)
        try:
            questions, steps = parse_score_request(raw)
        except BadRequest as e:
            return self._reply(400, {"error": str(e)})
        job = srv.submit(questions, steps, arrived)
        if not job.done.wait(max(0.0, job.deadline - time.monotonic())):
            job.abandoned = True
            return self._reply(503, {"error": f"not scored within the server's timeout of "
                                              f"{srv.timeout_s:g} s"})
        if job.error is not None:
            status, message = job.error
            return self._reply(status, {"error": message})
        try:
            self._reply(200, {"scores": job.scores})
        except ValueError:                       # a NaN or inf score: not JSON
            self._reply(500, {"error": "the PRM returned a non-finite score"})


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split())[:400] or type(e).__name__


def serve_prm(path: str | None = None, fmt: str = "native", host: str = "127.0.0.1", port: int = 8000,
              max_batch: int = 64, max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES, timeout: float = 60.0,
              *, scorer: Any = None, dtype: str = "float32", trust_remote_code: bool = False,
              delimiter: str = "\n", prompt_template: str | None = None, start: bool = True) -> PRMServer:
    """Load the PRM at ``path`` (``fmt``: a name in ``prmrl.rm.formats.PRM_FORMATS``; native
    reads ``delimiter`` and ``prompt_template``, as ``PRMReward`` does) and serve it on
    ``host:port`` (port 0: a free port; ``server.url`` says which), in a background thread
    unless ``start=False``. ``scorer``: an object with ``score(questions, steps, batch_size)``
    to serve instead of a path (tests, a model already loaded)."""
    import math

    if not isinstance(max_batch, int) or max_batch < 1:
        raise ValueError(f"max_batch: {max_batch!r}; must be an integer >= 1")
    if not isinstance(max_request_bytes, int) or max_request_bytes < 1:
        raise ValueError(f"max_request_bytes: {max_request_bytes!r}; must be an integer >= 1")
    if not (isinstance(timeout, (int, float)) and timeout > 0 and math.isfinite(timeout)):
        raise ValueError(f"timeout: {timeout!r}; must be a positive number of seconds")
    if not 0 <= port <= 65535:
        raise ValueError(f"port: {port}; must be in [0, 65535]")
    if (path is None) == (scorer is None):
        raise ValueError("give exactly one of path or scorer")
    if scorer is None:
        import torch

        from prmrl.rewards.reward_models import load_prm

        dtypes = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
        if dtype not in dtypes:
            raise ValueError(f"dtype: {dtype!r} is not one of {list(dtypes)}")
        kwargs: dict[str, Any] = {}
        if fmt == "native":
            kwargs["delimiter"] = delimiter
            if prompt_template is not None:
                kwargs["prompt_template"] = prompt_template
        scorer = load_prm(path, fmt=fmt, dtype=dtypes[dtype], trust_remote_code=trust_remote_code, **kwargs)
    f = getattr(scorer, "fmt", None)
    info: dict[str, Any] = {"format": getattr(f, "name", fmt), "model": str(path) if path is not None
                            else type(scorer).__name__, "max_batch": max_batch,
                            "max_request_bytes": max_request_bytes, "timeout": timeout}
    if info["format"] == "native" and f is not None:
        info.update(delimiter=f.delimiter, prompt_template=f.prompt_template)
    server = PRMServer((host, port), scorer, info=info, max_batch=max_batch,
                       max_request_bytes=max_request_bytes, timeout=float(timeout))
    return server.start() if start else server
