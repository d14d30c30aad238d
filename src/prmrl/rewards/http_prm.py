"""A PRM over HTTP: ``HTTPPRMReward`` scores steps through a server instead of a local model.

Same call as :class:`prmrl.rewards.scorers.PRMReward`:
``(prompts, steps, *, question=None, **columns) -> list[list[float | None]]``. Standard library
only (urllib, json). Two protocols:

**prmrl** (``prmrl serve-prm PATH``, ``prmrl.jobs.serve_prm``; the server renders the steps in
its own PRM format, so any PRM prmrl can load is served)::

    POST {url}/score_steps   {"questions": ["q1", ...], "steps": [["s1", "s2"], ...]}
    200                      {"scores": [[0.91, 0.12], ...]}      one list per answer, one entry
                             per step: a probability, or null for a suffix of steps past the
                             PRM's context (as a local PRM gives None)
    4xx / 5xx                {"error": "one line"}   400 malformed request (names the field),
                             411 no Content-Length, 413 body over the server's size limit, 422
                             a step the format cannot score, 500 scoring failed, 503 scoring
                             took longer than the server's timeout
    GET {url}/health         {"status": "ok", "format": "native", "model": PATH, "max_batch": N,
                             "max_request_bytes": N, "timeout": S, "delimiter": "\\n",
                             "prompt_template": "{question}\\n"}   (the last two: native only)

Before its first request the client reads ``/health`` and refuses a server whose format (and,
native, whose delimiter or prompt template) differs from its own: the server's PRM would
otherwise read other text than a local one.

**vllm** (vLLM's OpenAI-compatible server running a process reward model with the STEP pooler,
``vllm serve MODEL --runner pooling`` / ``--task reward``; for Math-Shepherd with
``--pooler-config '{"pooling_type": "STEP", "step_tag_id": <id of "ки">, "returned_token_ids":
[<id of "+">, <id of "-">]}'``). Written from these shapes, not from a running vLLM:

* request (``vllm/entrypoints/pooling/base/protocol.py``: ``PoolingBasicRequestMixin`` (model),
  ``CompletionRequestMixin`` (input: str | list[str], add_special_tokens), ``ChatRequestMixin``
  (messages), ``EncodingRequestMixin`` (encoding_format "float"); the endpoint ``POST /pooling``
  from ``examples/pooling/pooling/openai_pooling_client.py``, which posts
  ``{"model": m, "input": "text"}`` and ``{"model": m, "messages": [...]}``);
* response (``vllm/entrypoints/pooling/pooling/protocol.py``: ``PoolingResponse`` =
  ``{"id", "object": "list", "created", "model", "data": [PoolingResponseData], "usage"}``,
  ``PoolingResponseData`` = ``{"index": i, "object": "pooling", "data": list[list[float]]}``);
* what ``data`` holds for a PRM (``vllm/model_executor/layers/pooler/tokwise/methods.py``,
  ``StepPool``: the rows of the positions whose token is ``step_tag_id``, each restricted to
  ``returned_token_ids`` when set, then softmaxed; ``vllm/model_executor/models/qwen2_rm.py``:
  Qwen2ForProcessRewardModel has 2 labels and the STEP pooler on ``<extra_0>``; docs
  "Supported Models", "Process Reward Models", for the Math-Shepherd ``--pooler-config``).

So each input answers one row ``[p_0, p_1]`` per step token, in the order of the steps; the
step's score is ``row[positive_index]``: 1 for qwen_prm (class 1 is "right", as the model card
reads it), 0 for math_shepherd with ``returned_token_ids`` listed ``[+, -]`` as above. The text
is rendered as the local format renders it (``prmrl.rm.formats``): math_shepherd by
``MathShepherdFormat.text`` (``"question s1 ки\\ns2 ки"``, sent as ``input``); qwen_prm as chat
``messages`` (system, user question, assistant ``"s1<extra_0>s2<extra_0>"``, one request per
answer: vLLM applies the model's chat template), or, given ``tokenizer=``, rendered here by
``QwenPRMFormat.text`` and sent in batches as ``input`` with ``add_special_tokens: false``.
A response with another number of rows than the answer has steps (a step token merged with
the text before it, or one in the question) is malformed for that answer: its steps are None,
never misaligned. prmrl's native PRMs are not vLLM models: serve them with ``prmrl serve-prm``.

**Failures**: a timeout (``timeout`` seconds to connect and for each wait on the server), a
connection error, a 5xx or a malformed response makes the affected answers' steps None (the
trainer counts them in ``unscorable/prm_steps``; never 0), with one warning per kind of failure
naming the URL (``failures`` counts the answers per kind). A 4xx (a request too large, a
malformed one, an input the format cannot score) raises :class:`PRMServerError` naming the URL
and the status: it would fail again on every batch.
"""

