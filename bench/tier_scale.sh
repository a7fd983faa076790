#!/usr/bin/env bash
# The "Slow tier" scale run of docs/results/readme-serving.md: a Llama-2-7B-shape synthetic Read-ME
# model (8 layers, 4 experts, bf16: 4.03 GiB of expert slabs) against a 1 GiB fast-tier budget,
# through `moe tier-bench` with each policy / prefetch setting; one JSON line per run. The disk
# is shared and noisy: REPEAT=3 runs the set three times (report medians).
# Usage: bench/tier_scale.sh [lookahead binary=build/release/lookahead] [model dir=.cache/synth/llama2-7b-8l]
# Writes the model first if missing (about 6 GB; delete it afterwards).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-build/release/lookahead}
MODEL=${2:-.cache/synth/llama2-7b-8l}
[ -d "$MODEL" ] || nice -n 19 "$BIN" moe synth --shape llama2-7b --experts 4 --layers 8 --dtype bf16 --seed 1 --out "$MODEL"
COMMON=(--model "$MODEL" --streams 4 --batches 8 --horizon 2 --seed 1 --json)
# Measured after warm-up batches (2; 8 for the everything-resident run, so every slab is loaded first).
run() { nice -n 19 "$BIN" moe tier-bench "${COMMON[@]}" --warmup 2 "$@"; }
run_resident() { nice -n 19 "$BIN" moe tier-bench "${COMMON[@]}" --warmup 8 "$@"; }
for rep in $(seq "${REPEAT:-1}"); do
run --budget 1GiB --policy belady --prefetch on
run --budget 1GiB --policy belady --prefetch conservative
run --budget 1GiB --policy belady --prefetch off
run --budget 1GiB --policy lru --prefetch on
run --budget 1GiB --policy lru --prefetch off
run --budget 1GiB --policy random --prefetch on
run --policy none --prefetch off
run --budget 1GiB --policy belady --prefetch on --plan random
run_resident --budget 5GiB --policy belady --prefetch on   # everything fits: nothing read after warm-up
done
