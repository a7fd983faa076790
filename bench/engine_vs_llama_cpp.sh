#!/usr/bin/env bash
# Speed of our engine against llama.cpp, side by side on this machine, same thread count:
#   llama-bench -m MODEL -t N -p 512 -n 128 -r R -o json
#   lookahead moe bench --model MODEL --threads N -p 512 -n 128 -r R --json
# on SmolLM2-135M-Instruct Q4_1 (models/) and an F16 version of it (written by our GGUF writer via
# `lookahead moe convert --type f16` when that command exists, else by llama.cpp's llama-quantize,
# and the table says which). Also: decode's effective memory bandwidth (weight bytes read per token
# x tg tokens/s) against this machine's read bandwidth (bench/membw.c), and peak RSS after loading
# and after 1k tokens of context (bench/rss_probe.py). Writes docs/results/engine-speed.md.
#
# Usage: bench/engine_vs_llama_cpp.sh            (env: THREADS=2 REPS=5 ROUNDS=4 MODELS="q4_1 f16" LOOKAHEAD=build/release/lookahead)
# Rounds interleave the two engines (and the models) so that load from other jobs hits both; the
# table reports each round, the median over rounds, and the load average around every run.
# Prerequisites: bench/llama_cpp_build.sh (run here if its binaries are missing), a built lookahead.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
THREADS=${THREADS:-2}
REPS=${REPS:-5}
ROUNDS=${ROUNDS:-4}
MODELS=${MODELS:-q4_1 f16}
LOOKAHEAD=${LOOKAHEAD:-$ROOT/build/release/lookahead}
LLAMA_BIN=${LLAMA_BIN:-$ROOT/.cache/llama.cpp-build/bin}
Q4=$ROOT/models/SmolLM2-135M-Instruct.Q4_1.gguf
F16=$ROOT/.cache/models/SmolLM2-135M-Instruct.F16.gguf
WORK=$ROOT/.cache/bench/speed
OUTMD=$ROOT/docs/results/engine-speed.md
mkdir -p "$WORK" "$(dirname "$F16")" "$(dirname "$OUTMD")"

[ -x "$LLAMA_BIN/llama-bench" ] || bench/llama_cpp_build.sh
[ -x "$LOOKAHEAD" ] || { echo "engine_vs_llama_cpp: $LOOKAHEAD not built (cmake --build --preset release)" >&2; exit 1; }
"$LOOKAHEAD" moe bench --help >/dev/null 2>&1 || { echo "engine_vs_llama_cpp: '$LOOKAHEAD moe bench' is missing" >&2; exit 1; }
[ -f "$Q4" ] || { echo "engine_vs_llama_cpp: $Q4 missing (scripts/setup downloads it)" >&2; exit 1; }

# The F16 model: our writer if available, else llama-quantize (said so in the table).
F16_MAKER_FILE=$WORK/f16_maker.txt
if [ ! -f "$F16" ]; then
  if "$LOOKAHEAD" moe convert --help >/dev/null 2>&1; then
    "$LOOKAHEAD" moe convert --model "$Q4" --type f16 --out "$F16"
    echo "lookahead moe convert --model $(basename "$Q4") --type f16 (our GGUF writer)" > "$F16_MAKER_FILE"
  else
    "$LLAMA_BIN/llama-quantize" --allow-requantize "$Q4" "$F16" F16 >"$WORK/quantize.log" 2>&1
    echo "llama-quantize --allow-requantize $(basename "$Q4") F16 (our converter was not available yet)" > "$F16_MAKER_FILE"
  fi
fi
[ -f "$F16_MAKER_FILE" ] || echo "(existing file $F16)" > "$F16_MAKER_FILE"

# RENDER_ONLY=1 only rewrites the table from the outputs of an earlier run in .cache/bench/speed/.
if [ "${RENDER_ONLY:-0}" != 1 ]; then
# Memory read bandwidth of this machine, same thread count, before and after the runs.
MEMBW=$WORK/membw
[ "$MEMBW" -nt bench/membw.c ] || cc -O3 -march=native -fopenmp bench/membw.c -o "$MEMBW"
"$MEMBW" 1024 "$THREADS" 10 > "$WORK/membw_before.json"

# Each run records the 1-minute load average just before and after it (other jobs share the cores).
run_llama() {  # model tag round
  cut -d' ' -f1 /proc/loadavg > "$WORK/load_llama_$2_$3.txt"
  "$LLAMA_BIN/llama-bench" -m "$1" -t "$THREADS" -p 512 -n 128 -r "$REPS" -o json > "$WORK/llama_$2_$3.json" 2>"$WORK/llama_$2_$3.log"
  cut -d' ' -f1 /proc/loadavg >> "$WORK/load_llama_$2_$3.txt"
}
run_ours() {
  cut -d' ' -f1 /proc/loadavg > "$WORK/load_ours_$2_$3.txt"
  "$LOOKAHEAD" moe bench --model "$1" --threads "$THREADS" -p 512 -n 128 -r "$REPS" --json > "$WORK/ours_$2_$3.json" 2>"$WORK/ours_$2_$3.log"
  cut -d' ' -f1 /proc/loadavg >> "$WORK/load_ours_$2_$3.txt"
}
rm -f "$WORK"/load_*.txt "$WORK"/llama_*_*.json "$WORK"/ours_*_*.json
for round in $(seq 1 "$ROUNDS"); do
  for tag in $MODELS; do
    model=$Q4; [ $tag = f16 ] && model=$F16
    echo "round $round: $tag" >&2
    # Alternate who goes first, so a drift in the machine's load does not favour one side.
    if [ $((round % 2)) = 1 ]; then run_llama "$model" $tag "$round"; run_ours "$model" $tag "$round";
    else run_ours "$model" $tag "$round"; run_llama "$model" $tag "$round"; fi
  done