from __future__ import annotations

import http.client
import json
import logging
import math
import socket
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace
from typing import Any, Sequence

PROTOCOLS = ("prmrl", "vllm")
VLLM_FORMATS = {"qwen_prm": 1, "math_shepherd": 0}   # format -> default positive_index
SCORE_PATH = "/score_steps"
HEALTH_PATH = "/health"
POOLING_PATH = "/pooling"
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}

log = logging.getLogger("prmrl")


class PRMServerError(ValueError):
    """The PRM server refused a request (4xx; ``status``), or is not the PRM the client expects."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class _Failure(Exception):
    """A failure whose answers score None: ``kind`` groups the warnings (one per kind)."""

    def __init__(self, kind: str, detail: str):
        super().__init__(detail)
        self.kind, self.detail = kind, detail


class HTTPPRMReward:
    """A PRM behind an HTTP server, in the reward-callable convention of ``PRMReward``.

    url: the server's base URL (``http://host:port``). protocol: "prmrl" or "vllm" (module
    docstring). timeout: seconds to connect and for each wait on the server. batch_size:
    answers per request. fmt: the PRM format (``reward.prm_format``): with "prmrl" checked
    against the server's, with "vllm" how the text is rendered (qwen_prm or math_shepherd).
    model: vLLM's served model name (optional). prompt_template / delimiter: the native
    format's, checked against the server's (None: not checked). positive_index: which of a
    step's two outputs is the probability of a right step (default per format). tokenizer: a
    tokenizer (or its path) to render qwen_prm's chat template here and batch the requests.
    step_tag, system: the Math-Shepherd tag and the Qwen system prompt (the formats' defaults).
    concurrency: qwen_prm chat requests in flight at once.
    """

    def __init__(self, url: str, protocol: str = "prmrl", timeout: float = 30.0, batch_size: int = 64,
                 fmt: str = "native", model: str | None = None, prompt_template: str | None = None,
                 delimiter: str | None = "\n", positive_index: int | None = None, tokenizer=None,
                 step_tag: str = "ки", system: str | None = None, concurrency: int = 8):
        if protocol not in PROTOCOLS:
            raise ValueError(f"protocol: {protocol!r} is not one of {list(PROTOCOLS)}")
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError(f"url: {url!r} is not an http(s) URL (e.g. http://127.0.0.1:8000)")
        if not (timeout > 0 and math.isfinite(timeout)):
            raise ValueError(f"timeout: {timeout!r}; must be a positive number of seconds")
        if batch_size < 1 or concurrency < 1:
            raise ValueError(f"batch_size ({batch_size}) and concurrency ({concurrency}) must be >= 1")
        if protocol == "vllm" and fmt not in VLLM_FORMATS:
            raise ValueError(f"fmt: {fmt!r} cannot be scored by a vLLM server; the vllm protocol "
                             f"reads {sorted(VLLM_FORMATS)} (serve a native PRM with `prmrl serve-prm`)")
        self.url = url.rstrip("/")
        for suffix in (SCORE_PATH, POOLING_PATH):          # a full endpoint URL is accepted too
            if self.url.endswith(suffix):
                self.url = self.url[: -len(suffix)]
        self.protocol, self.timeout, self.batch_size, self.fmt = protocol, float(timeout), batch_size, fmt
        self.model, self.prompt_template, self.delimiter = model, prompt_template, delimiter
        self.positive_index = VLLM_FORMATS.get(fmt, 1) if positive_index is None else positive_index
        self.step_tag, self.concurrency = step_tag, concurrency
        self._system = system
        self._qwen = None
        if tokenizer is not None and protocol == "vllm" and fmt == "qwen_prm":
            self._qwen = self._qwen_format(tokenizer, system)
        self.failures: dict[str, int] = {}
        self._warned: set[str] = set()
        self._checked = protocol != "prmrl"
        host = parsed.hostname or ""
        # A proxy from the environment must not catch a server on this machine.
        self._opener = (urllib.request.build_opener(urllib.request.ProxyHandler({}))
                        if host in _LOOPBACK else urllib.request.build_opener())

    def __repr__(self) -> str:
        return f"HTTPPRMReward({self.url!r}, protocol={self.protocol!r}, fmt={self.fmt!r})"

    # ---- the reward callable --------------------------------------------------------------------

    def __call__(self, prompts: Sequence[str], steps: Sequence[list[str]], *,
                 question: Sequence[str] | None = None, **_: Any) -> list[list[float | None]]:
        questions = list(question) if question is not None else list(prompts)
        steps = [list(s) for s in steps]
        if len(questions) != len(steps):
            raise ValueError(f"{len(questions)} questions but {len(steps)} step lists")
        out: list[list[float | None]] = [[] for _ in steps]     # an answer without steps: []
        todo = [i for i, s in enumerate(steps) if s]
        if self.protocol == "vllm" and self.fmt == "qwen_prm" and self._qwen is None:
            rows = self._each_answer([questions[i] for i in todo], [steps[i] for i in todo])
            for i, row in zip(todo, rows):
                out[i] = row
            return out
        for start in range(0, len(todo), self.batch_size):
            idx = todo[start:start + self.batch_size]
            qs, ss = [questions[i] for i in idx], [steps[i] for i in idx]
            try:
                rows = self._score_prmrl(qs, ss) if self.protocol == "prmrl" else self._score_inputs(qs, ss)
            except _Failure as f:
                rows = [self._failed(f, s) for s in ss]
            for i, row in zip(idx, rows):
                out[i] = row
        return out

    # ---- prmrl protocol -------------------------------------------------------------------------

    def _score_prmrl(self, questions: list[str], steps: list[list[str]]) -> list[list[float | None]]:
        if not self._checked:
            self._check_server()
        body = self._post(SCORE_PATH, {"questions": questions, "steps": steps})
        scores = body.get("scores") if isinstance(body, dict) else None
        if not isinstance(scores, list) or len(scores) != len(steps):
            got = f"{len(scores)} rows" if isinstance(scores, list) else "no 'scores' list"
            raise _Failure("malformed response", f"expected 'scores' with {len(steps)} rows, got {got}")
        rows = []
        for row, s in zip(scores, steps):
            try:
                rows.append(_prmrl_row(row, len(s)))
            except _Failure as f:
                rows.append(self._failed(f, s))
        return rows

    def _check_server(self) -> None:
        """The server's format (and native delimiter / template) against the client's; a
        server that cannot be reached is checked at the next call."""
        try:
            info = self._request("GET", HEALTH_PATH, None)
        except PRMServerError as e:
            if e.status != 404:
                raise
            info = {}                      # a server without /health: nothing to check
        if not isinstance(info, dict):
            raise _Failure("malformed response", f"{HEALTH_PATH} did not return a JSON object")
        fmt = info.get("format")
        if fmt is not None and fmt != self.fmt:
            raise PRMServerError(f"PRM server {self.url} scores in format {fmt!r} but this run reads "
                                 f"{self.fmt!r} (set reward.prm_format={fmt})")
        if fmt == "native":
            for key, mine in (("delimiter", self.delimiter), ("prompt_template", self.prompt_template)):
                theirs = info.get(key)
                if mine is not None and theirs is not None and theirs != mine:
                    raise PRMServerError(f"PRM server {self.url} reads steps with {key} {theirs!r}, this "
                                         f"run splits them with {mine!r}; start the server with the "
                                         f"run's {key}")
        self._checked = True

    # ---- vllm protocol --------------------------------------------------------------------------

    def _score_inputs(self, questions: list[str], steps: list[list[str]]) -> list[list[float | None]]:
        texts = [self._render(q, s) for q, s in zip(questions, steps)]
        req: dict[str, Any] = {"input": texts, "encoding_format": "float"}
        if self._qwen is not None:
            req["add_special_tokens"] = False      # the chat template writes its own tokens
        if self.model is not None:
            req["model"] = self.model
        items = _pooling_items(self._post(POOLING_PATH, req), len(texts))
        rows = []
        for item, s in zip(items, steps):
            try:
                rows.append(self._vllm_row(item, len(s)))
            except _Failure as f:
                rows.append(self._failed(f, s))
        return rows

    def _each_answer(self, questions: list[str], steps: list[list[str]]) -> list[list[float | None]]:
        """qwen_prm without a tokenizer: one chat request per answer, ``concurrency`` at once."""
        def one(q_s):
            q, s = q_s
            req: dict[str, Any] = {"messages": self._messages(q, s), "encoding_format": "float"}
            if self.model is not None:
                req["model"] = self.model
            try:
                (item,) = _pooling_items(self._post(POOLING_PATH, req), 1)
                return self._vllm_row(item, len(s))
            except _Failure as f:
                return f

        if not questions:
            return []
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(questions))) as pool:
            results = list(pool.map(one, zip(questions, steps)))
        return [self._failed(r, s) if isinstance(r, _Failure) else r for r, s in zip(results, steps)]

    def _vllm_row(self, item, n_steps: int) -> list[float]:
        rows = item.get("data") if isinstance(item, dict) else None
        if not isinstance(rows, list):
            raise _Failure("malformed response", "an item without a 'data' list (encoding_format "
                           "'float' expected)")
        if len(rows) != n_steps:
            raise _Failure("step count mismatch", f"{len(rows)} step rows for an answer of {n_steps} "
                           f"steps (a step token merged with the text before it, or one in the question)")
        out = []
        for r in rows:
            if not (isinstance(r, list) and len(r) == 2 and all(_is_number(x) for x in r)):
                raise _Failure("malformed response", f"a step row {str(r)[:80]} is not two numbers "
                               f"(Math-Shepherd: set returned_token_ids to the ids of '+' and '-')")
            out.append(float(r[self.positive_index]))
        return out

    def _render(self, question: str, steps: list[str]) -> str:
        if self.fmt == "math_shepherd":
            from prmrl.rm.formats import MathShepherdFormat

            # The format's own text method (it reads only the tag): the text a local scorer sees.
            return MathShepherdFormat.text(SimpleNamespace(tag=self.step_tag), question, steps)
        return self._qwen.text(question, steps)

    def _messages(self, question: str, steps: list[str]) -> list[dict]:
        """QwenPRMFormat.text's conversation (which it renders with the chat template)."""
        from prmrl.rm.formats import QWEN_MATH_SYSTEM

        return [{"role": "system", "content": self._system if self._system is not None else QWEN_MATH_SYSTEM},
                {"role": "user", "content": question},
                {"role": "assistant", "content": "".join(s + "<extra_0>" for s in steps)}]

    @staticmethod
    def _qwen_format(tokenizer, system):
        from prmrl.rm.formats import QwenPRMFormat

        if isinstance(tokenizer, str):
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(tokenizer)
        return QwenPRMFormat(tokenizer, **({} if system is None else {"system": system}))

    # ---- transport ------------------------------------------------------------------------------

    def _post(self, path: str, payload: dict) -> Any:
        return self._request("POST", path, json.dumps(payload, allow_nan=False).encode("utf-8"))

    def _request(self, method: str, path: str, data: bytes | None) -> Any:
        where = self.url + path
        req = urllib.request.Request(where, data=data, method=method,
                                     headers={"Content-Type": "application/json", "Accept": "application/json"})
        try:
            with self._opener.open(req, timeout=self.timeout) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as e:
            msg = _error_message(e)
            if 400 <= e.code < 500:
                hint = (" (lower the answers per request, or raise the server's --max-request-mb)"
                        if e.code == 413 else "")
                raise PRMServerError(f"PRM server {where}: HTTP {e.code} {e.reason}: {msg}{hint}",
                                     status=e.code) from None
            raise _Failure(f"HTTP {e.code}", msg) from None
        except urllib.error.URLError as e:
            if isinstance(e.reason, (TimeoutError, socket.timeout)):
                raise _Failure("timeout", f"no answer within {self.timeout:g} s") from None
            raise _Failure("connection error", str(e.reason)) from None
        except (TimeoutError, socket.timeout):
            raise _Failure("timeout", f"no answer within {self.timeout:g} s") from None
        except (OSError, http.client.HTTPException) as e:
            raise _Failure("connection error", f"{type(e).__name__}: {e}") from None
        try:
            return json.loads(raw)
        except ValueError:
            raise _Failure("malformed response", f"not JSON: {raw[:80]!r}") from None

    def _failed(self, f: _Failure, steps: list[str]) -> list[None]:
        """None for every step of an answer hit by ``f``; the first failure of a kind warns."""
        self.failures[f.kind] = self.failures.get(f.kind, 0) + 1
        if f.kind not in self._warned:
            self._warned.add(f.kind)
            log.warning("PRM server %s: %s (%s); the steps of the answers it hits are unscorable "
                        "(None, counted in unscorable/prm_steps); warned once per kind of failure",
                        self.url, f.kind, f.detail)
        return [None] * len(steps)


def _is_number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _prmrl_row(row, n_steps: int) -> list[float | None]:
    """One row of a prmrl response: n_steps numbers, None only for a suffix."""
    if not isinstance(row, list) or len(row) != n_steps:
        got = f"{len(row)} scores" if isinstance(row, list) else type(row).__name__
        raise _Failure("malformed response", f"{got} for an answer of {n_steps} steps")
    if not all(x is None or _is_number(x) for x in row):
        raise _Failure("malformed response", f"a score that is neither a finite number nor null: {row}")
    n = sum(x is not None for x in row)
    if any(x is None for x in row[:n]):
        raise _Failure("malformed response", f"null before a scored step: {row}")
    return [None if x is None else float(x) for x in row]


def _pooling_items(body, n: int) -> list:
    """The ``data`` items of a vLLM PoolingResponse, in input order (by ``index``)."""
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, list) or len(data) != n:
        got = f"{len(data)} items" if isinstance(data, list) else "no 'data' list"
        raise _Failure("malformed response", f"expected 'data' with {n} items, got {got}")
    by_index = {}
    for pos, item in enumerate(data):
        i = item.get("index", pos) if isinstance(item, dict) else None
        if not isinstance(i, int) or isinstance(i, bool) or not 0 <= i < n or i in by_index:
            raise _Failure("malformed response", f"item {pos} has index {i!r} (0..{n - 1}, each once)")
        by_index[i] = item
    return [by_index[i] for i in range(n)]


def _error_message(e: urllib.error.HTTPError) -> str:
    """The server's one-line error: ``{"error": ...}`` (prmrl), ``{"error": {"message"}}`` or
    ``{"message": ...}`` (vLLM), else the start of the body."""
    try:
        raw = e.read()
    except Exception:
        return str(e.reason)
    try:
        body = json.loads(raw)
    except ValueError:
        return raw[:200].decode("utf-8", "replace").strip() or str(e.reason)
    if isinstance(body, dict):
        err = body.get("error", body.get("message"))
        if isinstance(err, dict):
            err = err.get("message", err)
        if err is not None:
            return " ".join(str(err).split())[:400]
    return str(body)[:200]
