#!/usr/bin/env python3
"""Two OpenAI-compatible servers side by side under the same streaming client load.

Usage: bench/serve_compare.py --lookahead build/release/lookahead --llama-server .cache/llama.cpp-build/bin/llama-server
                              [--model models/SmolLM2-135M-Instruct.Q4_1.gguf] [--clients 1,4,8,16,32]
                              [--duration 20] [--rounds 2] [--slots 8] [--ctx 512] [--threads 2 | --threads default]
                              [--hog 0] [--lookahead-args '--prefix-cache off'] [--out results.jsonl] [--markdown table.md]

For each concurrency level and round, each server in turn (the order alternates between rounds, so
neither always runs on a warmer or quieter machine) is started on 127.0.0.1 with the same GGUF, the
same context per sequence, the same number of parallel sequences and the same threads; it gets one
warm-up request, then N client threads send streaming chat completions back to back until
--duration seconds have passed, and the server is stopped with SIGTERM (its exit status is recorded).

  lookahead:    lookahead moe serve --model M --ctx C --max-running S --max-queue 1024 --threads T
  llama-server: llama-server -m M -c C*S -np S -t T -tb T      (llama.cpp splits -c over its S slots)
  lookahead-readme (with --readme-model DIR): the lookahead command on a Read-ME model directory
    (routed experts; e.g. the dense GGUF refactored and converted to the same weight type), so dense
    and Read-ME are compared at equal load

With --threads default neither server gets a thread flag (each picks its own default); --hog K runs
K busy-looping processes beside the server for the measurement (a machine shared with other work).

Requests: eight fixed user prompts of mixed length (a few words to ~200 tokens), greedy decoding
(temperature 0, so both servers do the same work), max_tokens drawn from 64..128 per request from a
fixed seed, stream_options.include_usage. Per run: requests completed, generated tokens/s (the usage
block's completion_tokens of completed requests plus the content chunks that requests cut at the
deadline had received, over the measured seconds), time to first token
(request sent -> first content chunk) p50/p95, inter-token latency (gaps between successive content
chunks) p50/p95, errors (any non-200, a stream without [DONE] or finish_reason, an exception),
requests cut at the deadline (not errors), and the server's peak RSS (VmHWM).
"""
import argparse
import http.client
import json
import shlex
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

PARAGRAPH = ("The history of the printing press begins with movable type in East Asia and continues with "
             "Gutenberg's press in Mainz around 1450. Cheap books spread literacy, standardized spelling, "
             "and let scientists share results quickly. ")
PROMPTS = [
    "Name three colors.",
    "What is a cat?",
    "Write a short poem about the sea.",
    "Explain in two sentences why the sky is blue.",
    "Summarize this text in one sentence: " + PARAGRAPH,
    "Give me a list of five fruits and one fact about each.",
    "Read the following and answer: who built the press? " + PARAGRAPH * 2,
    "Rewrite this paragraph for a ten-year-old: " + PARAGRAPH * 4,
]


def percentile(xs, p):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    k = (len(xs) - 1) * p / 100.0
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def status_kib(pid, key):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def server_command(kind, args, port):
    if kind in ("lookahead", "lookahead-readme"):
        model = args.readme_model if kind == "lookahead-readme" else args.model
        cmd = [args.lookahead, "moe", "serve", "--model", model, "--host", "127.0.0.1", "--port", str(port),
               "--ctx", str(args.ctx), "--max-running", str(args.slots), "--max-queue", "1024"]
        if args.threads != "default":
            cmd += ["--threads", args.threads]
        cmd += shlex.split(args.lookahead_args)
    else:
        cmd = [args.llama_server, "-m", args.model, "--host", "127.0.0.1", "--port", str(port),
               "-c", str(args.ctx * args.slots), "-np", str(args.slots)]
        if args.threads != "default":
            cmd += ["-t", args.threads, "-tb", args.threads]
    return cmd


