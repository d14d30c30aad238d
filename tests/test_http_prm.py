"""A PRM over HTTP: `prmrl serve-prm`'s server against local scoring, its limits and errors, the
client's timeouts and failures (None, counted, never 0), a fake vLLM pooling server built from
vLLM's documented request and response shapes, and a PPO run with the PRM local vs served."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import torch
from transformers import AutoModelForTokenClassification

from prmrl import ConfigError, PPOConfig, PPOTrainer, RewardConfig, Task
from prmrl.config import load_config
from prmrl.jobs.serve_prm import serve_prm
from prmrl.models.factory import build_tiny_policy, save_model, tiny_llama_config
from prmrl.models.tokenizer import build_char_tokenizer
from prmrl.rewards.http_prm import HTTPPRMReward, PRMServerError
from prmrl.rewards.scorers import PRMReward
from prmrl.rm.formats import QWEN_MATH_SYSTEM, QwenPRMFormat
from prmrl.tasks import arith

QUESTIONS = ["12+30=?", "7*6=?", "5-9=?", "1+1=?", "3*3=?"]
STEPS = [
    ["12+30 = 42.", "So 42.", "The answer is 42"],
    ["7*6 = 42", "Answer: 42"],
    ["5-9 = -4. Check: -4+9 = 5. Good.", "x", "The answer is -4", "Done."],
    [],
    ["3*3 = 9"],
]
SMALL = dict(iterations=2, prompts_per_iteration=2, samples_per_prompt=2, max_new_tokens=12, minibatch_size=4)


@pytest.fixture(scope="module")
def prm_path(tmp_path_factory):
    """A tiny native PRM (a scalar head with large weights, so scores vary) and its tokenizer."""
    tok = build_char_tokenizer()
    cfg = tiny_llama_config(tok, hidden=32, layers=2, heads=2, intermediate=64)
    cfg.num_labels = 1
    torch.manual_seed(0)
    model = AutoModelForTokenClassification.from_config(cfg)
    torch.nn.init.normal_(model.score.weight, std=1.0)
    path = tmp_path_factory.mktemp("prm") / "prm"
    save_model(model, tok, path)
    return path


@pytest.fixture(scope="module")
def server(prm_path):
    with serve_prm(str(prm_path), port=0, max_batch=2) as srv:
        yield srv


def _post(url: str, body: bytes, headers: dict | None = None) -> tuple[int, dict]:
    req = urllib.request.Request(url, data=body, method="POST",
                                 headers={"Content-Type": "application/json", **(headers or {})})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


# ---- prmrl protocol: the server against local scoring ------------------------------------------

def test_served_scores_equal_local_scores(prm_path, server):
    local = PRMReward(str(prm_path))(QUESTIONS, STEPS)
    remote = HTTPPRMReward(server.url, batch_size=3)(["prompt"] * 5, STEPS, question=QUESTIONS)
    assert [len(r) for r in remote] == [3, 2, 4, 0, 1]
    assert len({round(x, 4) for r in local for x in r}) > 5          # the scores really vary
    for a, b in zip(remote, local):
        assert a == pytest.approx(b, abs=1e-5)


def test_concurrent_requests_are_merged_and_each_gets_its_own_rows(prm_path, server):
    local = PRMReward(str(prm_path))(QUESTIONS, STEPS)
    client = HTTPPRMReward(server.url, batch_size=1)
    out: dict[int, list] = {}

    def one(i):
        out[i] = client([QUESTIONS[i]], [STEPS[i]])[0]

    threads = [threading.Thread(target=one, args=(i,)) for i in range(5) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(5):
        assert out[i] == pytest.approx(local[i], abs=1e-5)


def test_health_reports_format_and_limits(server):
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(server.url + "/health", timeout=10) as r:
        info = json.loads(r.read())
    assert info["status"] == "ok" and info["format"] == "native" and info["max_batch"] == 2
    assert info["delimiter"] == "\n" and info["prompt_template"] == "{question}\n"


def test_a_client_of_another_format_or_delimiter_is_refused(server):
    with pytest.raises(PRMServerError, match="reward.prm_format=native"):
        HTTPPRMReward(server.url, fmt="qwen_prm")(QUESTIONS[:1], STEPS[:1])
    with pytest.raises(PRMServerError, match="delimiter"):
        HTTPPRMReward(server.url, delimiter="\n\n")(QUESTIONS[:1], STEPS[:1])


# ---- the server's limits and errors --------------------------------------------------------------

def test_oversized_request_is_413_and_a_clear_client_error(prm_path):
    with serve_prm(str(prm_path), port=0, max_request_bytes=300) as srv:
        status, body = _post(srv.url + "/score_steps", json.dumps(
            {"questions": ["q"] * 20, "steps": [["a step of some length"]] * 20}).encode())
        assert status == 413 and "300 bytes" in body["error"]
        with pytest.raises(PRMServerError) as e:
            HTTPPRMReward(srv.url)(["q"] * 20, [["a step of some length"]] * 20)
        assert srv.url in str(e.value) and "413" in str(e.value) and "\n" not in str(e.value)
        # a small request still works on the same server
        assert len(HTTPPRMReward(srv.url)(["q"], [["s"]])[0]) == 1


@pytest.mark.parametrize("body, field", [
    (b"{not json", "not JSON"),
    (b'["q"]', "body"),
    (b'{"questions": "q", "steps": [["s"]]}', "questions"),
    (b'{"questions": ["q"], "steps": [["s"], ["t"]]}', "steps"),
    (b'{"questions": ["q"], "steps": [["s", 3]]}', "steps[0][1]"),
    (b'{"questions": [1], "steps": [["s"]]}', "questions[0]"),
    (b'{"questions": ["q"], "steps": ["s"]}', "steps[0]"),
    (b'{"questions": [], "steps": [], "eval": "x"}', "unknown field"),
])
def test_malformed_requests_are_400_naming_the_field(server, body, field):
    status, out = _post(server.url + "/score_steps", body)
    assert status == 400 and field in out["error"], out


def test_other_errors_are_json_one_liners(server):
    assert _post(server.url + "/nope", b"{}")[0] == 404
    status, out = _post(server.url + "/score_steps", json.dumps({"questions": ["q"], "steps": [["a", ""]]}).encode())
    assert status == 422 and "empty" in out["error"]
    with pytest.raises(PRMServerError, match="422"):          # a client error, not a silent None
        HTTPPRMReward(server.url)(["q"], [["a", ""]])


class SlowScorer:
    def __init__(self, seconds: float):
        self.seconds = seconds

    def score(self, questions, steps, batch_size=8):
        time.sleep(self.seconds)
        return [[0.5] * len(s) for s in steps]


def test_scoring_past_the_server_timeout_is_503_and_none_for_the_client(caplog):
    with serve_prm(scorer=SlowScorer(1.0), port=0, timeout=0.2) as srv:
        status, out = _post(srv.url + "/score_steps", b'{"questions": ["q"], "steps": [["s"]]}')
        assert status == 503 and "timeout" in out["error"]
        client = HTTPPRMReward(srv.url, timeout=5)
        with caplog.at_level(logging.WARNING, logger="prmrl"):
            assert client(QUESTIONS, STEPS) == [[None] * len(s) for s in STEPS]
        assert client.failures == {"HTTP 503": 4}
        assert sum("HTTP 503" in r.message and srv.url in r.message for r in caplog.records) == 1


# ---- the client's failures: None, warned once per kind, counted by the trainer ------------------

class _Fake(BaseHTTPRequestHandler):
    """A prmrl- or vLLM-protocol server whose behaviour the test sets on the server object."""

    def log_message(self, *a):
        pass

    def do_GET(self):
        self._send(*self.server.respond("GET", self.path, None))

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append((self.path, body))
        self._send(*self.server.respond("POST", self.path, body))

    def _send(self, status, payload):
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class FakeServer:
    def __init__(self, respond):
        self.srv = ThreadingHTTPServer(("127.0.0.1", 0), _Fake)
        self.srv.daemon_threads = True
        self.srv.respond, self.srv.requests = respond, []
        self.url = f"http://127.0.0.1:{self.srv.server_address[1]}"
        self.requests = self.srv.requests
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.srv.shutdown()
        self.srv.server_close()


def _sleepy(seconds):
    def respond(method, path, body):
        if method == "GET":
            return 404, {"error": "no health"}
        time.sleep(seconds)
        return 200, {"scores": [[0.5] * len(s) for s in body["steps"]]}
    return respond


def test_a_server_slower_than_the_client_timeout_gives_none_not_zero(caplog):
    with FakeServer(_sleepy(1.0)) as fake, caplog.at_level(logging.WARNING, logger="prmrl"):
        client = HTTPPRMReward(fake.url, timeout=0.2)
        t0 = time.monotonic()
        for _ in range(2):
            assert client(QUESTIONS, STEPS) == [[None] * len(s) for s in STEPS]
        assert time.monotonic() - t0 < 2.0
    assert client.failures == {"timeout": 8}
    assert sum("timeout" in r.message for r in caplog.records) == 1      # once per kind


@pytest.mark.parametrize("respond, kind", [
    (lambda m, p, b: (500, {"error": "boom"}), "HTTP 500"),
    (lambda m, p, b: (200, b"<html>") if m == "POST" else (404, {}), "malformed response"),
    (lambda m, p, b: (200, {"scores": [[0.5]]}) if m == "POST" else (404, {}), "malformed response"),
])
def test_5xx_and_malformed_responses_give_none(respond, kind):
    with FakeServer(respond) as fake:
        client = HTTPPRMReward(fake.url)
        assert client(QUESTIONS[:2], STEPS[:2]) == [[None] * 3, [None] * 2]
        assert client.failures == {kind: 2}


def test_a_bad_row_makes_only_its_answer_none():
    rows = {0: [0.9, 0.8, 0.7], 1: [0.6, "x"]}
    with FakeServer(lambda m, p, b: (200, {"scores": [rows[0], rows[1]]}) if m == "POST" else (404, {})) as fake:
        assert HTTPPRMReward(fake.url)(QUESTIONS[:2], STEPS[:2]) == [[0.9, 0.8, 0.7], [None, None]]


def test_nothing_listening_gives_none():
    with FakeServer(_sleepy(0)) as fake:
        url = fake.url
    client = HTTPPRMReward(url, timeout=2)
    assert client(QUESTIONS[:1], STEPS[:1]) == [[None] * 3]
    assert set(client.failures) == {"connection error"}


def test_a_4xx_from_the_server_is_an_error_naming_url_and_status():
    with FakeServer(lambda m, p, b: (404, {}) if m == "GET" else (400, {"error": "bad steps"})) as fake:
        with pytest.raises(PRMServerError) as e:
            HTTPPRMReward(fake.url)(QUESTIONS[:1], STEPS[:1])
    assert f"{fake.url}/score_steps" in str(e.value) and "400" in str(e.value) and "bad steps" in str(e.value)


def task() -> Task:
    qs = [f"Start with {a}. (a) 2 more." for a in range(6)]
    return Task(name="arith", train_questions=qs, train_golds=[str(a + 2) for a in range(6)],
                test_questions=[], test_golds=[], prompt=arith.prompt,
                grade_batch=lambda rs, gs: [arith.grade(r, g) for r, g in zip(rs, gs)], delimiter="\n")


@pytest.fixture(scope="module")
def policy(tmp_path_factory):
    model, tok = build_tiny_policy(seed=0, hidden=32, layers=2, heads=2, intermediate=64)
    path = tmp_path_factory.mktemp("policy") / "p"
    save_model(model, tok, path)
    return path


def test_the_trainer_counts_steps_the_server_did_not_score_in_time(policy):
    with FakeServer(_sleepy(1.0)) as fake:
        tr = PPOTrainer(str(policy), task=task(), ppo=PPOConfig(**{**SMALL, "iterations": 1}),
                        reward=RewardConfig(prm_url=fake.url, prm_timeout=0.2, shaping="clip"))
        assert isinstance(tr.scorers["prm"], HTTPPRMReward)
        last = tr.fit()["last"]
    assert last["unscorable/prm_steps"] > 0
    assert set(tr.scorers["prm"].failures) == {"timeout"}


# ---- vLLM protocol: a fake pooling server from vLLM's documented shapes -------------------------
# Request (vllm/entrypoints/pooling/base/protocol.py): {"model"?, "input": str | [str]} or
# {"model"?, "messages": [...]}, "encoding_format": "float"; POST /pooling
# (examples/pooling/pooling/openai_pooling_client.py). Response
# (vllm/entrypoints/pooling/pooling/protocol.py): {"id", "object": "list", "created", "model",
# "data": [{"index", "object": "pooling", "data": [[p0, p1], ...]}], "usage"}; with the STEP
# pooler (pooler/tokwise/methods.py StepPool) one softmaxed row per step-tag token of the input.

def _p(step: str) -> float:
    """The fake PRM's P(right) of a step: from its text, so order mistakes show."""
    return round(0.05 + (sum(map(ord, step)) % 90) / 100, 4)


