#!/usr/bin/env python3
"""`lookahead moe serve` over raw HTTP and the `openai` client: the HTTP-level defects of issue #15
(streaming with stop strings, bodies with curl's form Content-Type, HTTP/1.0 clients, auth scheme,
slow clients, the chat page, /metrics). The API itself is covered by test_serve_openai.py.

Usage: test_serve_http.py LOOKAHEAD_BINARY   (ctest passes it; LOOKAHEAD_ROOT locates models/)
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import unittest

import openai

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_serve_openai as base  # noqa: E402  (the Server harness)

BINARY = base.BINARY
MODEL = base.MODEL
MODEL_ID = base.MODEL_ID
KEY = base.KEY


def sse_events(body):
    """The `data:` payloads of an SSE body, in order."""
    return [e[len("data: "):] for e in body.decode().split("\n\n") if e.startswith("data: ")]


def raw_exchange(port, request, timeout=30):
    """Sends raw request bytes, reads until the server closes; returns (status line, headers, body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(request)
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return lines[0], headers, body


class ServeHttp(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # One model thread: quick and steady on a shared machine.
        cls.server = base.Server("--api-key", KEY, "--max-running", "2", "--max-queue", "4", "--threads", "1")
        cls.client = cls.server.client()

    @classmethod
    def tearDownClass(cls):
        rc = cls.server.stop()
        assert rc == 0, f"server exit status {rc}: {''.join(cls.server.log)}"

    def post_json(self, path, obj, headers=None):
        h = {"Content-Type": "application/json"}
        h.update(headers or {})
        return self.server.raw("POST", path, json.dumps(obj), h)

    # Item 1: text held back for a possible stop string must not end the stream.
    def test_stream_with_stop_ends_with_finish_reason_and_done(self):
        req = {"prompt": "1, 2, 3, 4,", "max_tokens": 30, "temperature": 0, "stop": [" 7"]}
        status, _, body = self.post_json("/v1/completions", req)
        self.assertEqual(status, 200, body)
        whole = json.loads(body)["choices"][0]
        self.assertEqual(whole["finish_reason"], "stop", whole)
        before = self.server.metrics()
        status, _, body = self.post_json("/v1/completions", dict(req, stream=True))
        self.assertEqual(status, 200, body)
        events = sse_events(body)
        self.assertEqual(events[-1], "[DONE]", body)
        chunks = [json.loads(e) for e in events[:-1]]
        self.assertEqual("".join(c["choices"][0]["text"] for c in chunks), whole["text"])
        self.assertEqual([c["choices"][0]["finish_reason"] for c in chunks if c["choices"][0]["finish_reason"]],
                         ["stop"])
        after = self.server.metrics()
        cancelled = 'lookahead_requests_finished_total{reason="cancelled"}'
        self.assertEqual(after.get(cancelled, 0), before.get(cancelled, 0))

    def test_streamed_chat_with_stop_through_the_openai_client(self):
        messages = [{"role": "user", "content": "List three fruits."}]
        kw = dict(model=MODEL_ID, messages=messages, max_tokens=40, temperature=0, stop=["\n2."])
        whole = self.client.chat.completions.create(**kw)
        self.assertEqual(whole.choices[0].finish_reason, "stop")  # "... 1. Banana\n2. Apple ..."
        chunks = list(self.client.chat.completions.create(**kw, stream=True))
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        self.assertEqual(text, whole.choices[0].message.content)
        self.assertEqual(chunks[-1].choices[0].finish_reason, whole.choices[0].finish_reason)

    # Item 2: curl -d @body.json sends Content-Type application/x-www-form-urlencoded; the body is
    # JSON all the same, and the only size limit is --max-body (1 MiB by default).
    def test_large_json_body_with_any_declared_type(self):
        body = json.dumps({"prompt": "Hello", "max_tokens": 2, "temperature": 0, "padding": "x" * 20000})
        self.assertGreater(len(body), 8192)
        for ctype in ("application/x-www-form-urlencoded", "text/plain", None):
            headers = {"Content-Type": ctype} if ctype else {}
            status, _, data = self.server.raw("POST", "/v1/completions", body, headers)
            self.assertEqual(status, 200, (ctype, data))
            self.assertEqual(json.loads(data)["usage"]["completion_tokens"], 2)

    def test_body_over_max_body_is_413_naming_the_limit(self):
        body = json.dumps({"prompt": "Hello", "padding": "x" * (1 << 20)})
        status, _, data = self.server.raw("POST", "/v1/completions", body,
                                          {"Content-Type": "application/x-www-form-urlencoded"})
        err = base.assert_error(self, status, data, 413, code="request_too_large")
        self.assertIn("1048576 bytes", err["message"])
        self.assertIn("--max-body", err["message"])

    def test_chunked_body_over_max_body_is_413(self):
        piece = b"x" * 65536
        with socket.create_connection(("127.0.0.1", self.server.port), timeout=30) as s:
            s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + KEY.encode() +
                      b"\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
            try:
                for _ in range(20):  # 1.25 MiB
                    s.sendall(b"%x\r\n" % len(piece) + piece + b"\r\n")
                s.sendall(b"0\r\n\r\n")
            except OSError:
                pass  # the server may stop reading once it has refused the body
            data = b""
            while True:
                try:
                    chunk = s.recv(65536)
                except OSError:
                    break
                if not chunk:
                    break
                data += chunk
        self.assertTrue(data.startswith(b"HTTP/1.1 413"), data[:200])

    def test_form_that_is_not_json_says_so(self):
        status, _, data = self.server.raw("POST", "/v1/completions", "prompt=Hello&max_tokens=2",
                                          {"Content-Type": "application/x-www-form-urlencoded"})
        err = base.assert_error(self, status, data, 400, code="invalid_json")
        self.assertIn("must be JSON", err["message"])
        self.assertIn("application/x-www-form-urlencoded", err["message"])

    def test_multipart_form_is_415(self):
        boundary = "XyZ"
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"prompt\"\r\n\r\nHello\r\n"
                f"--{boundary}--\r\n")
        status, _, data = self.server.raw("POST", "/v1/completions", body,
                                          {"Content-Type": f"multipart/form-data; boundary={boundary}"})
        err = base.assert_error(self, status, data, 415, code="unsupported_media_type")
        self.assertIn("application/json", err["message"])
        # The connection and the server carry on.
        self.assertEqual(self.server.raw("GET", "/health")[0], 200)

    # Item 13: the auth scheme is case-insensitive; HTTP/1.0 clients get no chunked encoding.
    def test_auth_scheme_is_case_insensitive(self):
        for auth in ("bearer " + KEY, "BEARER " + KEY, "Bearer  " + KEY + " "):
            status, _, body = self.server.raw("GET", "/v1/models", headers={"Authorization": auth})
            self.assertEqual(status, 200, (auth, body))
        for auth in ("Basic " + KEY, "Bearer wrong", "Bearer", "bearer" + KEY):
            status, _, body = self.server.raw("GET", "/v1/models", headers={"Authorization": auth})
            base.assert_error(self, status, body, 401, code="invalid_api_key")

    def test_http_1_0_stream_is_not_chunked(self):
        body = json.dumps({"prompt": "Hello", "max_tokens": 3, "temperature": 0, "stream": True}).encode()
        for extra in (b"", b"Connection: Keep-Alive\r\n"):
            request = (b"POST /v1/completions HTTP/1.0\r\nAuthorization: Bearer " + KEY.encode() +
                       b"\r\nContent-Type: application/json\r\n" + extra +
                       b"Content-Length: %d\r\n\r\n" % len(body) + body)
            status, headers, data = raw_exchange(self.server.port, request)  # read to the server's close
            self.assertIn(" 200 ", status)
            self.assertNotIn("transfer-encoding", headers)
            self.assertTrue(headers["content-type"].startswith("text/event-stream"))
            events = sse_events(data)
            self.assertEqual(events[-1], "[DONE]", data)
            self.assertEqual(json.loads(events[-2])["choices"][0]["finish_reason"], "length")
        # A non-streamed reply has a length.
        body = json.dumps({"prompt": "Hello", "max_tokens": 2, "temperature": 0}).encode()
        status, headers, data = raw_exchange(
            self.server.port, b"POST /v1/completions HTTP/1.0\r\nAuthorization: Bearer " + KEY.encode() +
            b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        self.assertIn(" 200 ", status)
        self.assertEqual(int(headers["content-length"]), len(data))

    # Item 14: every refused request is counted; outcomes apart from admission; latency histograms.
    def test_metrics_count_400s_and_time_requests_in_seconds(self):
        invalid = 'lookahead_requests_rejected_total{reason="invalid"}'
        before = self.server.metrics()
        for body in ("{not json", json.dumps({"prompt": "hi", "max_tokens": "5"}), json.dumps({"max_tokens": 5})):
            status, _, _ = self.server.raw("POST", "/v1/completions", body, {"Content-Type": "application/json"})
            self.assertEqual(status, 400)
        r = self.client.completions.create(model=MODEL_ID, prompt="The capital of France is", max_tokens=4,
                                           temperature=0)
        self.assertEqual(r.usage.completion_tokens, 4)
        after = self.server.metrics()
        self.assertEqual(after[invalid] - before.get(invalid, 0), 3)
        delta = lambda name: after[name] - before.get(name, 0)
        self.assertEqual(delta("lookahead_requests_accepted_total"), 1)
        self.assertEqual(delta('lookahead_requests_finished_total{reason="length"}'), 1)
        self.assertEqual(delta("lookahead_time_to_first_token_seconds_count"), 1)
        self.assertEqual(delta("lookahead_inter_token_latency_seconds_count"), 3)
        self.assertEqual(delta("lookahead_request_duration_seconds_count"), 1)
        self.assertEqual(delta('lookahead_request_duration_seconds_bucket{le="+Inf"}'), 1)
        self.assertGreater(delta("lookahead_request_duration_seconds_sum"), 0)
        self.assertGreaterEqual(delta("lookahead_request_duration_seconds_sum"),
                                delta("lookahead_time_to_first_token_seconds_sum"))
        self.assertFalse(any('status="accepted"' in name for name in after), "admission mixed with outcomes")
        _, headers, text = self.server.raw("GET", "/metrics")
        self.assertIn("# TYPE lookahead_time_to_first_token_seconds histogram", text.decode())

    # Item 12: the chat page, driven by node (tests/integration/chat_page_driver.js) against this server.
    def test_chat_page_errors_links_and_long_conversations(self):
        node = shutil.which("node") or shutil.which("nodejs")
        if not node:
            self.skipTest("node is not installed: the chat page's script cannot run")
        driver = os.path.join(os.path.dirname(os.path.abspath(__file__)), "chat_page_driver.js")
        r = subprocess.run([node, driver, self.server.base, KEY], capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        report = json.loads(r.stdout)
        # /?prompt= fills the box; nothing is sent by the link alone.
        self.assertEqual(report["link"], {"posts": 0, "input": "Hello there", "max_tokens": "8"})
        # A failed request shows its error where the reply would be, adds nothing to the
        # conversation, and gives the message back.
        failed = report["failed"]
        self.assertEqual(json.loads(failed["history"]), [])
        self.assertEqual([b["cls"] for b in failed["bubbles"]], ["msg user", "msg error"], failed)
        self.assertIn("Incorrect API key", failed["bubbles"][1]["text"])
        self.assertFalse(any(b["cls"] == "msg assistant" and not b["text"] for b in failed["bubbles"]), failed)
        self.assertEqual(failed["input"], "Hi")
        # The retry is one clean exchange.
        ok = report["ok"]
        self.assertEqual([m["role"] for m in ok["history"]], ["user", "assistant"], ok)
        self.assertTrue(ok["history"][1]["content"], ok)
        # Too long for the 256-token context: the oldest messages are left out and a reply comes.
        trimmed = report["trimmed"]
        history = trimmed["history"]
        self.assertLess(len(history), 10, trimmed)
        self.assertEqual(history[-2], {"role": "user", "content": "Say hi"})
        self.assertTrue(history[-1]["content"], trimmed)
        self.assertTrue(any(b["cls"] == "msg system" and "oldest message" in b["text"] for b in trimmed["bubbles"]),
                        trimmed)
        self.assertFalse(any(b["cls"] == "msg error" for b in trimmed["bubbles"]), trimmed)

    # Item 8: slow clients (slowloris) must not hold up other requests. Before: a fixed pool of
    # --max-queue + --max-running + 8 threads, each held by a client trickling header lines.
    def test_slow_clients_do_not_hold_up_health(self):
        socks = []
        stop = threading.Event()
        try:
            for _ in range(40):
                s = socket.create_connection(("127.0.0.1", self.server.port), timeout=10)
                s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
                socks.append(s)

            def trickle():
                while not stop.wait(0.5):
                    for s in socks:
                        try:
                            s.sendall(b"X-Slow: 1\r\n")
                        except OSError:
                            pass

            t = threading.Thread(target=trickle, daemon=True)
            t.start()
            time.sleep(1)
            for _ in range(3):
                conn = base.http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=5)
                conn.request("GET", "/health")
                r = conn.getresponse()
                self.assertEqual((r.status, json.loads(r.read())), (200, {"status": "ok"}))
                conn.close()
        finally:
            stop.set()
            for s in socks:
                s.close()


class ServeConnectionLimits(unittest.TestCase):
    """--request-timeout and --max-connections (issue 15, item 8)."""

    @classmethod
    def setUpClass(cls):
        cls.server = base.Server("--request-timeout", "1.5", "--max-connections", "6", "--threads", "1")

    @classmethod
    def tearDownClass(cls):
        rc = cls.server.stop()
        assert rc == 0, f"server exit status {rc}: {''.join(cls.server.log)}"

    def test_request_trickled_past_the_timeout_gets_408_and_is_closed(self):
        s = socket.create_connection(("127.0.0.1", self.server.port), timeout=10)
        stop = threading.Event()

        def trickle():
            try:
                s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
                while not stop.wait(0.3):
                    s.sendall(b"X-Slow: 1\r\n")
            except OSError:
                pass  # closed by the server

        t = threading.Thread(target=trickle, daemon=True)
        t.start()
        data = b""
        try:
            while True:
                chunk = s.recv(65536)  # raises after 10 s without a byte: the server never answered
                if not chunk:
                    break
                data += chunk
        finally:
            stop.set()
            t.join()
            s.close()
        head, _, body = data.partition(b"\r\n\r\n")
        self.assertTrue(head.startswith(b"HTTP/1.1 408"), data)
        err = json.loads(body)["error"]
        self.assertEqual(err["code"], "request_timeout")
        self.assertIn("--request-timeout", err["message"])

    def test_idle_connection_is_closed(self):
        with socket.create_connection(("127.0.0.1", self.server.port), timeout=10) as s:
            self.assertEqual(s.recv(100), b"")  # closed without a response, well before the 10 s timeout

    def test_connections_beyond_the_cap_get_503_at_once(self):
        held = []
        try:
            for _ in range(6):  # each served once, then idle on keep-alive: all six counted
                conn = base.http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=10)
                conn.request("GET", "/health")
                self.assertEqual(conn.getresponse().read(), b'{"status":"ok"}')
                held.append(conn)
            status, _, body = raw_exchange(self.server.port, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            self.assertTrue(status.startswith("HTTP/1.1 503"), status)
            err = json.loads(body)["error"]
            self.assertEqual(err["code"], "too_many_connections")
            self.assertIn("--max-connections", err["message"])
        finally:
            for conn in held:
                conn.close()
        deadline = time.time() + 10
        while True:  # the closed connections leave room again
            status, _, body = raw_exchange(self.server.port, b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            if status.startswith("HTTP/1.1 200") or time.time() > deadline:
                break
            time.sleep(0.1)
        self.assertTrue(status.startswith("HTTP/1.1 200"), status)
        # Every held connection has been closed on the server too (the metrics request is the one open).
        self.server.wait_metric("lookahead_http_open_connections", lambda v: v == 1)


class ServeFlags(unittest.TestCase):
    """Bad server flags are one-line errors naming the flag, before the model loads."""

    def refused(self, *args, env=None):
        # A model that does not exist: the flag's error must come first.
        r = subprocess.run([BINARY, "moe", "serve", "--model", "/nonexistent/model.gguf", "--port", "0", *args],
                           capture_output=True, text=True, timeout=60, env=env)
        self.assertNotEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)
        return r.stderr

    def test_connection_limits_are_validated(self):
        self.assertIn("--max-connections", self.refused("--max-connections", "0"))
        self.assertIn("--request-timeout", self.refused("--request-timeout", "0"))

    # Item 13: an empty key is an error, not "authentication off".
    def test_empty_api_key_is_an_error(self):
        env = {k: v for k, v in os.environ.items() if k != "LOOKAHEAD_API_KEY"}
        self.assertIn("--api-key is empty", self.refused("--api-key", "", env=env))
        self.assertIn("LOOKAHEAD_API_KEY is empty", self.refused(env=dict(env, LOOKAHEAD_API_KEY="")))


if __name__ == "__main__":
    if not os.path.exists(MODEL):
        print(f"skipped: {MODEL} missing (run scripts/setup)")
        sys.exit(0)
    unittest.main(argv=[sys.argv[0], "-v", *sys.argv[2:]])
