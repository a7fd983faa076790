#!/usr/bin/env bash
# Issue #5's scale evidence with the real forward pass: the continuous-batching engine serving a
# synthetic trace (`lookahead moe replay`) on a Llama-2-7B-shape synthetic Read-ME model whose
# expert slabs (4.03 GiB) are 4x the 1 GiB RAM budget, with each expert tier:
#   belady + conservative prefetch, belady + prefetch on, belady without prefetch, LRU without
#   prefetch, no cache (every slab read from disk on use), and everything resident (memory-mapped;
#   one warm-up run fills the page cache first, the second run is reported).
# A fresh bench/disk_read_bw.sh measurement is taken right before the replays (the disk's O_DIRECT
# sequential read bandwidth, to compare the tier's achieved read rate with).
# Every replay: one compute thread and `--clock cpu` (step time = the engine thread's CPU time +
# its stalls on expert loads), the same trace (same seed) for every configuration.
# Writes .cache/bench/serving-scale/*.json and the markdown table .cache/bench/serving-scale/table.md
# (atomically), and prints the table; the doc section "Scale: the forward pass at 7B shapes" of
# docs/results/readme-serving.md is written from it by hand.
#
# Usage: bench/readme_serving_scale.sh   (env: LOOKAHEAD=build/release/lookahead DTYPE=bf16 (or q8_0: quantized
#        experts, 34/64 of bf16's bytes) MODEL=.cache/synth/llama2-7b-8l[-DTYPE] WORK=.cache/bench/serving-scale[-DTYPE]
#        N=4 RATE=2 PROMPT_MEDIAN=16 OUTPUT_MEDIAN=16 TOKEN_BUDGET=64 SEED=1 ROUTE=router BUDGET=1GiB DISK_GIB=4
#        REUSE=1 (keep existing JSONs) SKIP_DISKBW=1 CLEAN=1 (delete the model at the end))
# Writes the model first if missing (about 6 GB on disk, 42 s); delete it afterwards (CLEAN=1).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
LOOKAHEAD=${LOOKAHEAD:-$ROOT/build/release/lookahead}
DTYPE=${DTYPE:-bf16}
SUFFIX=$([ "$DTYPE" = bf16 ] || echo "-$DTYPE")
MODEL=${MODEL:-$ROOT/.cache/synth/llama2-7b-8l$SUFFIX}
N=${N:-4}
RATE=${RATE:-2}
PROMPT_MEDIAN=${PROMPT_MEDIAN:-16}
OUTPUT_MEDIAN=${OUTPUT_MEDIAN:-16}
TOKEN_BUDGET=${TOKEN_BUDGET:-64}
SEED=${SEED:-1}
ROUTE=${ROUTE:-router}
BUDGET=${BUDGET:-1GiB}
WORK=${WORK:-$ROOT/.cache/bench/serving-scale$SUFFIX}
mkdir -p "$WORK"
[ -x "$LOOKAHEAD" ] || { echo "readme_serving_scale: $LOOKAHEAD not built" >&2; exit 1; }
if [ ! -d "$MODEL" ]; then
  echo "readme_serving_scale: writing $MODEL" >&2
  nice -n 10 "$LOOKAHEAD" moe synth --shape llama2-7b --experts 4 --layers 8 --dtype "$DTYPE" --seed 1 --out "$MODEL"
