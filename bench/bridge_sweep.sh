#!/usr/bin/env bash
# bench/bridge_sweep.sh: the tables of docs/results/bridge.md. Expert-parallel all-to-all of a
# 7B-shape Read-ME deployment (hidden 4096, bf16, 32 MoE layers, 4096 tokens per batch) under
# ECMP, spraying, REPS, Ethereal (equal split), ethereal-min and ethereal-even (unequal splits), packet-level,
# against the fluid lower bound. Routing: the real pre-gating router on each held-out domain, the
# unseen licence text and a mixed batch; then a synthetic Zipf skew sweep. Fabric names ending in
# -phase run with --sync phase (a barrier between phases) instead of per-host dependencies.
#   usage: bench/bridge_sweep.sh MODEL_DIR [OUT_DIR]     (about 2-4 minutes on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${1:?usage: bench/bridge_sweep.sh MODEL_DIR [OUT_DIR]}
OUT=${2:-.cache/bridge-sweep}
L=${LOOKAHEAD:-build/release/lookahead}
C=.cache/corpus
mkdir -p "$OUT"
DOMAINS=(code dictionary docs german quotes russian)
MIX=$(printf "$C/%s/heldout.txt," "${DOMAINS[@]}"); MIX=${MIX%,}
SHAPE=(--hidden 4096 --dtype bf16 --layers 32 --batch-tokens 4096 -t 1)
# Fabrics: name, flags (leaf-spine, 400 Gbps hosts, 500 ns links).
fabric_flags() {
  case $1 in
    32h-1to1) echo "--leaves 4 --spines 8 --hosts-per-leaf 8" ;;
    32h-4to1) echo "--leaves 4 --spines 8 --hosts-per-leaf 8 --oversubscription 4" ;;
    8h-4to1)  echo "--leaves 2 --spines 4 --hosts-per-leaf 4 --oversubscription 4" ;;
    64h-4to1) echo "--leaves 8 --spines 8 --hosts-per-leaf 8 --oversubscription 4" ;;
    *-phase)  echo "$(fabric_flags "${1%-phase}") --sync phase" ;;  # a barrier between phases
  esac
}
SEEDS=${SEEDS:-1 2 3}
run() {  # name fabric args...: one JSON per seed (planner shuffles, ECMP hashes, spraying entropies)
  local name=$1 fabric=$2; shift 2
  for seed in $SEEDS; do
    echo "bridge run $name on $fabric, seed $seed" >&2
    # shellcheck disable=SC2046
    $L bridge run "${SHAPE[@]}" $(fabric_flags "$fabric") "$@" --seed "$seed" --json > "$OUT/$name@$fabric@$seed.json"
  done
}
for fabric in 32h-1to1 32h-4to1 32h-4to1-phase; do
  for d in "${DOMAINS[@]}"; do run "router-$d" $fabric --model "$MODEL" --text "$C/$d/heldout.txt"; done
  run router-unseen $fabric --model "$MODEL" --text .cache/unseen/licenses.txt
  run router-mix $fabric --model "$MODEL" --text "$MIX"
done
for fabric in 8h-4to1 64h-4to1; do run router-mix $fabric --model "$MODEL" --text "$MIX"; done
run router-code-hot 32h-4to1 --model "$MODEL" --text "$C/code/heldout.txt" --placement hot
run router-mix-hot 32h-4to1 --model "$MODEL" --text "$MIX" --placement hot
for fabric in 32h-1to1 32h-4to1 32h-4to1-phase; do
  for s in 0 0.5 1 1.5 2; do run "zipf-$s" $fabric --zipf $s --experts 32; done
done
python3 - "$OUT" <<'PY'
import json, sys, glob, os, collections
out = sys.argv[1]
SCHEMES = ("ecmp", "spray", "reps", "ethereal", "ethereal-min", "ethereal-even")
runs = collections.defaultdict(list)
for p in sorted(glob.glob(out + "/*.json")):
    name, fabric, seed = os.path.basename(p)[:-5].split("@")
    runs[(name, fabric)].append(json.load(open(p)))
def row(name, fabric, js):
    j = js[0]
    b, serial = j["bound"]["forward_us"], j["bound"]["phase_serial_us"]
    loads = j["expert_tokens"]
    top = max(loads) / sum(loads)
    fwd = {}
    for k in SCHEMES:
        vals = [next(s for s in x["schemes"] if s["scheme"] == k) for x in js]
        fwd[k] = [v["forward_us"] for v in vals] if all(v["finished"] for v in vals) else None
    mean = lambda v: sum(v) / len(v)
    cell = lambda k: "unfinished" if fwd[k] is None else f'{mean(fwd[k]):.0f} ({mean(fwd[k])/b:.2f}) [{min(fwd[k]):.0f}-{max(fwd[k]):.0f}]'
    m = mean(fwd["ethereal-min"])
    even_gain = "-" if fwd["ethereal-even"] is None or fwd["ethereal"] is None else f'{100*(1 - mean(fwd["ethereal-even"])/mean(fwd["ethereal"])):+.1f}%'
    gain = lambda k: "-" if fwd[k] is None else f'{100*(1 - m/mean(fwd[k])):+.1f}%'
    s = {x["scheme"]: x for x in j["schemes"]}
    qps = f'{s["ethereal"]["max_qps_per_host"]} / {s["ethereal-min"]["max_qps_per_host"]}'
    fl = f'{s["ethereal"]["max_fabric_ratio_to_spray"]:.2f}'
    return (f'| {name} | {fabric} | {100*top:.0f}% | {b:.0f} | {serial:.0f} | ' + " | ".join(cell(k) for k in SCHEMES) +
            f' | {gain("ethereal")} | {gain("spray")} | {gain("reps")} | {gain("ecmp")} | {even_gain} | {fl} | {qps} |')
cols = ["routing", "fabric", "top expert share", "lower bound us", "phase-serial us", "ECMP us (/bound) [min-max]", "spray", "REPS",
        "Ethereal (equal)", "ethereal-min (unequal)", "ethereal-even (unequal)", "min vs equal", "min vs spray", "min vs REPS",
        "min vs ECMP", "even vs equal", "Ethereal fluid busiest fabric link / spray's", "max QPs/host Ethereal / min"]
head = "| " + " | ".join(cols) + " |\n| --- | --- | " + " | ".join(["---:"] * (len(cols) - 2)) + " |"
for title, pred in (("Real router", lambda n: n.startswith("router-")), ("Zipf sweep (32 experts, one per host)", lambda n: n.startswith("zipf-"))):
    print(f"\n### {title}\n\n{head}")
    for (name, fabric), js in sorted(runs.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        if pred(name): print(row(name, fabric, js))
PY