done
"$MEMBW" 1024 "$THREADS" 10 > "$WORK/membw_after.json"

# Peak RSS: after loading (1-token prompt) and with 1k tokens of context (1024-token prompt).
ids1k=$(python3 -c "import random; r=random.Random(1); print(','.join(str(r.randrange(100, 49000)) for _ in range(1024)))")
for tag in $MODELS; do
  model=$Q4; [ $tag = f16 ] && model=$F16
  python3 bench/rss_probe.py -- "$LOOKAHEAD" moe logits --model "$model" --threads "$THREADS" --prompt-ids 1 --json \
    >/dev/null 2>"$WORK/rss_ours_${tag}_load.json"
  python3 bench/rss_probe.py -- "$LOOKAHEAD" moe logits --model "$model" --threads "$THREADS" --prompt-ids "$ids1k" --json \
    >/dev/null 2>"$WORK/rss_ours_${tag}_1k.json"
  python3 bench/rss_probe.py -- "$LLAMA_BIN/llama-bench" -m "$model" -t "$THREADS" -p 1 -n 0 -r 1 -o json \
    >/dev/null 2>"$WORK/rss_llama_${tag}_load.json"
  python3 bench/rss_probe.py -- "$LLAMA_BIN/llama-bench" -m "$model" -t "$THREADS" -p 1024 -n 0 -r 1 -o json \
    >/dev/null 2>"$WORK/rss_llama_${tag}_1k.json"
done

fi

MODELS="$MODELS" python3 - "$WORK" "$OUTMD" "$THREADS" "$REPS" "$ROUNDS" "$(cat "$F16_MAKER_FILE")" "$(cat "$ROOT/.cache/llama.cpp-src/.from" 2>/dev/null || echo unknown)" <<'EOF'
import json, os, platform, statistics, subprocess, sys, datetime
work, out, threads, reps, rounds, f16_maker, llama_from = sys.argv[1:8]
rounds = int(rounds)
tags = [(t, t.upper()) for t in os.environ["MODELS"].split()]

def last_json_line(path):  # rss_probe writes its JSON as the last stderr line
    lines = [l for l in open(path).read().splitlines() if l.startswith("{")]
    return json.loads(lines[-1])

def tests(path):
    recs = json.load(open(path))
    d = {}
    for r in recs:
        key = "pp%d" % r["n_prompt"] if r["n_prompt"] and not r["n_gen"] else "tg%d" % r["n_gen"]
        d[key] = r
    return d

cpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
model_name = next((l.split(":", 1)[1].strip() for l in cpu.splitlines() if l.startswith("Model name")), "?")
ncpu = os.cpu_count()
bw = [last_json_line(os.path.join(work, f)) for f in ("membw_before.json", "membw_after.json")
      if os.path.exists(os.path.join(work, f))]
bw = bw + bw[:1] if len(bw) == 1 else bw
bw_best = max(b["best_gbps"] for b in bw)
load = open("/proc/loadavg").read().split()[:3]
loads = []
for f in sorted(os.listdir(work)):
    if f.startswith("load_") and f.endswith(".txt"):
        loads += [float(x) for x in open(os.path.join(work, f)).read().split()]
load_line = (f"1-minute load average sampled before and after each of the {len([f for f in os.listdir(work) if f.startswith('load_')])} "
             f"runs: min {min(loads):.1f}, median {statistics.median(loads):.1f}, max {max(loads):.1f}" if loads else "not recorded")