fi
CORPUS=$WORK/heldout-mix.txt
if [ ! -s "$CORPUS" ]; then cat "$ROOT"/.cache/corpus/*/heldout.txt > "$CORPUS.tmp" && mv "$CORPUS.tmp" "$CORPUS"; fi

if [ -z "${SKIP_DISKBW:-}" ] && ! { [ "${REUSE:-0}" = 1 ] && [ -s "$WORK/diskbw.jsonl" ]; }; then
  echo "readme_serving_scale: disk read bandwidth" >&2
  bench/disk_read_bw.sh "${DISK_GIB:-4}" > "$WORK/diskbw.jsonl.tmp"
  mv "$WORK/diskbw.jsonl.tmp" "$WORK/diskbw.jsonl"
fi

common=(moe replay --model "$MODEL" --route "$ROUTE" --synth "$N" --rate "$RATE" --corpus "$CORPUS"
        --prompt-median "$PROMPT_MEDIAN" --output-median "$OUTPUT_MEDIAN" --token-budget "$TOKEN_BUDGET"
        --seed "$SEED" --threads 1 --clock cpu --json)
run() {  # run NAME ARGS...: one replay, JSON to $WORK/NAME.json (kept when REUSE=1)
  local name=$1; shift
  if [ "${REUSE:-0}" = 1 ] && [ -s "$WORK/$name.json" ]; then return; fi
  echo "replay $name: $*" >&2
  local t0=$SECONDS
  nice -n 10 "$LOOKAHEAD" "${common[@]}" "$@" > "$WORK/$name.json.tmp"
  echo "  $((SECONDS - t0)) s" >&2
  echo "$((SECONDS - t0))" > "$WORK/$name.wall"
  mv "$WORK/$name.json.tmp" "$WORK/$name.json"
}
run belady-conservative --cache belady --budget "$BUDGET" --prefetch conservative
run belady-on --cache belady --budget "$BUDGET" --prefetch on
run belady-off --cache belady --budget "$BUDGET" --prefetch off
run lru-off --cache lru --budget "$BUDGET" --prefetch off
run none --cache none --prefetch off
run resident-warmup                      # fills the page cache with the memory-mapped model
run resident

python3 - "$WORK" "$BUDGET" <<'EOF'
import json, os, sys
work, budget = sys.argv[1:3]
J = lambda name: json.load(open(os.path.join(work, name + ".json")))
L = []
bw = [json.loads(l) for l in open(os.path.join(work, "diskbw.jsonl"))] if os.path.exists(os.path.join(work, "diskbw.jsonl")) else []
if bw:
    L.append("Disk (bench/disk_read_bw.sh: O_DIRECT sequential reads of a fresh random file; median of 3 passes):\n")
    L.append("| request | threads | GiB/s (median) | passes |")
    L.append("|---|---:|---:|---|")
    for b in bw:
        L.append(f"| {b['block'] >> 20} MiB | {b['threads']} | {b['median_gib_per_s']:.2f} | "
                 + ", ".join(f"{g:.2f}" for g in b["gib_per_s"]) + " |")
    L.append("")
runs = [("belady-conservative", f"belady, {budget}", "conservative"), ("belady-on", f"belady, {budget}", "on"),
        ("belady-off", f"belady, {budget}", "off"), ("lru-off", f"lru, {budget}", "off"),
        ("none", "none (no cache)", "off"), ("resident", "resident (mmap, warm)", "—")]
L.append("| expert tier | prefetch | decode tokens/s (generated / compute s) | throughput tokens/s (makespan) | "
         "normalized latency mean / p95 (s/token) | hit ratio | slow tier GiB read | stall s | compute s | "
         "read GiB/s (bytes / stall) | read GiB/s (bytes / compute) | wall s |")
L.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for name, tier, pf in runs:
    if not os.path.exists(os.path.join(work, name + ".json")):
        continue
    j = J(name)
    gib = j["slow_tier_bytes"] / 2**30
    resident = name == "resident"
    L.append(f"| {tier} | {pf} | {j['generated_tokens'] / j['compute_s']:.3f} | {j['throughput_tok_s']:.3f} | "
             f"{j['normalized_latency_s']['mean']:.2f} / {j['normalized_latency_s']['p95']:.2f} | "
             + ("—" if resident else f"{100 * j['cache_hit_ratio']:.1f}%") + " | "
             + ("—" if resident else f"{gib:.2f}") + " | "
             + ("—" if resident else f"{j['stall_s']:.1f}") + f" | {j['compute_s']:.1f} | "
             + ("—" if resident or j["stall_s"] <= 0 else f"{gib / j['stall_s']:.2f}") + " | "
             + ("—" if resident else f"{gib / j['compute_s']:.2f}") + " | "
             + (open(os.path.join(work, name + ".wall")).read().strip() if os.path.exists(os.path.join(work, name + ".wall")) else "?") + " |")
r = J(runs[0][0])
L.append(f"\n{r['requests']} requests, {r['prompt_tokens']} prompt + {r['generated_tokens']} generated tokens, "
         f"{r['steps']} steps, {r['mean_unique_experts']:.2f} unique experts per batch (route {r['route']}).")
out = os.path.join(work, "table.md")
open(out + ".tmp", "w").write("\n".join(L) + "\n")
os.replace(out + ".tmp", out)
print("\n".join(L))
EOF
if [ -n "${CLEAN:-}" ]; then rm -rf "$MODEL"; fi