def _pooling_response(items: list[list[list[float]]], reverse: bool = True) -> dict:
    data = [{"index": i, "object": "pooling", "data": rows} for i, rows in enumerate(items)]
    return {"id": "pool-1", "object": "list", "created": 0, "model": "prm",
            "data": data[::-1] if reverse else data,          # clients must read "index"
            "usage": {"prompt_tokens": 1, "total_tokens": 1, "completion_tokens": 0}}


def _shepherd(method, path, body):
    if path != "/pooling":
        return 404, {"error": {"message": "Not Found"}}
    inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
    items = []
    for text in inputs:          # one row per tag, from the text before it: [P(+), P(-)]
        segments = [seg.lstrip("\n") for seg in text.split(" ки")[:-1]]
        items.append([[_p(seg), 1 - _p(seg)] for seg in segments])
    return 200, _pooling_response(items)


def test_vllm_math_shepherd_sends_the_tagged_text_and_reads_one_score_per_step():
    qs, ss = [QUESTIONS[0], QUESTIONS[1], QUESTIONS[4]], [STEPS[0], STEPS[1], STEPS[4]]
    with FakeServer(_shepherd) as fake:
        client = HTTPPRMReward(fake.url, protocol="vllm", fmt="math_shepherd", model="ms", batch_size=2)
        out = client(qs, ss)
    assert [path for path, _ in fake.requests] == ["/pooling", "/pooling"]       # 2 + 1 answers
    sent = [t for _, b in fake.requests for t in b["input"]]
    assert sent == [f"{q} " + "\n".join(f"{s} ки" for s in st) for q, st in zip(qs, ss)]
    assert sent[0] == "12+30=? 12+30 = 42. ки\nSo 42. ки\nThe answer is 42 ки"
    assert all(b["model"] == "ms" and b["encoding_format"] == "float" for _, b in fake.requests)
    segments = [[f"{q} {st[0]}", *st[1:]] for q, st in zip(qs, ss)]     # the question precedes step 1
    assert out == [[pytest.approx(_p(seg)) for seg in segs] for segs in segments]


