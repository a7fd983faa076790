#!/usr/bin/env python3
"""Load test of `lookahead moe serve`: N concurrent streaming clients for a fixed time, loopback only.

Usage: bench/serve_load.py [--binary build/release/lookahead] [--model models/...gguf]
                           [--clients 32] [--duration 60] [--max-tokens 16]
                           [--max-running 4] [--max-queue 32] [--ctx 512] [--threads 0] [--json]
                           [--server-arg=--cache=belady --server-arg=--budget=3experts ...]

Starts the server itself on 127.0.0.1 (--port 0), sends one warm-up request, then runs --clients
threads, each sending streaming chat completions back to back (a short user message, temperature
0.7, seeded per request) until --duration seconds have passed. Requests still open at the deadline
are cut (the client closes its connection, which cancels them on the server) and counted apart:
the run is bounded in count (clients) and time (duration + a few seconds).

Reports: requests completed per second, generated tokens per second, time to first token (TTFT,
request sent -> first content chunk) p50/p95 over completed requests, errors (anything but 200 and
429), deliberate 429s (queue full), and the server's RSS before the load, after it, and its peak
(VmHWM), next to the KV cache limit the server reserves (ctx x max-running). After the load the
script checks that the server's running sequences and queue are back to 0 (disconnects cancel).
"""
import argparse
import http.client
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROMPTS = ["Tell me a fun fact.", "Name three colors.", "What is a cat?", "Say hello in French.",
           "Give me a word that rhymes with moon.", "What is 2 + 2?", "Name a planet.", "Describe the sea."]


