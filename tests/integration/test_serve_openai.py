#!/usr/bin/env python3
"""`lookahead moe serve` driven by the official `openai` Python client (and raw HTTP for the cases a
client library hides): completion, chat, streaming chat, concurrent requests, disconnects, a full
queue, and every error case with its status code and OpenAI error body; then SIGTERM.

Usage: test_serve_openai.py LOOKAHEAD_BINARY   (ctest passes it; LOOKAHEAD_ROOT locates models/)
The servers listen on 127.0.0.1 with --port 0 (the kernel picks a free port; the server prints it).
"""
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import unittest

import openai

BINARY = sys.argv[1] if len(sys.argv) > 1 else "build/release/lookahead"
ROOT = os.environ.get("LOOKAHEAD_ROOT", os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
MODEL = os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
MODEL_ID = "SmolLM2-135M-Instruct.Q4_1"
KEY = "test-key"
CTX = 256


class Server:
    """A `moe serve` child process on a free loopback port."""

    def __init__(self, *extra, ctx=CTX):
        cmd = [BINARY, "moe", "serve", "--model", MODEL, "--port", "0", "--ctx", str(ctx), *extra]
        self.proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
        self.log = []
        deadline = time.time() + 60
        self.port = None
        while self.port is None:
            line = self.proc.stderr.readline()
            if not line:
                raise RuntimeError("server exited before listening: " + "".join(self.log))
            self.log.append(line)
            m = re.search(r"http://127\.0\.0\.1:(\d+)", line)
            if m:
                self.port = int(m.group(1))
            if time.time() > deadline:
                raise RuntimeError("server did not start")
        self.drainer = threading.Thread(target=lambda: self.log.extend(self.proc.stderr), daemon=True)
        self.drainer.start()
        self.base = f"http://127.0.0.1:{self.port}"

    def client(self, key=KEY, **kw):
        return openai.OpenAI(base_url=self.base + "/v1", api_key=key, max_retries=0, timeout=60, **kw)

    def raw(self, method, path, body=None, headers=None):
        """(status, headers, body bytes) of one raw HTTP request."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        h = {"Authorization": "Bearer " + KEY}
        h.update(headers or {})
        conn.request(method, path, body=body, headers=h)
        r = conn.getresponse()
        data = r.read()
        conn.close()
        return r.status, dict(r.getheaders()), data

    def metrics(self):
        status, _, body = self.raw("GET", "/metrics")
        assert status == 200, status
        out = {}
        for line in body.decode().splitlines():
            if line and not line.startswith("#"):
                name, value = line.rsplit(" ", 1)
                out[name] = float(value)
        return out

    def wait_metric(self, name, pred, timeout=15):
        deadline = time.time() + timeout
        while time.time() < deadline:
            m = self.metrics()
            if pred(m.get(name, 0)):
                return m
            time.sleep(0.1)
        raise AssertionError(f"metric {name} never satisfied the condition: {self.metrics()}")

    def stop(self, timeout=30):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout=timeout)
        self.drainer.join(timeout=5)
        return rc


def assert_error(test, status, body, want_status, code=None, param=None):
    test.assertEqual(status, want_status, body)
    j = json.loads(body)
    test.assertEqual(set(j["error"].keys()), {"message", "type", "param", "code"}, j)
    test.assertTrue(j["error"]["message"])
    if code is not None:
        test.assertEqual(j["error"]["code"], code, j)
    if param is not None:
        test.assertEqual(j["error"]["param"], param, j)
    return j["error"]


def assert_api_error(test, exc, want_status, code=None, param=None):
    test.assertEqual(exc.status_code, want_status, exc)
    err = exc.body  # the client hands over the "error" object
    test.assertIsInstance(err, dict, exc)
    test.assertTrue(err.get("message"))
    if code is not None:
        test.assertEqual(err.get("code"), code, err)
    if param is not None:
        test.assertEqual(err.get("param"), param, err)


class ServeOpenAI(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # Two sequences run, one more waits; anything beyond gets 429. Prompts are prefilled 16 tokens
        # per batch, so most chats here take several chunked-prefill steps, and the longest exceed the
        # token budget.
        cls.server = Server("--api-key", KEY, "--max-running", "2", "--max-queue", "1", "--max-body", "65536",
                            "--token-budget", "48", "--prefill-chunk", "16")
        cls.client = cls.server.client()

    @classmethod
    def tearDownClass(cls):
        rc = cls.server.stop()
        assert rc == 0, f"server exit status {rc}: {''.join(cls.server.log)}"

    def test_models(self):
        models = self.client.models.list()
        self.assertEqual([m.id for m in models.data], [MODEL_ID])
        self.assertEqual(self.client.models.retrieve(MODEL_ID).id, MODEL_ID)

    def test_completion(self):
        r = self.client.completions.create(model=MODEL_ID, prompt="The capital of France is", max_tokens=4,
                                           temperature=0)
        self.assertEqual(r.object, "text_completion")
        self.assertEqual(r.model, MODEL_ID)
        self.assertTrue(r.choices[0].text.startswith(" Paris"), r.choices[0].text)
        self.assertEqual(r.choices[0].finish_reason, "length")
        self.assertEqual(r.usage.prompt_tokens, 5)
        self.assertEqual(r.usage.completion_tokens, 4)
        self.assertEqual(r.usage.total_tokens, 9)
        # Token ids in, the same answer out.
        r2 = self.client.completions.create(model=MODEL_ID, prompt=[504, 3575, 282, 4649, 314], max_tokens=4,
                                            temperature=0)
        self.assertEqual(r2.choices[0].text, r.choices[0].text)

    def test_stop_string(self):
        full = self.client.completions.create(model=MODEL_ID, prompt="The capital of France is", max_tokens=8,
                                              temperature=0).choices[0].text
        stop = full[7:10]  # inside the continuation, after " Paris"
        r = self.client.completions.create(model=MODEL_ID, prompt="The capital of France is", max_tokens=8,
                                           temperature=0, stop=[stop])
        self.assertEqual(r.choices[0].text, full[:full.index(stop)])
        self.assertEqual(r.choices[0].finish_reason, "stop")

    def test_seeded_sampling_is_reproducible(self):
        kw = dict(model=MODEL_ID, prompt="Once upon a time", max_tokens=6, temperature=0.9, top_p=0.9, seed=1234,
                  extra_body={"top_k": 40})
        a = self.client.completions.create(**kw).choices[0].text
        b = self.client.completions.create(**kw).choices[0].text
        self.assertEqual(a, b)

    def test_chat_and_streaming_chat_agree(self):
        messages = [{"role": "user", "content": "What is the capital of France?"}]
        r = self.client.chat.completions.create(model=MODEL_ID, messages=messages, max_tokens=8, temperature=0)
        self.assertEqual(r.object, "chat.completion")
        msg = r.choices[0].message
        self.assertEqual(msg.role, "assistant")
        self.assertTrue(msg.content.strip(), msg)
        self.assertIn(r.choices[0].finish_reason, ("stop", "length"))
        self.assertGreater(r.usage.prompt_tokens, 10)
        self.assertGreater(r.usage.completion_tokens, 0)

        stream = self.client.chat.completions.create(model=MODEL_ID, messages=messages, max_tokens=8, temperature=0,
                                                     stream=True, stream_options={"include_usage": True})
        chunks = list(stream)
        self.assertTrue(all(c.object == "chat.completion.chunk" for c in chunks))
        self.assertEqual(chunks[0].choices[0].delta.role, "assistant")
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
        self.assertEqual(text, msg.content)  # greedy: streaming and non-streaming give the same reply
        self.assertEqual(finishes, [r.choices[0].finish_reason])
        self.assertEqual(chunks[-1].choices, [])
        self.assertEqual(chunks[-1].usage.completion_tokens, r.usage.completion_tokens)
        self.assertEqual(chunks[-1].usage.prompt_tokens, r.usage.prompt_tokens)

    def test_prefix_cache_reuses_a_repeated_prompt_and_a_chat_history(self):
        # The same chat again takes all but the last prompt token from the kept KV cache, and the
        # next turn (the history plus a new message) at least the first turn's prompt; the replies
        # are what a full prefill gives.
        messages = [{"role": "system", "content": "You answer in one short sentence about rivers and lakes."},
                    {"role": "user", "content": "Which is the longest river in Europe?"}]
        first = self.client.chat.completions.create(model=MODEL_ID, messages=messages, max_tokens=12, temperature=0)
        again = self.client.chat.completions.create(model=MODEL_ID, messages=messages, max_tokens=12, temperature=0)
        self.assertEqual(again.choices[0].message.content, first.choices[0].message.content)
        self.assertEqual(again.usage.prompt_tokens, first.usage.prompt_tokens)
        self.assertEqual(again.usage.prompt_tokens_details.cached_tokens, first.usage.prompt_tokens - 1)
        turn = messages + [{"role": "assistant", "content": first.choices[0].message.content},
                           {"role": "user", "content": "And in Asia?"}]
        r = self.client.chat.completions.create(model=MODEL_ID, messages=turn, max_tokens=6, temperature=0)
        self.assertGreaterEqual(r.usage.prompt_tokens_details.cached_tokens, first.usage.prompt_tokens)
        self.assertGreaterEqual(self.server.metrics()["lookahead_prompt_tokens_cached_total"],
                                first.usage.prompt_tokens - 1)

    def test_raw_stream_ends_with_done(self):
        status, headers, body = self.server.raw(
            "POST", "/v1/completions",
            json.dumps({"prompt": "Hello", "max_tokens": 3, "temperature": 0, "stream": True}),
            {"Content-Type": "application/json"})
        self.assertEqual(status, 200)
        self.assertTrue(headers.get("Content-Type", "").startswith("text/event-stream"))
        events = [e for e in body.decode().split("\n\n") if e.startswith("data: ")]
        self.assertEqual(events[-1], "data: [DONE]")
        last = json.loads(events[-2][len("data: "):])
        self.assertEqual(last["object"], "text_completion")
        self.assertEqual(last["choices"][0]["finish_reason"], "length")

    def test_concurrent_requests_match_solo_answers(self):
        prompts = ["The capital of France is", "Once upon a time", "My favourite colour is"]
        solo = {p: self.client.completions.create(model=MODEL_ID, prompt=p, max_tokens=5, temperature=0)
                .choices[0].text for p in prompts}
        results, errors = {}, []

        def ask(p):
            try:
                r = self.client.completions.create(model=MODEL_ID, prompt=p, max_tokens=5, temperature=0)
                results[p] = r.choices[0].text
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(e)

        # 3 requests fit 2 running + 1 queued; each sequence has its own KV cache, so the answers
        # are those of the requests alone.
        threads = [threading.Thread(target=ask, args=(p,)) for p in prompts]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(errors, [])
        self.assertEqual(results, solo)

    def test_queue_full_429_and_disconnect_cancels(self):
        before = self.server.metrics()
        streams = []
        for i in range(3):  # fills 2 running sequences and the 1 queue place
            streams.append(self.client.completions.create(model=MODEL_ID, prompt=f"Count to a hundred: {i}",
                                                          max_tokens=200, temperature=0, stream=True))
        next(iter(streams[0]))  # the first is generating
        t0 = time.time()
        with self.assertRaises(openai.RateLimitError) as cm:
            self.client.completions.create(model=MODEL_ID, prompt="one more", max_tokens=2)
        self.assertLess(time.time() - t0, 2.0)  # refused at once, not after waiting
        assert_api_error(self, cm.exception, 429, code="queue_full")
        # Clients that leave mid-stream get their requests cancelled and their KV caches freed.
        for s in streams:
            s.close()
        m = self.server.wait_metric("lookahead_running_sequences", lambda v: v == 0)
        self.server.wait_metric("lookahead_waiting_requests", lambda v: v == 0)
        cancelled = 'lookahead_requests_finished_total{reason="cancelled"}'
        self.server.wait_metric(cancelled, lambda v: v >= before.get(cancelled, 0) + 3)
        self.assertGreaterEqual(m['lookahead_requests_rejected_total{reason="queue_full"}'], 1)
        self.assertGreaterEqual(m['lookahead_http_responses_total{code="429"}'], 1)

    def test_auth(self):
        with self.assertRaises(openai.AuthenticationError) as cm:
            self.server.client(key="wrong").models.list()
        assert_api_error(self, cm.exception, 401, code="invalid_api_key")
        status, _, body = self.server.raw("GET", "/v1/models", headers={"Authorization": ""})
        assert_error(self, status, body, 401, code="invalid_api_key")
        # The chat page and the health check stay open.
        status, headers, body = self.server.raw("GET", "/", headers={"Authorization": ""})
        self.assertEqual(status, 200)
        self.assertTrue(headers["Content-Type"].startswith("text/html"))
        self.assertIn(b"/v1/chat/completions", body)
        self.assertIn(b"getReader", body)  # it streams
        status, _, body = self.server.raw("GET", "/health", headers={"Authorization": ""})
        self.assertEqual((status, json.loads(body)), (200, {"status": "ok"}))

    def test_bad_requests_with_the_client(self):
        with self.assertRaises(openai.NotFoundError) as cm:
            self.client.completions.create(model="gpt-4", prompt="hi", max_tokens=2)
        assert_api_error(self, cm.exception, 404, code="model_not_found", param="model")
        with self.assertRaises(openai.BadRequestError) as cm:
            self.client.completions.create(model=MODEL_ID, prompt="hi", max_tokens=CTX)
        assert_api_error(self, cm.exception, 400, code="context_length_exceeded", param="max_tokens")
        with self.assertRaises(openai.BadRequestError) as cm:
            self.client.chat.completions.create(model=MODEL_ID, messages=[{"role": "user", "content": "hi"}],
                                                temperature="hot")
        assert_api_error(self, cm.exception, 400, code="invalid_type", param="temperature")
        with self.assertRaises(openai.BadRequestError) as cm:
            self.client.chat.completions.create(model=MODEL_ID, messages=[{"role": "user", "content": "hi"}], n=2)
        assert_api_error(self, cm.exception, 400, param="n")
        with self.assertRaises(openai.BadRequestError) as cm:
            self.client.chat.completions.create(model=MODEL_ID, messages=[{"role": "robot", "content": "hi"}])
        assert_api_error(self, cm.exception, 400, param="messages[0].role")

    def test_bad_requests_raw(self):
        post = lambda path, body: self.server.raw("POST", path, body, {"Content-Type": "application/json"})
        assert_error(self, *post("/v1/chat/completions", "{not json")[::2], 400, code="invalid_json")
        assert_error(self, *post("/v1/completions", "[1, 2]")[::2], 400)
        assert_error(self, *post("/v1/completions", json.dumps({"prompt": "hi", "max_tokens": "5"}))[::2], 400,
                     code="invalid_type", param="max_tokens")
        assert_error(self, *post("/v1/completions", json.dumps({"max_tokens": 5}))[::2], 400, param="prompt")
        assert_error(self, *post("/v1/chat/completions", json.dumps({"messages": []}))[::2], 400, param="messages")
        status, _, body = post("/v1/completions", json.dumps({"prompt": "x" * 70000}))
        assert_error(self, status, body, 413, code="request_too_large")
        assert_error(self, *self.server.raw("GET", "/v1/nope")[::2], 404, code="unknown_url")
        assert_error(self, *post("/v1/embeddings", "{}")[::2], 404, code="unknown_url")
        assert_error(self, *self.server.raw("GET", "/v1/models/nope")[::2], 404, code="model_not_found")

    def test_metrics_text(self):
        status, headers, body = self.server.raw("GET", "/metrics")
        self.assertEqual(status, 200)
        self.assertTrue(headers["Content-Type"].startswith("text/plain"))
        text = body.decode()
        for name in ("lookahead_requests_accepted_total", "lookahead_requests_rejected_total",
                     "lookahead_requests_finished_total", "lookahead_waiting_requests", "lookahead_running_sequences",
                     "lookahead_batch_tokens", "lookahead_generated_tokens_per_second",
                     "lookahead_expert_cache_hit_ratio",
                     "lookahead_slow_tier_bytes_total"):
            self.assertIn(f"# TYPE {name} ", text)


class ServeShutdown(unittest.TestCase):
    def test_sigterm_finishes_short_requests_cancels_long_ones_and_exits_0(self):
        # A long context so the long request cannot finish within the grace period on a fast machine.
        server = Server("--max-running", "2", "--drain-timeout", "8", ctx=2048)
        client = server.client()
        short = client.chat.completions.create(model=MODEL_ID, messages=[{"role": "user", "content": "Hi"}],
                                               max_tokens=3, temperature=0, stream=True)
        long = client.completions.create(model=MODEL_ID, prompt="Count: 1, 2, 3,", max_tokens=2000,
                                         temperature=0, stream=True)
        short_iter, long_iter = iter(short), iter(long)
        next(long_iter)
        while not next(short_iter).choices[0].delta.content:  # past the role chunk: generating
            pass
        server.proc.send_signal(signal.SIGTERM)
        # In flight: the short request finishes normally ...
        rest = list(short_iter)
        self.assertTrue(any(c.choices and c.choices[0].finish_reason for c in rest))
        # ... new requests are refused while draining ...
        with self.assertRaises(openai.InternalServerError) as cm:
            client.completions.create(model=MODEL_ID, prompt="late", max_tokens=2)
        assert_api_error(self, cm.exception, 503, code="server_shutting_down")
        # ... and the long one is cancelled when the grace period ends, with an error event.
        with self.assertRaises(openai.APIError) as cm:
            for _ in long_iter:
                pass
        self.assertIn("shutting down", str(cm.exception))
        self.assertEqual(server.proc.wait(timeout=30), 0, "".join(server.log))
        self.assertTrue(any("SIGTERM" in line for line in server.log), server.log)


if __name__ == "__main__":
    if not os.path.exists(MODEL):
        print(f"skipped: {MODEL} missing (run scripts/setup)")
        sys.exit(0)
    unittest.main(argv=[sys.argv[0], "-v", *sys.argv[2:]])