def _qwen(method, path, body):
    if path != "/pooling":
        return 404, {"error": {"message": "Not Found"}}
    if "messages" in body:
        steps = body["messages"][-1]["content"].split("<extra_0>")[:-1]
        return 200, _pooling_response([[[1 - _p(s), _p(s)] for s in steps]])
    items = []
    for text in body["input"]:
        steps = text.split("<extra_0>")[:-1]
        steps = [steps[0].split("<|assistant|>")[-1]] + steps[1:]
        items.append([[1 - _p(s), _p(s)] for s in steps])
    return 200, _pooling_response(items)


def test_vllm_qwen_prm_sends_the_chat_with_extra_0_and_reads_class_1():
    qs, ss = QUESTIONS[:3], STEPS[:3]
    with FakeServer(_qwen) as fake:
        out = HTTPPRMReward(fake.url, protocol="vllm", fmt="qwen_prm", concurrency=2)(qs, ss)
        assert out == [[pytest.approx(_p(s)) for s in st] for st in ss]
        msgs = sorted((b["messages"] for _, b in fake.requests), key=lambda m: qs.index(m[1]["content"]))
        assert msgs[0] == [{"role": "system", "content": QWEN_MATH_SYSTEM}, {"role": "user", "content": qs[0]},
                           {"role": "assistant", "content": "12+30 = 42.<extra_0>So 42.<extra_0>The answer is 42<extra_0>"}]
        # The conversation, through the chat template, is the text a local QwenPRMFormat reads;
        # given a tokenizer the client renders it so and batches the answers as "input".
        tok = build_char_tokenizer()
        tok.chat_template = "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
        fmt = QwenPRMFormat(tok)
        for q, st, m in zip(qs, ss, msgs):
            assert tok.apply_chat_template(m, tokenize=False, add_generation_prompt=False) == fmt.text(q, st)
        fake.requests.clear()
        batched = HTTPPRMReward(fake.url, protocol="vllm", fmt="qwen_prm", tokenizer=tok)(qs, ss)
        assert batched == out
        ((_, body),) = fake.requests
        assert body["input"] == [fmt.text(q, st) for q, st in zip(qs, ss)] and body["add_special_tokens"] is False


