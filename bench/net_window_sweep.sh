#!/usr/bin/env bash
# Window cap vs spraying on a 1:1 fabric (issue 17 item 1b; docs/results/net-sim.md). Usage:
#   bench/net_window_sweep.sh [BINARY] [K]
# Runs a permutation of 2 MB flows with packet spraying on the k-ary fat-tree (default k = 16: 1024
# hosts, 100 Gbit/s, 500 ns links, 4096-byte MTU) under DCTCP for several window caps (init = cap) and
# both starting alphas, and once without congestion control and without a window cap (what the
# fabric itself allows with oblivious spraying). Prints one markdown row per setting: FCT mean and
# max over all flows, mean per class (same ToR / same pod / cross-core), ECN marks, peak link use.
set -euo pipefail
BIN=${1:-build/release/lookahead}
K=${2:-16}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
HPT=$((K / 2))
HPP=$((K * K / 4))
row() {  # label cc cap alpha
  local label=$1 cc=$2 cap=$3 alpha=$4
  cat >"$TMP/spec.json" <<JSON
{"topology": {"kind": "fat_tree", "k": $K, "host_gbps": 100},
 "network": {"mtu": 4096, "lb": "spray", "cc": "$cc", "max_cwnd_bytes": $cap, "dctcp_alpha_init": $alpha},
 "workload": {"kind": "permutation", "bytes": 2000000}}
JSON
  "$BIN" net run --spec "$TMP/spec.json" --json --links >"$TMP/out.json"
  python3 - "$TMP/out.json" "$label" "$HPT" "$HPP" <<'PY'
import json, sys
j = json.load(open(sys.argv[1])); label = sys.argv[2]; hpt, hpp = int(sys.argv[3]), int(sys.argv[4])
cls = {"same-tor": [], "same-pod": [], "cross-core": []}
for f in j["flows"]:
    s, d = f["src"], f["dst"]
    k = "same-tor" if s // hpt == d // hpt else "same-pod" if s // hpp == d // hpp else "cross-core"
    cls[k].append(f["fct_us"])
m = lambda v: f"{sum(v) / len(v):.1f}" if v else "-"
s = j["summary"]
print(f"| {label} | {s['finished']}/{s['flows']} | {s['mean_fct_us']:.1f} | {s['max_fct_us']:.1f} | "
      f"{m(cls['same-tor'])} | {m(cls['same-pod'])} | {m(cls['cross-core'])} | {s['ecn_marks']} | {s['max_link_utilisation']:.3f} |")
PY
}
# The longest path's bandwidth-delay product (6 hops of 500 ns each way, 4160-byte packets and 64-byte
# ACKs store-and-forward at 100 Gbit/s): 8.0275 us x 12.5 GB/s = 100,344 bytes.
BDP=100344
echo "| setting | finished | mean FCT us | max FCT us | same-ToR mean | same-pod mean | cross-core mean | ECN marks | peak link use |"
echo "|---|---|---|---|---|---|---|---|---|"
row "dctcp, cap 1 BDP + 2 MTU, alpha0 1 (before issue 17)" dctcp $((BDP + 8192)) 1
row "dctcp, cap 1 BDP + 2 MTU, alpha0 0" dctcp $((BDP + 8192)) 0
for mult in 1.5 2 3 5 10; do
  cap=$(python3 -c "print(int($BDP * $mult))")
  row "dctcp, cap $mult BDP, alpha0 1" dctcp "$cap" 1
  row "dctcp, cap $mult BDP, alpha0 0" dctcp "$cap" 0
done
row "no congestion control, no window cap (the fabric's bound)" none 1000000000 1