def wait_ready(port, proc, timeout=120):
    """Polls GET /health until 200 (both servers answer it once the model is loaded)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with status {proc.returncode} before it was ready")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/health")
            ok = conn.getresponse().status == 200
            conn.close()
            if ok:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError("server not ready within %d s" % timeout)


class Client(threading.Thread):
    def __init__(self, index, port, deadline, seed, results, lock):
        super().__init__(daemon=True)
        self.index, self.port, self.deadline = index, port, deadline
        self.rng = random.Random(seed * 7919 + index)
        self.results, self.lock = results, lock
        self.conn = None
        self.chunks = 0  # content chunks of the request in progress (what a cut request delivered)

    def one(self, n, timeout):
        prompt = PROMPTS[(self.index + n) % len(PROMPTS)]
        body = json.dumps({"messages": [{"role": "user", "content": prompt}], "max_tokens": self.rng.randint(64, 128),
                           "temperature": 0, "stream": True, "stream_options": {"include_usage": True}})
        # Reset before sending: a request cut while still waiting for its response headers (a server
        # that answers a queued streaming request only once it starts, as llama-server does) must
        # count 0 tokens, not the previous request's.
        self.chunks = 0
        self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        t0 = time.perf_counter()
        self.conn.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
        r = self.conn.getresponse()
        if r.status != 200:
            r.read()
            return {"outcome": f"http_{r.status}"}
        ttft, last, gaps, tokens, done, finish, cached, prompt_tokens = None, None, [], None, False, None, 0, 0
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
                return {"outcome": "stream_error"}
            if j.get("usage"):
                tokens = j["usage"]["completion_tokens"]
                cached = ((j["usage"].get("prompt_tokens_details") or {}).get("cached_tokens") or 0)
                prompt_tokens = j["usage"].get("prompt_tokens", 0)
            choice = j["choices"][0] if j.get("choices") else {}
            if choice.get("finish_reason"):
                finish = choice["finish_reason"]
            if (choice.get("delta") or {}).get("content"):
                now = time.perf_counter()
                self.chunks += 1
                if ttft is None:
                    ttft = now - t0
                else:
                    gaps.append(now - last)
                last = now
        if not done:
            return {"outcome": "truncated", "tokens": self.chunks}
        if finish is None:
            return {"outcome": "no_finish_reason"}
        return {"outcome": "ok", "ttft": ttft, "gaps": gaps, "tokens": tokens if tokens is not None else self.chunks,
                "usage": tokens is not None, "prompt_tokens": prompt_tokens, "cached": cached}

    def run(self):
        n = 0
        while time.time() < self.deadline:
            try:
                res = self.one(n, timeout=max(5.0, self.deadline - time.time() + 60))
            except (OSError, http.client.HTTPException, ValueError) as e:
                res = {"outcome": "cut" if time.time() >= self.deadline else f"exception_{type(e).__name__}",
                       "tokens": self.chunks}
            finally:
                if self.conn:
                    self.conn.close()
            if res["outcome"] == "truncated" and time.time() >= self.deadline:
                res["outcome"] = "cut"
            with self.lock:
                self.results.append(res)
            n += 1

    def cut(self):
        conn = self.conn
        if conn is not None and conn.sock is not None:
            try:
                conn.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def start_hogs(k):
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(k)]


def measure(kind, clients, round_index, args):
    port = free_port()
    proc = subprocess.Popen(server_command(kind, args, port), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    hogs = []
    try:
        wait_ready(port, proc)
        Client(0, port, time.time() + 1e9, 0, [], threading.Lock()).one(0, 120)  # warm-up
        hogs = start_hogs(args.hog)
        results, lock = [], threading.Lock()
        t0 = time.time()
        deadline = t0 + args.duration
        threads = [Client(i, port, deadline, round_index * 1000 + clients, results, lock) for i in range(clients)]
        for t in threads:
            t.start()
        rss_peak = 0
        while time.time() < deadline:
            time.sleep(0.25)
            rss_peak = max(rss_peak, status_kib(proc.pid, "VmRSS"))
        for t in threads:
            t.cut()
        for t in threads:
            t.join(timeout=30)
        elapsed = time.time() - t0
        rss_hwm = status_kib(proc.pid, "VmHWM")
    finally:
        for h in hogs:
            h.kill()
            h.wait()
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = "killed"
    ok = [r for r in results if r["outcome"] == "ok"]
    cut = [r for r in results if r["outcome"] == "cut"]
    ttfts = [r["ttft"] for r in ok if r["ttft"] is not None]
    gaps = [g for r in ok for g in r["gaps"]]
    outcomes = {}
    for r in results:
        outcomes[r["outcome"]] = outcomes.get(r["outcome"], 0) + 1
    return {
        "server": kind, "clients": clients, "round": round_index, "threads": args.threads, "hog": args.hog,
        "server_args": args.lookahead_args if kind != "llama-server" else "",
        "model": args.readme_model if kind == "lookahead-readme" else args.model,
        # Prompt tokens of completed requests, and how many of them the server reported as cached
        # (usage.prompt_tokens_details.cached_tokens; 0 where a server does not report it).
        "prompt_tokens": sum(r.get("prompt_tokens", 0) for r in ok), "cached_prompt_tokens": sum(r.get("cached", 0) for r in ok),
        "slots": args.slots, "ctx": args.ctx, "duration_s": round(elapsed, 2), "completed": len(ok),
        # Completed requests count their usage block's tokens; requests cut at the deadline the content
        # chunks they had received (a chunk is one token on both servers unless text is held back).
        "tokens_per_s": round(sum(r.get("tokens", 0) for r in ok + cut) / elapsed, 2),
        "tokens_from_usage": all(r["usage"] for r in ok),
        "ttft_p50_ms": round(1e3 * percentile(ttfts, 50), 1), "ttft_p95_ms": round(1e3 * percentile(ttfts, 95), 1),
        "itl_p50_ms": round(1e3 * percentile(gaps, 50), 2), "itl_p95_ms": round(1e3 * percentile(gaps, 95), 2),
        "errors": sum(n for k, n in outcomes.items() if k not in ("ok", "cut")), "cut": outcomes.get("cut", 0),
        "outcomes": outcomes, "rss_peak_mib": round(max(rss_peak, rss_hwm) / 1024, 1), "exit_status": rc,
        "load_average_1m": round(os.getloadavg()[0], 2),
    }


KINDS = ("lookahead", "lookahead-readme", "llama-server")


def markdown(rows):
    out = ["| clients | server | tokens/s (median of rounds) | ratio to llama-server | TTFT p50 / p95 ms | "
           "ITL p50 / p95 ms | errors | peak RSS MiB |", "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for c in sorted({r["clients"] for r in rows}):
        med = {}
        for kind in KINDS:
            rs = [r for r in rows if r["clients"] == c and r["server"] == kind]
            if not rs:
                continue
            med[kind] = statistics.median(r["tokens_per_s"] for r in rs)
        for kind in KINDS:
            ratio = med[kind] / med["llama-server"] if med.get("llama-server") and kind in med else float("nan")
            rs = [r for r in rows if r["clients"] == c and r["server"] == kind]
            if not rs:
                continue
            m = lambda key: statistics.median(r[key] for r in rs)
            runs = ", ".join(f"{r['tokens_per_s']:.0f}" for r in rs)
            out.append(f"| {c} | {kind} | {med[kind]:.1f} ({runs}) | {ratio:.2f} | {m('ttft_p50_ms'):.0f} / "
                       f"{m('ttft_p95_ms'):.0f} | {m('itl_p50_ms'):.1f} / {m('itl_p95_ms'):.1f} | "
                       f"{sum(r['errors'] for r in rs)} | {max(r['rss_peak_mib'] for r in rs):.0f} |")
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lookahead", default=os.path.join(ROOT, "build/release/lookahead"))
    ap.add_argument("--llama-server", default=os.path.join(ROOT, ".cache/llama.cpp-build/bin/llama-server"))
    ap.add_argument("--model", default=os.path.join(ROOT, "models/SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--clients", default="1,4,8,16,32")
    ap.add_argument("--duration", type=float, default=20)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--slots", type=int, default=8)
    ap.add_argument("--ctx", type=int, default=512, help="context per sequence")
    ap.add_argument("--threads", default="2", help="threads for both servers, or 'default' to pass none")
    ap.add_argument("--hog", type=int, default=0, help="busy-looping processes beside the server")
    ap.add_argument("--servers", default="lookahead,llama-server",
                    help="comma list of lookahead, lookahead-readme (--readme-model served by lookahead), llama-server")
    ap.add_argument("--readme-model", help="a Read-ME model directory for the lookahead-readme server")
    ap.add_argument("--lookahead-args", default="", help="more flags for moe serve, e.g. '--prefix-cache off'")
    ap.add_argument("--out", help="append one JSON line per run here")
    ap.add_argument("--markdown", help="write the summary table here")
    args = ap.parse_args()
    levels = [int(c) for c in args.clients.split(",")]
    servers = args.servers.split(",")
    if any(c < 1 or c > 256 for c in levels) or not 1 <= args.duration <= 600 or args.rounds < 1:
        sys.exit("serve_compare: --clients must be 1..256 each, --duration 1..600 s, --rounds >= 1")
    if args.threads != "default" and not args.threads.isdigit():
        sys.exit(f"serve_compare: --threads must be a number or 'default' (got {args.threads!r})")
    for kind in servers:
        if kind not in KINDS:
            sys.exit(f"serve_compare: unknown server {kind!r} ({', '.join(KINDS)})")
        if kind == "lookahead-readme" and not (args.readme_model and os.path.isdir(args.readme_model)):
            sys.exit("serve_compare: lookahead-readme needs --readme-model DIR (a Read-ME model directory)")
        binary = args.llama_server if kind == "llama-server" else args.lookahead
        if not os.access(binary, os.X_OK):
            sys.exit(f"serve_compare: {binary}: not an executable (build it first)")
    rows = []
    for c in levels:
        for r in range(args.rounds):
            for kind in (servers if r % 2 == 0 else servers[::-1]):
                row = measure(kind, c, r, args)
                rows.append(row)
                print(json.dumps(row), flush=True)
                if args.out:
                    with open(args.out, "a") as f:
                        f.write(json.dumps(row) + "\n")
    table = markdown(rows)
    print(table)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(table)
    return 0 if all(r["errors"] == 0 and r["exit_status"] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
