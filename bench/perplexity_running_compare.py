#!/usr/bin/env python3
"""Compare the running perplexity of llama-perplexity and `lookahead moe perplexity`, chunk by chunk.

Both print the cumulative estimate after every chunk ("[i]PPL," - llama-perplexity on stdout,
`moe perplexity` without --json on stderr), so two runs over the same text, model and --ctx can be
compared at every common chunk count, including runs that were stopped before the end of the file
(on a shared machine a full run may not fit in the time available). Chunk i covers tokens
[(i-1)*ctx, i*ctx) of the text, so after N chunks both engines have evaluated N*ctx tokens and
scored N*(ctx/2 - 1) of them.

Usage: bench/perplexity_running_compare.py LLAMA_OUTPUT OURS_STDERR [--ctx 512] [--at N ...]
Prints a markdown table (checkpoints, and the last common chunk) and exits non-zero if there is no
common chunk.
"""
import argparse
import re
import sys


def running(path):
    vals = {}
    for m in re.finditer(r"\[(\d+)\]([0-9]+\.[0-9]+)", open(path, errors="replace").read()):
        vals[int(m.group(1))] = float(m.group(2))
    return vals


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("llama")
    ap.add_argument("ours")
    ap.add_argument("--ctx", type=int, default=512)
    ap.add_argument("--at", type=int, nargs="*", default=[1, 10, 40, 100, 196, 200, 300, 418])
    a = ap.parse_args()
    ll, oo = running(a.llama), running(a.ours)
    common = sorted(set(ll) & set(oo))
    if not common:
        sys.exit("perplexity_running_compare: no chunk appears in both outputs")
    last = common[-1]
    points = sorted({n for n in a.at if n in ll and n in oo} | {last})
    print("| chunks | tokens evaluated | tokens scored | llama.cpp PPL | lookahead PPL | relative diff |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    for n in points:
        rel = (oo[n] - ll[n]) / ll[n]
        print(f"| {n} | {n * a.ctx:,} | {n * (a.ctx // 2 - 1):,} | {ll[n]:.4f} | {oo[n]:.4f} | {rel:+.3%} |")
    worst = max(common, key=lambda n: abs(oo[n] - ll[n]) / ll[n])
    print(f"\nLargest |relative diff| over chunks 1..{last}: {(oo[worst] - ll[worst]) / ll[worst]:+.3%} after chunk {worst}.")


if __name__ == "__main__":
    main()