def test_vllm_rows_that_do_not_match_the_steps_are_none_never_misaligned(caplog):
    def one_row_short(method, path, body):
        return 200, _pooling_response([[[0.1, 0.9]] * (t.count(" ки") - 1) for t in body["input"]])

    with FakeServer(one_row_short) as fake, caplog.at_level(logging.WARNING, logger="prmrl"):
        client = HTTPPRMReward(fake.url, protocol="vllm", fmt="math_shepherd")
        assert client(QUESTIONS[:2], STEPS[:2]) == [[None] * 3, [None] * 2]
    assert client.failures == {"step count mismatch": 2}
    assert any("2 step rows for an answer of 3 steps" in r.message for r in caplog.records)


def test_vllm_protocol_refuses_the_native_format():
    with pytest.raises(ValueError, match="cannot be scored by a vLLM server"):
        HTTPPRMReward("http://127.0.0.1:1", protocol="vllm", fmt="native")


# ---- PPO: the PRM local vs served gives the same run ---------------------------------------------

@pytest.mark.parametrize("shaping", ["none", "clip"])
def test_ppo_with_the_served_prm_equals_the_local_prm(policy, prm_path, shaping):
    def run(reward):
        tr = PPOTrainer(str(policy), task=task(), ppo=PPOConfig(**SMALL), reward=reward, seed=3)
        hist = tr.fit()["history"]
        return tr, [{k: v for k, v in m.items() if not k.startswith(("time", "charts/"))} for m in hist]

    local_tr, local = run(RewardConfig(prm=str(prm_path), shaping=shaping))
    with serve_prm(str(prm_path), port=0) as srv:
        served_tr, served = run(RewardConfig(prm_url=srv.url, shaping=shaping))
    assert isinstance(served_tr.scorers["prm"], HTTPPRMReward)
    # the PRM's scores reach the rewards (so equal runs mean equal scores)
    assert all(m["rollout/step_reward_sum"] != 0 and "rollout/prm_mean_score" in m for m in local)
    assert served == local
    assert served[-1]["unscorable/prm_steps"] == 0
    for a, b in zip(local_tr.actor.state_dict().values(), served_tr.actor.state_dict().values()):
        assert torch.equal(a, b)


