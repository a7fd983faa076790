#!/usr/bin/env bash
# Builds tools/llama_cpp_logits.cpp against the llama.cpp baseline (bench/llama_cpp_build.sh) and
# writes llama.cpp's logits for the prompts of a transformers fixture, in the same format.
#   tools/llama_cpp_logits.sh MODEL.gguf IN_FIXTURE.json OUT_FIXTURE.json
# e.g. tools/llama_cpp_logits.sh models/SmolLM2-135M-Instruct.Q4_1.gguf \
#        tests/data/reference/smollm2_q4_1_logits.json tests/data/reference/smollm2_q4_1_llama_cpp_logits.json
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SRC=$ROOT/.cache/llama.cpp-src
BUILD=$ROOT/.cache/llama.cpp-build
BIN=$ROOT/.cache/bench/llama_cpp_logits
[ -f "$BUILD/src/libllama.a" ] || bench/llama_cpp_build.sh
mkdir -p "$(dirname "$BIN")"
if [ ! "$BIN" -nt tools/llama_cpp_logits.cpp ]; then
  libs=$(find "$BUILD" -name 'libllama.a' -o -name 'libggml.a' -o -name 'libggml-cpu.a' -o -name 'libggml-base.a' | sort)
  g++ -std=c++17 -O2 -DLLAMA_CPP_FROM="\"$(cat "$SRC/.from")\"" -I"$SRC/include" -I"$SRC/ggml/include" \
    tools/llama_cpp_logits.cpp -o "$BIN" \
    "$BUILD/src/libllama.a" "$BUILD/ggml/src/libggml.a" "$BUILD/ggml/src/libggml-cpu.a" "$BUILD/ggml/src/libggml-base.a" \
    -fopenmp -lpthread -ldl -lm
fi
"$BIN" "$@"