rows, bw_rows = [], []
for tag, label in tags:
    per = {"pp512": ([], []), "tg128": ([], [])}
    wbytes = None
    for r in range(1, rounds + 1):
        # A round cut short (time limit) lacks files; the table counts only complete rounds.
        if not all(os.path.exists(os.path.join(work, f"{w}_{tag}_{r}.json")) for w in ("llama", "ours")):
            continue
        l = tests(os.path.join(work, f"llama_{tag}_{r}.json"))
        o = tests(os.path.join(work, f"ours_{tag}_{r}.json"))
        for t in per:
            per[t][0].append(l[t]["avg_ts"])
            per[t][1].append(o[t]["avg_ts"])
        wbytes = o["tg128"].get("weight_bytes_per_token")
    for t in ("pp512", "tg128"):
        ll, oo = per[t]
        ratios = [b / a for a, b in zip(ll, oo)]
        rows.append(f"| {label} | {t} | " + " / ".join(f"{x:.1f}" for x in ll) + " | " + " / ".join(f"{x:.1f}" for x in oo)
                    + " | " + " / ".join(f"{x:.2f}x" for x in ratios)
                    + f" | {statistics.median(ll):.1f} | {statistics.median(oo):.1f} | **{statistics.median(oo)/statistics.median(ll):.2f}x** "
                    + f"| {statistics.median(ratios):.2f}x |")
    if wbytes:
        tl, to = statistics.median(per["tg128"][0]), statistics.median(per["tg128"][1])
        bw_rows.append(f"| {label} | {wbytes/1e6:.1f} MB | {to:.1f} | {wbytes*to/1e9:.2f} GB/s ({wbytes*to/1e9/bw_best:.0%}) "
                       f"| {tl:.1f} | {wbytes*tl/1e9:.2f} GB/s ({wbytes*tl/1e9/bw_best:.0%}) |")

rss_rows = []
for tag, label in tags:
    for who, name in (("ours", "lookahead"), ("llama", "llama.cpp")):
        fa, fb = (os.path.join(work, f"rss_{who}_{tag}_{k}.json") for k in ("load", "1k"))
        if not (os.path.exists(fa) and os.path.exists(fb)) or "{" not in open(fa).read() + " " or "{" not in open(fb).read():
            rss_rows.append(f"| {label} | {name} | not measured | not measured |")
            continue
        a, b = last_json_line(fa), last_json_line(fb)
        rss_rows.append(f"| {label} | {name} | {a['peak_rss_mib']:.0f} ({a['peak_anon_mib']:.0f} anon + {a['peak_file_mib']:.0f} file) "
                        f"| {b['peak_rss_mib']:.0f} ({b['peak_anon_mib']:.0f} anon + {b['peak_file_mib']:.0f} file) |")

md = f"""# Engine speed: lookahead vs llama.cpp

Generated by `bench/engine_vs_llama_cpp.sh` (THREADS={threads} REPS={reps} ROUNDS={rounds}) on
{datetime.datetime.utcnow().strftime('%Y-%m-%d %H:%M UTC')}.

- Machine: {model_name}, {ncpu} cores visible, {platform.machine()}, Linux {platform.release()}.
  **Shared with other jobs** ({ncpu} cores, several people building): {load_line}; load average at
  the end {' '.join(load)}. Absolute numbers are noisy; the ratios come from runs interleaved in the
  same minutes (who goes first alternates each round), and medians over rounds damp single bad rounds.
- Baseline: llama.cpp from {llama_from} (vendor/llama.cpp), built by `bench/llama_cpp_build.sh`
  (Release, GGML_NATIVE=ON, GGML_OPENMP=ON, no BLAS, static).
- Commands, per model and round:
  - `llama-bench -m MODEL -t {threads} -p 512 -n 128 -r {reps} -o json`
  - `lookahead moe bench --model MODEL --threads {threads} -p 512 -n 128 -r {reps} --json`
- Models: `models/SmolLM2-135M-Instruct.Q4_1.gguf`; F16 made by: {f16_maker}.

## Tokens per second (each round's mean over {reps} repetitions; ratio = ours / llama.cpp)

| weights | test | llama.cpp t/s (rounds) | lookahead t/s (rounds) | ratio per round | llama.cpp median | lookahead median | ratio of medians | median of ratios |
| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |
{chr(10).join(rows)}

## Decode's effective memory bandwidth

Weight bytes read per decoded token (all matrices, the tied embedding read as the output matrix)
x tg128 tokens/s (median over rounds), against this machine's measured read bandwidth with {threads} threads
(`bench/membw.c`, 1 GiB buffer, best of 10 passes: {bw[0]['best_gbps']:.2f} GB/s before the runs,
{bw[1]['best_gbps']:.2f} GB/s after; percentages use {bw_best:.2f} GB/s).

| weights | bytes/token | lookahead t/s | lookahead GB/s | llama.cpp t/s | llama.cpp GB/s |
| --- | ---: | ---: | ---: | ---: | ---: |
{chr(10).join(bw_rows)}

## Peak RSS (MiB)

Weights are memory-mapped, so they appear as file-backed pages. "load": a 1-token prompt
(`lookahead moe logits --prompt-ids 1`; `llama-bench -p 1 -n 0 -r 1`); "1k context": a 1024-token
prompt (`lookahead moe logits --prompt-ids <1024 ids>`; `llama-bench -p 1024 -n 0 -r 1`), measured
by `bench/rss_probe.py` (peak of /proc/PID/status VmRSS, RssAnon, RssFile).

| weights | engine | load | 1k context |
| --- | --- | ---: | ---: |
{chr(10).join(rss_rows)}
"""
tmp = out + ".tmp"
open(tmp, "w").write(md)
os.replace(tmp, out)
print(md)
EOF