# ---- config and CLI -------------------------------------------------------------------------------

def test_config_takes_prm_url_and_refuses_it_with_prm():
    cfg = load_config(overrides=["reward.prm_url=http://127.0.0.1:8000", "reward.shaping=clip_delta"])
    assert cfg.reward.prm_url == "http://127.0.0.1:8000" and cfg.reward.prm_protocol == "prmrl"
    for overrides, msg in [
        (["reward.prm=x", "reward.prm_url=http://h:1"], "reward.prm_url: 'http://h:1' and reward.prm='x' both set"),
        (["reward.prm_url=localhost:8000"], "reward.prm_url: 'localhost:8000' is not an http(s) URL"),
        (["reward.prm_url=http://h:1", "reward.prm_protocol=grpc"], "reward.prm_protocol: 'grpc' is not allowed"),
        (["reward.prm_url=http://h:1", "reward.prm_protocol=vllm"], "reward.prm_format: 'native' cannot be scored"),
        (["reward.prm_url=http://h:1", "reward.prm_timeout=0"], "reward.prm_timeout: 0.0 is out of range"),
    ]:
        with pytest.raises(ConfigError) as e:
            load_config(overrides=overrides)
        assert str(e.value).startswith(msg) and "\n" not in str(e.value), str(e.value)
    assert load_config(overrides=["reward.prm_url=http://h:1", "reward.prm_protocol=vllm",
                                  "reward.prm_format=qwen_prm"]).reward.prm_protocol == "vllm"


def test_trainer_refuses_prm_and_prm_url_together(policy, prm_path):
    with pytest.raises(ValueError, match="both set"):
        PPOTrainer(str(policy), task=task(), reward=RewardConfig(prm=str(prm_path), prm_url="http://127.0.0.1:1"))


def test_cli_serve_prm_prints_its_address_and_serves(prm_path, tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "prmrl.cli", "serve-prm", str(prm_path), "--port", "0",
                             "--max-batch", "4"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=tmp_path)
    try:
        line = proc.stdout.readline()
        m = re.search(r" on (http://127\.0\.0\.1:\d+):", line)
        assert m, (line, proc.stderr.read() if proc.poll() is not None else "")
        url = m.group(1)
        got = HTTPPRMReward(url)(QUESTIONS, STEPS)
        want = PRMReward(str(prm_path))(QUESTIONS, STEPS)
        for a, b in zip(got, want):
            assert a == pytest.approx(b, abs=1e-5)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert not (tmp_path / "runs").exists()          # a server claims no run folder


def test_cli_serve_prm_with_a_missing_path_is_one_line_exit_2(tmp_path):
    r = subprocess.run([sys.executable, "-m", "prmrl.cli", "serve-prm", str(tmp_path / "nope"), "--port", "0"],
                       capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert r.stderr.startswith("prmrl serve-prm: error:")
