#!/usr/bin/env python3
"""Screenshot of the `moe serve` chat page answering a prompt, with headless Chromium.

Usage: bench/serve_chat_screenshot.py [--binary build/release/lookahead] [--model M] [--out docs/serve-chat.png]
                                      [--prompt TEXT] [--max-tokens N]

Starts the server on a free loopback port, opens `/?prompt=...&temperature=0` (the page sends the
prompt on load and streams the reply), waits until the reply is complete (the page adds its
"N tokens, S s" line), and saves a PNG. Chromium (Debian package `chromium`) is driven over the
DevTools protocol on a pipe (--remote-debugging-pipe), so nothing beyond the standard library is
needed. Bounded: gives up after --timeout seconds.
"""
import argparse
import base64
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class DevTools:
    """Chrome DevTools protocol over --remote-debugging-pipe (fd 3: to Chromium, fd 4: from it)."""

    def __init__(self, chromium, width, height):
        to_chrome_r, self.to_chrome = os.pipe()
        self.from_chrome, from_chrome_w = os.pipe()
        self.profile = tempfile.mkdtemp(prefix="lookahead-chromium-")

        def fds():  # runs in the child before it closes the fds not listed in pass_fds
            a, b = os.dup(to_chrome_r), os.dup(from_chrome_w)  # safe from clobbering 3/4 below
            os.dup2(a, 3)
            os.dup2(b, 4)

        self.proc = subprocess.Popen(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--remote-debugging-pipe",
             f"--user-data-dir={self.profile}", f"--window-size={width},{height}", "about:blank"],
            preexec_fn=fds, pass_fds=(3, 4), stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self.buf = b""
        self.next_id = 0

    def call(self, method, params=None, session=None):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self.to_chrome, json.dumps(msg).encode() + b"\0")
        while True:
            while b"\0" not in self.buf:
                chunk = os.read(self.from_chrome, 1 << 16)
                if not chunk:
                    raise RuntimeError("chromium closed the DevTools pipe")
                self.buf += chunk
            raw, self.buf = self.buf.split(b"\0", 1)
            reply = json.loads(raw)
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def close(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=os.path.join(ROOT, "build/release/lookahead"))
    ap.add_argument("--model", default=os.path.join(ROOT, "models/SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--out", default=os.path.join(ROOT, "docs/serve-chat.png"))
    ap.add_argument("--prompt", default="What is the capital of France? Answer in two sentences.")
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--chromium", default="chromium")
    ap.add_argument("--timeout", type=float, default=300)
    args = ap.parse_args()

    server = subprocess.Popen([args.binary, "moe", "serve", "--model", args.model, "--port", "0", "--ctx", "1024"],
                              stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    port = None
    while port is None:
        line = server.stderr.readline()
        if not line:
            sys.exit("screenshot: the server exited")
        m = re.search(r"http://127\.0\.0\.1:(\d+)", line)
        port = int(m.group(1)) if m else None
    chrome = DevTools(args.chromium, 1000, 640)
    try:
        query = urllib.parse.urlencode({"prompt": args.prompt, "temperature": 0, "max_tokens": args.max_tokens})
        target = chrome.call("Target.createTarget", {"url": f"http://127.0.0.1:{port}/?{query}"})["targetId"]
        session = chrome.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        deadline = time.time() + args.timeout
        done = "document.querySelector('.assistant .meta') !== null"
        while not chrome.call("Runtime.evaluate", {"expression": done}, session)["result"].get("value"):
            if time.time() > deadline:
                sys.exit("screenshot: the reply did not finish in time")
            time.sleep(0.5)
        png = chrome.call("Page.captureScreenshot", {"format": "png"}, session)["data"]
        tmp = args.out + ".tmp"
        with open(tmp, "wb") as f:
            f.write(base64.b64decode(png))
        os.replace(tmp, args.out)
        reply = chrome.call("Runtime.evaluate", {"expression": "document.querySelector('.assistant').innerText"},
                            session)["result"].get("value")
        print(f"wrote {args.out}; the reply: {reply!r}")
    finally:
        chrome.close()
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
    return 0


if __name__ == "__main__":
    sys.exit(main())
