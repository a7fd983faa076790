#!/usr/bin/env bash
# Issue #5's scheduler comparison with the expert-aware options (moe/serving/scheduler.h):
# expert-aware with --queue-length tokens|requests, --prefill-order queue|fcfs and --partial-queue
# stop|continue (all eight; scheduler column "tokens / queue / stop" = length / order / partial) against
# decode-first and prefill-first, at several arrival rates, token budgets and trace seeds, experts
# resident. Each run is bench/readme_serving.sh's replay (same synthetic trace, `--threads 1
# --clock cpu`), so the numbers of the default expert-aware, decode-first and prefill-first at
# budget 128 and seed 1 are that script's scheduler table.
# Writes .cache/bench/serving/sv-*.json and prints a markdown table (means over the seeds).
#
# Usage: bench/readme_sched_variants.sh [MODEL_DIR]
#   env: RATES="3 6" BUDGETS="64 128" SEEDS="1 2 3" N=32 PROMPT_MEDIAN=64 OUTPUT_MEDIAN=48
#        MAX_RUNNING=16 REUSE=1 (keep existing JSON) NO_TABLE=1 LOOKAHEAD=build/release/lookahead CORPUS=...
#        CLOCK=model (the deterministic cost-model clock instead of cpu; give it a TAG)
#        ONLY="ea-tokens-queue decode-first" (a subset of the variants below)
#        EXTRA="--cache belady --budget 3experts --prefetch off" TAG=belady3 (more replay flags; TAG names their files)
# Note: `moe replay --synth` caps prompts at the token budget, so each budget has its own trace;
# all schedulers of one (rate, budget, seed) replay the same trace.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
MODEL=${1:-$ROOT/.cache/readme-full/SmolLM2-135M-ReadMe}
LOOKAHEAD=${LOOKAHEAD:-$ROOT/build/release/lookahead}
RATES=${RATES:-3 6}
BUDGETS=${BUDGETS:-64 128}
SEEDS=${SEEDS:-1 2 3}
N=${N:-32}
PROMPT_MEDIAN=${PROMPT_MEDIAN:-64}
OUTPUT_MEDIAN=${OUTPUT_MEDIAN:-48}
MAX_RUNNING=${MAX_RUNNING:-16}
EXTRA=${EXTRA:-}
TAG=${TAG:-}
CLOCK=${CLOCK:-cpu}   # model: the deterministic cost-model clock (docs/serving-system.md)
[ -z "$EXTRA" ] || [ -n "$TAG" ] || { echo "readme_sched_variants: EXTRA needs a TAG for its file names" >&2; exit 1; }
WORK=$ROOT/.cache/bench/serving
mkdir -p "$WORK"
[ -d "$MODEL" ] || { echo "readme_sched_variants: $MODEL missing (make it with bench/readme_refactor_eval.sh or moe refactor)" >&2; exit 1; }
[ -x "$LOOKAHEAD" ] || { echo "readme_sched_variants: $LOOKAHEAD not built" >&2; exit 1; }
CORPUS=${CORPUS:-$WORK/heldout-mix.txt}
if [ ! -s "$CORPUS" ]; then cat "$ROOT"/.cache/corpus/*/heldout.txt > "$CORPUS.tmp" && mv "$CORPUS.tmp" "$CORPUS"; fi

# name|flags
VARIANTS=(
  "ea-tokens-queue|--scheduler expert-aware --queue-length tokens --prefill-order queue"
  "ea-requests-queue|--scheduler expert-aware --queue-length requests --prefill-order queue"
  "ea-tokens-fcfs|--scheduler expert-aware --queue-length tokens --prefill-order fcfs"
  "ea-requests-fcfs|--scheduler expert-aware --queue-length requests --prefill-order fcfs"
  "ea-tokens-queue-continue|--scheduler expert-aware --queue-length tokens --prefill-order queue --partial-queue continue"
  "ea-requests-queue-continue|--scheduler expert-aware --queue-length requests --prefill-order queue --partial-queue continue"
  "ea-tokens-fcfs-continue|--scheduler expert-aware --queue-length tokens --prefill-order fcfs --partial-queue continue"
  "ea-requests-fcfs-continue|--scheduler expert-aware --queue-length requests --prefill-order fcfs --partial-queue continue"
  "decode-first|--scheduler decode-first"
  "prefill-first|--scheduler prefill-first"
)
ONLY=${ONLY:-$(printf '%s\n' "${VARIANTS[@]}" | cut -d'|' -f1 | tr '\n' ' ')}
for seed in $SEEDS; do
  for budget in $BUDGETS; do
    for rate in $RATES; do
      for v in "${VARIANTS[@]}"; do
        name=${v%%|*}; flags=${v#*|}
        [[ " $ONLY " == *" $name "* ]] || continue
        out=$WORK/sv$TAG-$name-r$rate-b$budget-m$MAX_RUNNING-s$seed.json
        if [ "${REUSE:-0}" = 1 ] && [ -s "$out" ]; then continue; fi
        echo "replay $name rate $rate budget $budget seed $seed" >&2
        # shellcheck disable=SC2086  # flags are words
        "$LOOKAHEAD" moe replay --model "$MODEL" --synth "$N" --rate "$rate" --corpus "$CORPUS" \
          --prompt-median "$PROMPT_MEDIAN" --output-median "$OUTPUT_MEDIAN" --token-budget "$budget" \
          --max-running "$MAX_RUNNING" --seed "$seed" --threads 1 --clock "$CLOCK" --json $flags $EXTRA > "$out.tmp"
        mv "$out.tmp" "$out"
      done
    done
  done
done
[ -z "${NO_TABLE:-}" ] || exit 0

python3 - "$WORK" "$RATES" "$BUDGETS" "$SEEDS" "$MAX_RUNNING" "$TAG" "$ONLY" <<'EOF'
import json, os, sys
work, rates, budgets, seeds, max_running, tag, only = sys.argv[1:8]
names = [n for n in ["ea-tokens-queue", "ea-requests-queue", "ea-tokens-fcfs", "ea-requests-fcfs",
                     "ea-tokens-queue-continue", "ea-requests-queue-continue", "ea-tokens-fcfs-continue",
                     "ea-requests-fcfs-continue", "decode-first", "prefill-first"] if n in only.split()]
label = {"ea-tokens-queue": "expert-aware tokens / queue / stop (default)", "ea-requests-queue": "expert-aware requests / queue / stop",
         "ea-tokens-fcfs": "expert-aware tokens / fcfs / stop", "ea-requests-fcfs": "expert-aware requests / fcfs / stop",
         "ea-tokens-queue-continue": "expert-aware tokens / queue / continue",
         "ea-requests-queue-continue": "expert-aware requests / queue / continue",
         "ea-tokens-fcfs-continue": "expert-aware tokens / fcfs / continue",
         "ea-requests-fcfs-continue": "expert-aware requests / fcfs / continue",
         "decode-first": "decode-first", "prefill-first": "prefill-first"}
seeds = seeds.split()
def J(name, r, b, s):
    return json.load(open(os.path.join(work, f"sv{tag}-{name}-r{r}-b{b}-m{max_running}-s{s}.json")))
avg = lambda xs: sum(xs) / len(xs)
cached = any("cache_hit_ratio" in J(n, rates.split()[0], budgets.split()[0], seeds[0]) and
             J(n, rates.split()[0], budgets.split()[0], seeds[0])["cache"] != "resident" for n in names)
print(f"| rate | budget | scheduler | norm. latency mean (ms/token) | p95 | unique experts / batch | tokens / batch | "
      f"throughput (tok/s) | mean vs decode-first | mean vs prefill-first | p95 vs decode-first | p95 vs prefill-first |"
      + (" hit ratio | slow-tier GiB | stall s |" if cached else ""))
print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|" + ("---:|---:|---:|" if cached else ""))
for b in budgets.split():
    for r in rates.split():
        runs = {n: [J(n, r, b, s) for s in seeds] for n in names}
        m = {n: avg([j["normalized_latency_s"]["mean"] for j in runs[n]]) for n in names}
        p = {n: avg([j["normalized_latency_s"]["p95"] for j in runs[n]]) for n in names}
        for n in names:
            js = runs[n]
            # Per-seed wins: in how many seeds this scheduler's mean is below the baseline's.
            def rel(metric, base):
                if n == base or base not in runs: return "—"
                wins = sum(1 for a, c in zip(js, runs[base]) if a["normalized_latency_s"][metric] < c["normalized_latency_s"][metric])
                d = (m if metric == "mean" else p)
                return f"{100*(d[n]/d[base]-1):+.1f}% ({wins}/{len(js)})"
            print(f"| {r} | {b} | {label[n]} | {1e3*m[n]:.1f} | {1e3*p[n]:.1f} | "
                  f"{avg([j['mean_unique_experts'] for j in js]):.2f} | {avg([j['mean_batch_tokens'] for j in js]):.1f} | "
                  f"{avg([j['throughput_tok_s'] for j in js]):.1f} | {rel('mean', 'decode-first')} | {rel('mean', 'prefill-first')} | "
                  f"{rel('p95', 'decode-first')} | {rel('p95', 'prefill-first')} |"
                  + (f" {100*avg([j['cache_hit_ratio'] for j in js]):.1f}% | {avg([j['slow_tier_bytes'] for j in js])/2**30:.2f} | "
                     f"{avg([j['stall_s'] for j in js]):.1f} |" if cached else ""))
EOF
