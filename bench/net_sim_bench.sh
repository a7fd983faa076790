#!/usr/bin/env bash
# Speed of the packet-level simulator (docs/results/net-sim.md). Usage:
#   bench/net_sim_bench.sh [BINARY] [BASELINE_BINARY]
# Prints one line per scenario: wall s, user CPU s, events, M events/s (user CPU), peak RSS, and the
# 1-minute load average when the scenario started (the machine may be shared: wall time then
# includes waiting for a CPU, user time does not).
# With a second binary, the two 1024-host scenarios also run on it, back to back (side-by-side ratio).
set -euo pipefail
BIN=${1:-build/release/lookahead}
BASE=${2:-}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

measure() {  # label binary args...
  local label=$1 bin=$2
  shift 2
  local load
  load=$(cut -d' ' -f1 /proc/loadavg)
  /usr/bin/time -f "%e %U %M" -o "$TMP/time" "$bin" net run "$@" --perf >"$TMP/out.txt" 2>"$TMP/err" || { cat "$TMP/err"; return 1; }
  read -r wall user rss <"$TMP/time"
  local events finished
  events=$(sed -n 's/.*s, \([0-9]*\) events.*/\1/p' "$TMP/err")
  finished=$(sed -n 's/.*: \([0-9]* of [0-9]* finished by [0-9.]* us\).*/\1/p' "$TMP/out.txt")
  printf "%-40s | %-16s | wall %7.2f s | user %7.2f s | %9d events | %5.2f M ev/s (user) | RSS %4d MiB | load %5s | %s\n" "$label" \
    "$(basename "$bin")" "$wall" "$user" "$events" "$(python3 -c "print($events / max($user, 1e-3) / 1e6)")" "$((rss / 1024))" "$load" "$finished"
}

run_both() {
  local label=$1
  shift
  measure "$label" "$BIN" "$@"
  if [[ -n "$BASE" ]]; then measure "$label" "$BASE" "$@"; fi
}

FT="--topology fat_tree --k 16 --gbps 100 --mtu 4096"
run_both "fat-tree 1024 perm 2MB spray" $FT --workload permutation --bytes 2000000 --lb spray
run_both "fat-tree 1024 perm 2MB ecmp" $FT --workload permutation --bytes 2000000 --lb ecmp
# Growth with hosts: 1:1 fat-trees of 64, 256, 1024 and 4096 hosts (pods, ToRs/pod, hosts/ToR, aggs/pod, cores).
for shape in "4 4 4 4 16" "8 8 4 4 32" "16 8 8 8 64" "16 16 16 16 256"; do
  read -r pods tors hpt aggs cores <<<"$shape"
  hosts=$((pods * tors * hpt))
  measure "fat-tree $hosts hosts perm 2MB spray" "$BIN" --topology fat_tree --pods $pods --tors-per-pod $tors --hosts-per-tor $hpt \
    --aggs-per-pod $aggs --cores $cores --gbps 100 --workload permutation --bytes 2000000 --lb spray
done
python3 bench/net_ring_matrix.py 256 67108864 >"$TMP/ring.cm"
measure "leaf-spine 256x400G ring all-reduce 64MB" "$BIN" --leaves 16 --spines 16 --hosts-per-leaf 16 --gbps 400 --matrix "$TMP/ring.cm" --lb ecmp
