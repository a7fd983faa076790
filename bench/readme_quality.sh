#!/usr/bin/env bash
# Quality of a Read-ME model beyond perplexity (issue #14, docs/results/readme-quality.md): per
# held-out domain and on a text domain the statistics never saw (the licence texts of
# /usr/share/common-licenses), perplexity, next-token top-1 accuracy and mean KL(dense || row) per
# token, for the dense route, the router, the own domain's oracle expert, random routing and an
# optional same-active-size dense baseline; then greedy generations for five fixed prompts side by
# side.
#
#   bench/readme_quality.sh MODEL_DIR [BASELINE_DIR] [CORPUS] > quality.md
#   MODEL_DIR     a Read-ME directory with its dense FFN (the dense rows and the KL base are
#                 MODEL_DIR --route dense)
#   BASELINE_DIR  optional: a Read-ME-format directory with one expert (the pruned dense model of
#                 the same active size), run with its default route; "" to skip it
#   CORPUS        default .cache/corpus (data/build_corpus.py): CORPUS/<domain>/heldout.txt
#   env: CHUNKS (windows of CTX tokens per text, default 4), CTX (default 512), THREADS (default 2),
#        TOKENS (greedy tokens per prompt, default 48), LOOKAHEAD (binary), PYTHON (JSON parsing)
set -euo pipefail
cd "$(dirname "$0")/.."
usage="usage: bench/readme_quality.sh MODEL_DIR [BASELINE_DIR] [CORPUS]"
MODEL=${1:?$usage}
BASELINE=${2:-}
CORPUS=${3:-.cache/corpus}
CHUNKS=${CHUNKS:-4}
CTX=${CTX:-512}
THREADS=${THREADS:-2}
TOKENS=${TOKENS:-48}
L=${LOOKAHEAD:-build/release/lookahead}
PY=${PYTHON:-.venv/bin/python}
[[ -x "$PY" ]] || PY=python3

die() { echo "readme_quality: $*" >&2; exit 1; }
[[ -x "$L" ]] || die "$L: no lookahead binary (build it, or set LOOKAHEAD)"
[[ -f "$MODEL/config.json" ]] || die "$MODEL: not a Read-ME model directory (no config.json)"
[[ -z "$BASELINE" || -f "$BASELINE/config.json" ]] || die "$BASELINE: not a model directory (no config.json)"
domains=$("$PY" -c 'import json,sys; print(" ".join(json.load(open(sys.argv[1]))["readme"]["experts"]))' \
  "$MODEL/config.json") || die "$MODEL/config.json: no readme.experts"
for d in $domains; do [[ -f "$CORPUS/$d/heldout.txt" ]] || die "$CORPUS/$d/heldout.txt: missing (data/build_corpus.py)"; done

# The unseen domain: every licence text, in sorted order (symlinked duplicates left out).
unseen=.cache/unseen/licenses.txt
mkdir -p "$(dirname "$unseen")"
find /usr/share/common-licenses -maxdepth 1 -type f -print0 | LC_ALL=C sort -z | xargs -0 cat >"$unseen.tmp.$$"
mv "$unseen.tmp.$$" "$unseen"

log=$(mktemp) summary=$(mktemp)
trap 'rm -f "$log" "$summary"' EXIT
# measure MODEL ROUTE FILE [--kl-base ...] -> "ppl top1 kl top1_agree" ("-" for no KL)
measure() {
  local model=$1 route=$2 file=$3
  shift 3
  local args=(moe perplexity --model "$model" --file "$file" --ctx "$CTX" --chunks "$CHUNKS" --threads "$THREADS" --json)
  [[ -n "$route" ]] && args+=(--route "$route")
  local json
  if ! json=$("$L" "${args[@]}" "$@" 2>"$log" </dev/null); then
    cat "$log" >&2
    die "failed: $L ${args[*]} $*"
  fi
  "$PY" -c '
import json,sys
j=json.load(sys.stdin)
kl=j.get("kl"); ag=j.get("top1_agree")
print("%.4f %.4f %s %s" % (j["ppl"], j["top1"], "-" if kl is None else "%.4f" % kl, "-" if ag is None else "%.4f" % ag))' <<<"$json"
}
pct() { [[ "$1" == - ]] && echo - || awk -v x="$1" 'BEGIN { printf "%.1f%%", 100 * x }'; }

