#!/usr/bin/env bash
# lookahead's packet simulator side by side with htsim (docs/results/net-sim.md, "Side by side with
# htsim"). Usage:
#   bench/vs_htsim.sh HTSIM_DIR [BINARY]
# HTSIM_DIR: a built checkout of https://github.com/Broadcom/csg-htsim (its root or its sim/ folder;
# `cd sim && make && cd datacenter && make`). Never committed here, and no test needs it.
#
# The scenario is a permutation of 2 MB flows on a 1:1 3-tier fat-tree at 100 Gbit/s: one htsim
# connection matrix (htsim's own gen_permutation.py) and one htsim topology file, converted for
# lookahead by bench/vs_htsim.py, so both simulate the same flows on the same graph. Matched: MTU
# (4096 B on the wire per data packet, no separate header), 500 ns per hop, 0 switch latency, 1 MiB
# per switch port, a window of CWND packets (htsim NDP's initial window; lookahead's window starts at
# and is capped by it) and the FCT definition (first byte sent to the last ACK at the sender).
# Not matched (the transports differ): htsim runs NDP (receiver-pulled, trimming switches), lookahead
# a DCTCP-windowed RoCE sender on drop-tail ECN ports. Spraying: htsim -strat perm (source routes
# over a permutation of all paths), lookahead --lb spray; ECMP: htsim -strat ecmp_host -paths 1, one
# hashed path per flow, lookahead --lb ecmp; several seeds (the hash differs between the two, so the
# seeds compare distributions, not runs).
#
# Each run: wall s, user CPU s, peak RSS, events (lookahead only: htsim does not count them),
# finished flows, mean, p99 and last FCT. Rounds alternate which simulator runs first. Environment:
#   HOSTS="1024 4096"  sizes (1024, 4096, 16384: bench/vs_htsim.py SHAPES)
#   HTSIM_MAX_HOSTS=4096  larger sizes run lookahead only (htsim needs ~10x the time)
#   ROUNDS=2  ECMP_SEEDS="1 2 3"  BYTES=2000000  CWND=50 (packets)  LATENCY_NS=500  MATRIX_SEED=1
set -euo pipefail
HTSIM=${1:?usage: bench/vs_htsim.sh HTSIM_DIR [BINARY]}
BIN=${2:-build/release/lookahead}
[[ -x $HTSIM/sim/datacenter/htsim_ndp ]] && HTSIM=$HTSIM/sim
[[ -d $HTSIM/datacenter ]] && HTSIM=$(cd "$HTSIM" && pwd)  # absolute: htsim runs in a temporary directory
NDP=$HTSIM/datacenter/htsim_ndp
GEN=$HTSIM/datacenter/connection_matrices/gen_permutation.py
[[ -x $NDP ]] || { echo "no htsim_ndp under $1 (build it: cd sim && make && cd datacenter && make)" >&2; exit 1; }
[[ -x $BIN ]] || { echo "no $BIN (build lookahead first)" >&2; exit 1; }
HERE=$(cd "$(dirname "$0")" && pwd)
HOSTS=${HOSTS:-1024 4096}
HTSIM_MAX_HOSTS=${HTSIM_MAX_HOSTS:-4096}
ROUNDS=${ROUNDS:-2}
ECMP_SEEDS=${ECMP_SEEDS:-1 2 3}
BYTES=${BYTES:-2000000}
CWND=${CWND:-50}
LATENCY_NS=${LATENCY_NS:-500}
MATRIX_SEED=${MATRIX_SEED:-1}
MTU=4096
QUEUE=1048576
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

echo "# $(date -u +%FT%TZ) $(uname -m), $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "# lookahead $(git -C "$HERE/.." rev-parse --short HEAD 2>/dev/null || echo '?'), htsim $(git -C "$HTSIM/.." rev-parse --short HEAD 2>/dev/null || echo '(not a git checkout)')"
echo "# HOSTS='$HOSTS' BYTES=$BYTES CWND=$CWND packets MTU=$MTU LATENCY_NS=$LATENCY_NS ROUNDS=$ROUNDS ECMP_SEEDS='$ECMP_SEEDS'"
echo "| hosts | lb | seed | simulator | round | wall s | user s | peak RSS MiB | events | finished | mean FCT us | p99 FCT us | last FCT us | load |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"

