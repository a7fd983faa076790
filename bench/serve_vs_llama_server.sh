#!/usr/bin/env bash
# moe serve against llama.cpp's llama-server on the same GGUF, the same context per sequence, the
# same parallel sequences and the same threads, under the same streaming client load, alternating
# the two servers in one run (bench/serve_compare.py does the driving; its docstring has the details).
#
#   bench/serve_vs_llama_server.sh [OUT_DIR]        (default .cache/serve-vs-llama-server)
#
# Phases (each: every concurrency level x ROUNDS rounds x both servers, order alternating per round):
#   1. quiet machine, THREADS threads each (default 2): clients 1,4,8,16,32
#   2. a busy machine: one busy-looping process beside the server, each server at its default
#      threads (no thread flag): clients 8,32
# Environment: MODEL (default models/SmolLM2-135M-Instruct.Q4_1.gguf), SLOTS (8), CTX (512 per
# sequence), THREADS (2), DURATION (20 s per run), ROUNDS (2), CLIENTS ("1,4,8,16,32"),
# BUSY_CLIENTS ("8,32"; empty skips phase 2).
# Prerequisites: a built lookahead (build/release); llama-server is built here if missing
# (bench/llama_cpp_build.sh, from the llama-cpp-python sdist on PyPI). Nothing is committed from it.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-.cache/serve-vs-llama-server}
MODEL=${MODEL:-models/SmolLM2-135M-Instruct.Q4_1.gguf}
SLOTS=${SLOTS:-8}; CTX=${CTX:-512}; THREADS=${THREADS:-2}; DURATION=${DURATION:-20}; ROUNDS=${ROUNDS:-2}
CLIENTS=${CLIENTS:-1,4,8,16,32}; BUSY_CLIENTS=${BUSY_CLIENTS-8,32}
PYTHON=${PYTHON:-python3}; [ -x .venv/bin/python ] && PYTHON=.venv/bin/python
LLAMA_SERVER=.cache/llama.cpp-build/bin/llama-server
[ -x build/release/lookahead ] || { echo "serve_vs_llama_server: build lookahead first (scripts/setup)" >&2; exit 1; }
[ -s "$MODEL" ] || { echo "serve_vs_llama_server: $MODEL: no such model (scripts/setup fetches it)" >&2; exit 1; }
[ -x "$LLAMA_SERVER" ] || JOBS=${JOBS:-2} bench/llama_cpp_build.sh llama-server
mkdir -p "$OUT"
rm -f "$OUT"/quiet.jsonl "$OUT"/busy.jsonl
COMMON=(--model "$MODEL" --slots "$SLOTS" --ctx "$CTX" --duration "$DURATION" --rounds "$ROUNDS")
echo "== quiet machine, $THREADS threads each, $SLOTS slots, ctx $CTX per sequence" >&2
"$PYTHON" bench/serve_compare.py "${COMMON[@]}" --clients "$CLIENTS" --threads "$THREADS" \
  --out "$OUT/quiet.jsonl" --markdown "$OUT/quiet.md"
if [ -n "$BUSY_CLIENTS" ]; then
  echo "== one busy-looping process beside the server; default threads" >&2
  "$PYTHON" bench/serve_compare.py "${COMMON[@]}" --clients "$BUSY_CLIENTS" --threads default --hog 1 \
    --out "$OUT/busy.jsonl" --markdown "$OUT/busy.md"
fi
echo "serve_vs_llama_server: llama.cpp from $(cat .cache/llama.cpp-src/.from), lookahead $(git rev-parse --short HEAD); results in $OUT" >&2
