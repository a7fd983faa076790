#!/usr/bin/env bash
# Builds the llama.cpp baseline (llama-bench, llama-perplexity, llama-tokenize, llama-quantize,
# llama-server) from
# the llama.cpp tree vendored in the llama-cpp-python sdist (PyPI), as a release CPU build with the
# same knobs a user would pick on this machine: native ISA, OpenMP threads, no BLAS, static.
#   sdist:   .cache/pypi/llama_cpp_python-*.tar.gz   (downloaded here if missing)
#   source:  .cache/llama.cpp-src/                    (the sdist's vendor/llama.cpp)
#   build:   .cache/llama.cpp-build/bin/llama-*
# Idempotent: re-running re-uses the extracted source and the incremental build.
# Arguments, if any, name the targets to build (default: all five), e.g. `bench/llama_cpp_build.sh llama-server`.
# JOBS (default 1) caps the compile parallelism: the machine's 2 cores are shared.
# Nothing from llama.cpp is committed to this repository.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PYTHON=${PYTHON:-python3}
JOBS=${JOBS:-1}
PYPI_CACHE=$ROOT/.cache/pypi
SRC=$ROOT/.cache/llama.cpp-src
BUILD=$ROOT/.cache/llama.cpp-build
mkdir -p "$PYPI_CACHE"

sdist=$(ls "$PYPI_CACHE"/llama_cpp_python-*.tar.gz 2>/dev/null | sort -V | tail -1 || true)
if [ -z "$sdist" ]; then
  echo "llama_cpp_build: downloading the llama-cpp-python sdist from PyPI" >&2
  "$PYTHON" -m pip download --no-deps --no-binary :all: --quiet -d "$PYPI_CACHE" llama-cpp-python
  sdist=$(ls "$PYPI_CACHE"/llama_cpp_python-*.tar.gz | sort -V | tail -1)
fi

# Extract once per sdist version (the stamp names the tarball the tree came from).
if [ "$(cat "$SRC/.from" 2>/dev/null || true)" != "$(basename "$sdist")" ]; then
  tmp=$(mktemp -d "$ROOT/.cache/llama.cpp-src.tmp.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  top=$(basename "$sdist" .tar.gz)   # sdists unpack into <name>-<version>/
  tar -xzf "$sdist" -C "$tmp" "$top/vendor/llama.cpp"
  rm -rf "$SRC" "$BUILD"
  mv "$tmp/$top/vendor/llama.cpp" "$SRC"
  basename "$sdist" > "$SRC/.from"
fi

# Native ISA but no AMX: ggml's AMX matmul segfaults at the first batch on this VM's Sapphire-Rapids
# CPUs (ggml_backend_amx_mul_mat, seen 2026-12-06; llama.cpp issue 20824, closed unfixed; dspy
# dropped the AMX build for the same crash). Explicit -mno-amx-* win over -march=native in GCC.
NO_AMX="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
# (Re)configure when there is no build yet, or an older one lacks the server or the AMX opt-out.
if [ ! -f "$BUILD/build.ninja" ] || ! grep -q 'build bin/llama-server' "$BUILD/build.ninja" ||
   ! grep -q -- "-mno-amx-int8" "$BUILD/CMakeCache.txt"; then
  cmake -S "$SRC" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_C_FLAGS="$NO_AMX" -DCMAKE_CXX_FLAGS="$NO_AMX" \
    -DGGML_NATIVE=ON -DGGML_OPENMP=ON -DBUILD_SHARED_LIBS=OFF -DLLAMA_CURL=OFF \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=ON \
    -DLLAMA_BUILD_TOOLS=ON >"$ROOT/.cache/llama.cpp-configure.log" 2>&1 ||
    { tail -30 "$ROOT/.cache/llama.cpp-configure.log" >&2; exit 1; }
fi
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(llama-bench llama-perplexity llama-tokenize llama-quantize llama-server)
cmake --build "$BUILD" -j "$JOBS" --target "${TARGETS[@]}"
echo "llama_cpp_build: $(cat "$SRC/.from") -> $BUILD/bin" >&2
for t in "${TARGETS[@]}"; do ls "$BUILD/bin/$t"; done