row() { echo "$1" | tee -a "$TMP/table.md"; }

run_lookahead() {  # hosts lb seed round
  local dir=$TMP/$1 load events
  load=$(cut -d' ' -f1 /proc/loadavg)
  /usr/bin/time -f "%e %U %M" -o "$dir/time" "$BIN" net run --spec "$dir/spec-$2.json" --seed "$3" --perf \
    --csv "$dir/lh" >"$dir/lh.out" 2>"$dir/lh.err" || { cat "$dir/lh.err" >&2; return 1; }
  events=$(sed -n 's/.*s, \([0-9]*\) events.*/\1/p' "$dir/lh.err")
  read -r wall user rss <"$dir/time"
  row "| $1 | $2 | $3 | lookahead | $4 | $wall | $user | $((rss / 1024)) | $events | $(python3 "$HERE/vs_htsim.py" fct-lookahead "$dir/lh_flows.csv" | tr ' ' '|' | sed 's/|/ | /g') | $load |"
}

run_htsim() {  # hosts lb seed round
  local dir=$TMP/$1 load strat
  if [[ $2 == spray ]]; then strat=(-strat perm); else strat=(-strat ecmp_host -paths 1); fi
  load=$(cut -d' ' -f1 /proc/loadavg)
  # -end: far beyond the last FCT (htsim stops there even with flows unfinished; they show as such).
  # htsim writes idmap.txt into its working directory: run it in the scenario's temporary one.
  (cd "$dir" && /usr/bin/time -f "%e %U %M" -o "$dir/time" "$NDP" -topo "$dir/ft.topo" -tm "$dir/perm.cm" -nodes "$1" "${strat[@]}" \
    -cwnd "$CWND" -mtu "$MTU" -q $((QUEUE / MTU)) -linkspeed 100000 -seed "$3" -end 20000 -o "$dir/htsim.log" \
    >"$dir/htsim.out" 2>"$dir/htsim.err") || { tail "$dir/htsim.err" >&2; return 1; }
  read -r wall user rss <"$dir/time"
  row "| $1 | $2 | $3 | htsim | $4 | $wall | $user | $((rss / 1024)) | - | $(python3 "$HERE/vs_htsim.py" fct-htsim "$dir/htsim.out" "$dir/perm.cm" | tr ' ' '|' | sed 's/|/ | /g') | $load |"
}

for hosts in $HOSTS; do
  dir=$TMP/$hosts
  mkdir -p "$dir"
  python3 "$GEN" "$dir/perm.cm" "$hosts" "$hosts" "$BYTES" 0 "$MATRIX_SEED" >/dev/null
  python3 "$HERE/vs_htsim.py" convert "$dir/perm.cm" >"$dir/perm.lh.cm"
  python3 "$HERE/vs_htsim.py" topo "$hosts" "$LATENCY_NS" >"$dir/ft.topo"
  for lb in spray ecmp; do
    python3 "$HERE/vs_htsim.py" spec "$hosts" "$LATENCY_NS" "$MTU" $((CWND * MTU)) "$QUEUE" "$lb" "$dir/perm.lh.cm" >"$dir/spec-$lb.json"
  done
  for round in $(seq 1 "$ROUNDS"); do
    for lb in spray ecmp; do
      seeds=1
      [[ $lb == ecmp ]] && seeds=$ECMP_SEEDS
      for seed in $seeds; do
        if ((hosts > HTSIM_MAX_HOSTS)); then
          run_lookahead "$hosts" "$lb" "$seed" "$round"
        elif ((round % 2)); then
          run_lookahead "$hosts" "$lb" "$seed" "$round"
          run_htsim "$hosts" "$lb" "$seed" "$round"
        else
          run_htsim "$hosts" "$lb" "$seed" "$round"
          run_lookahead "$hosts" "$lb" "$seed" "$round"
        fi
      done
    done
  done
done

echo
echo "Summary (user CPU and RSS: medians over rounds and seeds; FCTs: means over them):"
echo
python3 "$HERE/vs_htsim.py" summarize "$TMP/table.md"
