#!/usr/bin/env bash
# Per-domain quality of a Read-ME model against its dense source, the router's accuracy and
# locality, and the router's share of decode time: the tables of docs/results/readme-refactor.md.
#
#   bench/readme_refactor_eval.sh READ_ME_DIR [CORPUS] > table.md
#   env: CHUNKS (windows of CTX tokens per domain, default 8), CTX (default 512),
#        ROUTER_TOKENS (held-out tokens per domain for router-eval, default 4096), THREADS (default 2)
# The dense row runs the same directory with --route dense (the dense FFN in the same dtype), so
# the comparison isolates the experts and the router.
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${1:?usage: bench/readme_refactor_eval.sh READ_ME_DIR [CORPUS]}
CORPUS=${2:-.cache/corpus}
CHUNKS=${CHUNKS:-8}
CTX=${CTX:-512}
ROUTER_TOKENS=${ROUTER_TOKENS:-4096}
THREADS=${THREADS:-2}
L=${LOOKAHEAD:-build/release/lookahead}
PY=${PYTHON:-python3}

domains=$("$PY" -c 'import json,sys; print(" ".join(json.load(open(sys.argv[1]))["readme"]["experts"]))' "$MODEL/config.json")
ppl() {  # route domain -> perplexity
  "$L" moe perplexity --model "$MODEL" --route "$1" --file "$CORPUS/$2/heldout.txt" --ctx "$CTX" --chunks "$CHUNKS" \
    --threads "$THREADS" --json 2>/dev/null | "$PY" -c 'import json,sys; print("%.3f" % json.load(sys.stdin)["ppl"])'
}
fraction() {  # route -> activated FFN fraction (from the model's expert sizes)
  "$L" moe info --model "$MODEL" --json 2>/dev/null | "$PY" -c '
import json,sys
j=json.load(sys.stdin); e=j.get("readme",{}).get("expert_ffn_fraction",{})
r=sys.argv[1]
if r=="dense": print("100.0%")
elif r.startswith("oracle:"): print(f"{100*e[r[7:]]:.1f}%")
else: print(f"{100*sum(e.values())/len(e):.1f}% (mean)")' "$1"
}

echo "## Per-domain perplexity (held-out split, $CHUNKS x $CTX tokens per domain)"
echo
echo "| domain | dense | Read-ME (router) | oracle (own domain) | random | expert FFN share |"
echo "| --- | ---: | ---: | ---: | ---: | ---: |"
for d in $domains; do
  echo "| $d | $(ppl dense "$d") | $(ppl router "$d") | $(ppl "oracle:$d" "$d") | $(ppl random:1 "$d") | $(fraction "oracle:$d") |"
done
echo
echo "## Router on held-out text ($ROUTER_TOKENS tokens per domain)"
echo
"$L" moe router-eval --model "$MODEL" --corpus "$CORPUS" --tokens-per-domain "$ROUTER_TOKENS" --ctx "$CTX" --threads "$THREADS"
echo
echo "## Router cost in single-request decode (tg128, $THREADS threads)"
echo
"$L" moe bench --model "$MODEL" --route router -p 0 -n 128 --reps 3 --threads "$THREADS"