# Rows: "label|summary column|model|route|kl" (kl: compare with MODEL --route dense).
rows_for() {  # domain ("" = unseen)
  echo "dense|dense|$MODEL|dense|no"
  echo "Read-ME router|Read-ME router|$MODEL|router|yes"
  [[ -n "$1" ]] && echo "oracle:$1|oracle (own domain)|$MODEL|oracle:$1|yes"
  echo "random:1|random:1|$MODEL|random:1|yes"
  [[ -n "$BASELINE" ]] && echo "baseline (same active size)|baseline|$BASELINE||yes"
  return 0
}
table() {  # title domain file
  local title=$1 domain=$2 file=$3 label column model route kl r p t k a
  echo "### $title"
  echo
  echo "| model | PPL | top-1 | KL to dense (nats/token) | same top-1 as dense |"
  echo "| --- | ---: | ---: | ---: | ---: |"
  while IFS='|' read -r label column model route kl; do
    if [[ "$kl" == yes ]]; then
      r=$(measure "$model" "$route" "$file" --kl-base "$MODEL" --kl-base-route dense)
    else
      r=$(measure "$model" "$route" "$file")
    fi
    read -r p t k a <<<"$r"
    [[ "$kl" == no ]] && k=0 && a=1
    echo "| $label | $p | $(pct "$t") | $k | $(pct "$a") |"
    echo "${domain:-unseen}|$column|$p" >>"$summary"
  done < <(rows_for "$domain")
  echo
}

echo "# Read-ME quality: $MODEL"
echo
echo "Held-out split of $CORPUS and the licence texts of /usr/share/common-licenses (unseen by the"
echo "statistics); $CHUNKS windows of $CTX tokens per text, second half of each window scored (llama-perplexity's"
echo "method). KL is KL(dense || row) per scored token, dense = \`$MODEL --route dense\`."
[[ -n "$BASELINE" ]] && echo "Baseline: \`$BASELINE\` (default route)."
echo
echo "## Per domain"
echo
for d in $domains; do table "$d (held-out)" "$d" "$CORPUS/$d/heldout.txt"; done
table "unseen: licence texts" "" "$unseen"

# Perplexity relative to dense, and the geometric mean over the held-out domains.
echo "## Perplexity / dense perplexity"
echo
awk -F'|' -v domains="$domains unseen" '
  { ppl[$1 SUBSEP $2] = $3; if (!($2 in seen)) { seen[$2] = 1; col[++n] = $2 } }
  END {
    nd = split(domains, d, " ")
    printf "| domain |"; for (i = 2; i <= n; ++i) printf " %s |", col[i]; printf "\n"
    printf "| --- |"; for (i = 2; i <= n; ++i) printf " ---: |"; printf "\n"
    for (j = 1; j <= nd; ++j) {
      printf "| %s |", d[j]
      for (i = 2; i <= n; ++i) {
        k = d[j] SUBSEP col[i]
        if (!(k in ppl)) { printf " - |"; continue }
        r = ppl[k] / ppl[d[j] SUBSEP col[1]]
        printf " %.2fx |", r
        if (j < nd) { lg[i] += log(r); cnt[i]++ }
      }
      printf "\n"
    }
    printf "| geomean (held-out) |"
    for (i = 2; i <= n; ++i) if (cnt[i]) printf " %.2fx |", exp(lg[i] / cnt[i]); else printf " - |"
    printf "\n"
  }' "$summary"
echo

# Greedy generations side by side.
prompts=(
  $'def fibonacci(n):\n'
  "The history of the old harbour town begins in"
  "Die Stadt liegt am Ufer eines großen Sees und"
  "harbour (noun):"
  $'Q: Why do cats purr?\nA:'
)
gen_models=("dense|$MODEL|dense" "Read-ME router|$MODEL|router")
[[ -n "$BASELINE" ]] && gen_models+=("baseline|$BASELINE|")
cell() {  # text -> one markdown table cell
  local s=$1
  [[ -z "$s" ]] && { printf '*(end of text at once)*'; return; }
  s=${s//|/\\|}
  s=${s//$'\n'/ ⏎ }
  printf '%s' "$s"
}
generate() {  # model route prompt
  local args=(moe generate --model "$1" --prompt "$3" --tokens "$TOKENS" --temp 0 --threads "$THREADS")
  [[ -n "$2" ]] && args+=(--route "$2")
  "$L" "${args[@]}" 2>"$log" </dev/null || { cat "$log" >&2; die "failed: $L ${args[*]}"; }
}
echo "## Greedy generations ($TOKENS tokens, --temp 0; ⏎ = newline)"
echo
header="| prompt |" rule="| --- |"
for g in "${gen_models[@]}"; do header+=" ${g%%|*} |"; rule+=" --- |"; done
echo "$header"
echo "$rule"
for p in "${prompts[@]}"; do
  line="| $(cell "$p") |"
  for g in "${gen_models[@]}"; do
    IFS='|' read -r _ model route <<<"$g"
    line+=" $(cell "$(generate "$model" "$route" "$p")") |"
  done
  echo "$line"
done
