#!/usr/bin/env python3
"""Tokenizer speed and agreement: `lookahead moe tokenize` against Hugging Face `tokenizers` (Rust)
on the same English text with SmolLM2's vocabulary, side by side in one run, one thread each.

The reference tokenizer is built from the GGUF exactly as tools/tokenizer_reference.py does. The
text is the Debian license texts (/usr/share/common-licenses, English prose) repeated to about
SIZE_MB. Reports best-of-REPS encode times (vocabulary loading excluded on both sides), the ratio,
and whether all ids agree; writes docs/results/tokenizer-speed.md.

Usage: PYTHON_WITH_TOKENIZERS=/tmp/venv/bin/python bench/tokenizer_vs_hf.py  (needs `tokenizers`,
`gguf`, `jinja2`; env: LOOKAHEAD=build/release/lookahead REPS=3 SIZE_MB=4)
"""
import glob
import json
import os
import platform
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
from tokenizer_reference import build_reference_tokenizer  # noqa: E402

MODEL = os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
LOOKAHEAD = os.environ.get("LOOKAHEAD", os.path.join(ROOT, "build", "release", "lookahead"))
REPS = int(os.environ.get("REPS", "3"))
SIZE_MB = float(os.environ.get("SIZE_MB", "4"))
WORK = os.path.join(ROOT, ".cache", "bench", "tokenizer")
OUT = os.path.join(ROOT, "docs", "results", "tokenizer-speed.md")


def main():
    os.makedirs(WORK, exist_ok=True)
    os.environ["RAYON_NUM_THREADS"] = "1"  # HF tokenizers: one thread, like ours
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    base = ""
    for path in sorted(glob.glob("/usr/share/common-licenses/*")):
        if os.path.isfile(path):
            with open(path, encoding="utf-8", errors="replace") as f:
                base += f.read()
    text = base
    while len(text.encode()) < SIZE_MB * 1e6:
        text += base
    text_path = os.path.join(WORK, "english.txt")
    with open(text_path, "w", encoding="utf-8") as f:
        f.write(text)
    nbytes = len(text.encode())

    ours_times, ours_ids = [], None
    for _ in range(REPS):
        out = subprocess.run([LOOKAHEAD, "moe", "tokenize", "--model", MODEL, "--file", text_path, "--json"],
                             check=True, capture_output=True, text=True).stdout
        j = json.loads(out)
        ours_times.append(j["seconds"])
        ours_ids = j["ids"]

    hf, _ = build_reference_tokenizer(MODEL, False)
    hf_times, hf_ids = [], None
    for _ in range(REPS):
        t0 = time.perf_counter()
        hf_ids = hf.encode(text, add_special_tokens=False).ids
        hf_times.append(time.perf_counter() - t0)

    ours, ref = min(ours_times), min(hf_times)
    agree = ours_ids == hf_ids
    first_diff = next((i for i, (a, b) in enumerate(zip(ours_ids, hf_ids)) if a != b), None)
    rows = [
        ("lookahead moe tokenize (C++, PCRE2 JIT)", ours, len(ours_ids)),
        ("HF tokenizers %s (Rust, 1 thread)" % __import__("tokenizers").__version__, ref, len(hf_ids)),
    ]
    lines = [
        "# Tokenizer speed: lookahead vs Hugging Face tokenizers",
        "",
        "Command: `PYTHON_WITH_TOKENIZERS=... bench/tokenizer_vs_hf.py` (REPS=%d, best of REPS)" % REPS,
        "",
        "Machine: %s, %d CPUs (shared with other jobs; numbers are noisy). Text: Debian license texts "
        "(English) repeated to %.2f MB; vocabulary: SmolLM2-135M-Instruct (GGUF, pre-tokenizer `smollm`). "
        "Encode time only (vocabulary loading excluded on both sides)." % (platform.machine(), os.cpu_count(), nbytes / 1e6),
        "",
        "| tokenizer | seconds | MB/s | tokens |",
        "|---|---|---|---|",
    ]
    for name, sec, n in rows:
        lines.append("| %s | %.3f | %.2f | %d |" % (name, sec, nbytes / 1e6 / sec, n))
    lines += [
        "",
        "Ratio (HF time / our time): **%.2fx**. Ids identical: **%s**%s." % (
            ref / ours, "yes" if agree else "no",
            "" if agree else " (first difference at token %s)" % first_diff),
        "",
    ]
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        f.write("\n".join(lines))
    print("\n".join(lines))
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