def status_kib(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def percentile(xs, p):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    k = (len(xs) - 1) * p / 100.0
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def metrics(port):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    conn.close()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


class Client(threading.Thread):
    def __init__(self, index, port, args, deadline, results, lock):
        super().__init__(daemon=True)
        self.index, self.port, self.args, self.deadline = index, port, args, deadline
        self.results, self.lock = results, lock
        self.conn = None
        self.stage = ""

    def one(self, n):
        request = {"messages": [{"role": "user", "content": PROMPTS[(self.index + n) % len(PROMPTS)]}],
                   "max_tokens": self.args.max_tokens, "temperature": 0.7, "seed": self.index * 1000 + n,
                   "stream": True, "stream_options": {"include_usage": True}}
        # --stop-share: that share of requests (every k-th by index) carries stop strings common in
        # the replies, so streams end early on held-back text as in issue 15's blocker 1.
        if self.args.stop_share > 0 and ((self.index + n) % 100) < 100 * self.args.stop_share:
            request["stop"] = [" the", ".", "\n\n"]
        body = json.dumps(request)
        self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.args.duration + 60)
        t0 = time.perf_counter()
        self.stage = "send"
        self.conn.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
        self.stage = "response"
        r = self.conn.getresponse()
        self.stage = "stream"
        if r.status != 200:
            r.read()
            return ("429" if r.status == 429 else f"http_{r.status}", None, 0)
        ttft, tokens, done, finish = None, 0, False, None
        for raw in r:
            line = raw.decode("utf-8", "replace").strip()
            if not line.startswith("data: "):
                continue
            data = line[6:]
            if data == "[DONE]":
                done = True
                break
            j = json.loads(data)
            if "error" in j:
                return ("stream_error", None, 0)
            if j.get("usage"):
                tokens = j["usage"]["completion_tokens"]
            if j["choices"] and j["choices"][0].get("finish_reason"):
                finish = j["choices"][0]["finish_reason"]
            if ttft is None and j["choices"] and j["choices"][0]["delta"].get("content"):
                ttft = time.perf_counter() - t0
        if done and finish is None:
            return ("no_finish_reason", ttft, tokens)
        return ("ok" if done else "truncated", ttft, tokens)

    def run(self):
        n = 0
        while time.time() < self.deadline:
            try:
                outcome, ttft, tokens = self.one(n)
            except (OSError, http.client.HTTPException, ValueError) as e:
                outcome, ttft, tokens = ("cut" if time.time() >= self.deadline else f"exception_{type(e).__name__}_{self.stage}",
                                         None, 0)
            finally:
                if self.conn:
                    self.conn.close()
            if outcome == "truncated" and time.time() >= self.deadline:
                outcome = "cut"
            with self.lock:
                self.results.append((outcome, ttft, tokens))
            if outcome == "429":
                time.sleep(0.5)  # a polite client backs off
            n += 1

    def cut(self):
        conn = self.conn
        if conn is not None and conn.sock is not None:
            try:
                conn.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=os.path.join(ROOT, "build/release/lookahead"))
    ap.add_argument("--model", default=os.path.join(ROOT, "models/SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--duration", type=float, default=60)
    ap.add_argument("--max-tokens", type=int, default=16)
    ap.add_argument("--max-running", type=int, default=4)
    ap.add_argument("--max-queue", type=int, default=32)
    ap.add_argument("--ctx", type=int, default=512)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--server-arg", action="append", default=[],
                    help="extra flag for moe serve, e.g. --server-arg=--scheduler=expert-aware (repeatable)")
    ap.add_argument("--stop-share", type=float, default=0.0,
                    help="share of requests (0-1) sent with stop strings (a stream must still end with finish_reason and [DONE])")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if not 1 <= args.clients <= 256 or not 1 <= args.duration <= 600:
        sys.exit("serve_load: --clients must be 1..256 and --duration 1..600 s")

    cmd = [args.binary, "moe", "serve", "--model", args.model, "--port", "0", "--ctx", str(args.ctx),
           "--max-running", str(args.max_running), "--max-queue", str(args.max_queue), "--threads", str(args.threads)] + args.server_arg
    server = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    port, banner = None, ""
    while port is None:
        line = server.stderr.readline()
        if not line:
            sys.exit("serve_load: server exited: " + banner)
        banner += line
        m = re.search(r"http://127\.0\.0\.1:(\d+)", line)
        port = int(m.group(1)) if m else None
    threading.Thread(target=lambda: [None for _ in server.stderr], daemon=True).start()
    try:
        # Warm-up: one request, so RSS "before" includes the touched weights.
        Client(0, port, argparse.Namespace(**{**vars(args), "duration": 60}), time.time() + 1e9, [], threading.Lock()).one(0)
        m0 = metrics(port)
        rss_before = status_kib(server.pid, "VmRSS")
        anon_before, file_before = status_kib(server.pid, "RssAnon"), status_kib(server.pid, "RssFile")
        results, lock = [], threading.Lock()
        t_start = time.time()
        deadline = t_start + args.duration
        clients = [Client(i, port, args, deadline, results, lock) for i in range(args.clients)]
        for c in clients:
            c.start()
        rss_peak_during = rss_before
        while time.time() < deadline:
            time.sleep(0.5)
            rss_peak_during = max(rss_peak_during, status_kib(server.pid, "VmRSS"))
        for c in clients:
            c.cut()
        for c in clients:
            c.join(timeout=30)
        elapsed = time.time() - t_start
        # Disconnected clients' requests are cancelled: the engine empties.
        settle = time.time() + 30
        m1 = metrics(port)
        while (m1["lookahead_running_sequences"] > 0 or m1["lookahead_waiting_requests"] > 0) and time.time() < settle:
            time.sleep(0.2)
            m1 = metrics(port)
        rss_after = status_kib(server.pid, "VmRSS")
        anon_after, file_after = status_kib(server.pid, "RssAnon"), status_kib(server.pid, "RssFile")
        rss_hwm = status_kib(server.pid, "VmHWM")
    finally:
        server.send_signal(signal.SIGTERM)
        rc = server.wait(timeout=60)

    ok = [r for r in results if r[0] == "ok"]
    ttfts = [r[1] for r in ok if r[1] is not None]
    outcomes = {}
    for r in results:
        outcomes[r[0]] = outcomes.get(r[0], 0) + 1
    errors = sum(n for k, n in outcomes.items() if k not in ("ok", "429", "cut"))
    report = {
        "clients": args.clients, "duration_s": round(elapsed, 1), "max_tokens": args.max_tokens,
        "max_running": args.max_running, "max_queue": args.max_queue, "ctx": args.ctx,
        "completed": len(ok), "requests_per_s": round(len(ok) / elapsed, 3),
        "generated_tokens_per_s": round(sum(r[2] for r in ok) / elapsed, 2),
        "ttft_p50_s": round(percentile(ttfts, 50), 3), "ttft_p95_s": round(percentile(ttfts, 95), 3),
        "errors": errors, "rejected_429": outcomes.get("429", 0), "cut_at_deadline": outcomes.get("cut", 0),
        "outcomes": outcomes,
        "server_cancelled": int(m1['lookahead_requests_finished_total{reason="cancelled"}'] -
                                m0['lookahead_requests_finished_total{reason="cancelled"}']),
        "running_after": int(m1["lookahead_running_sequences"]), "queue_after": int(m1["lookahead_waiting_requests"]),
        "kv_cache_mib": round(m1["lookahead_kv_cache_bytes"] / 2**20, 1),
        "rss_before_mib": round(rss_before / 1024, 1), "rss_peak_during_mib": round(rss_peak_during / 1024, 1),
        "rss_after_mib": round(rss_after / 1024, 1), "rss_hwm_mib": round(rss_hwm / 1024, 1),
        # RssFile: memory-mapped weights paged in (a Read-ME model touches more experts as traffic
        # varies; reclaimable); RssAnon: heap, KV caches, buffers (what the KV limit bounds).
        "rss_anon_before_mib": round(anon_before / 1024, 1), "rss_anon_after_mib": round(anon_after / 1024, 1),
        "rss_file_before_mib": round(file_before / 1024, 1), "rss_file_after_mib": round(file_after / 1024, 1),
        "server_exit_status": rc, "load_average": os.getloadavg(),
    }
    if args.json:
        print(json.dumps(report))
    else:
        for k, v in report.items():
            print(f"{k:>22}: {v}")
    return 0 if errors == 0 and rc == 0 and report["running_after"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
