#!/usr/bin/env bash
# Perplexity of our engine against llama.cpp's llama-perplexity on the same GGUF, text and context:
#   llama-perplexity -m MODEL -f FILE -c 512 -t 2 [--chunks N]
#   lookahead moe perplexity --model MODEL --file FILE --ctx 512 --threads 2 [--chunks N] --json
# Writes docs/results/engine-perplexity.md. Target: within 1% of llama.cpp.
#
# How llama-perplexity computes it (tools/perplexity/perplexity.cpp in the vendored llama.cpp,
# function perplexity(); what our `moe perplexity` must match):
#   - `-f FILE` reads the whole file and drops ONE trailing '\n' if present (common/arg.cpp).
#   - !! Then, because common_params.escape defaults to true, common_params_parse() runs
#     string_process_escapes() on it (common/arg.cpp): the two-character sequences \n \r \t \' \"
#     \\ in the FILE's text become one character each (and llama-tokenize does the same by default).
#     Texts with backslashes (this one has Windows paths, regexes, shell quoting) therefore tokenize
#     differently unless `--no-escape` is given. This script passes --no-escape so both engines score
#     the file's exact bytes (ESCAPE=1 drops it, to measure plain llama-perplexity).
#   - Tokenizes the whole text once: common_tokenize(ctx, text, add_special=true,
#     parse_special=false), so BOS is prepended only if the vocabulary's add_bos is true
#     (SmolLM2: tokenizer.ggml.add_bos_token = false -> no BOS anywhere) and special-token text such
#     as "<|im_start|>" in the file is tokenized as plain text.
#   - n_chunk = n_tokens / n_ctx (floor; --chunks caps it); chunk i is tokens [i*n_ctx, (i+1)*n_ctx),
#     evaluated from an empty KV cache; if add_bos, the chunk's first token is replaced by BOS.
#   - Only the second half is scored: for j in [n_ctx/2, n_ctx-1): nll += -log softmax(logits[j])[tok[j+1]]
#     (log-softmax with float logits, double sum of expf). PPL = exp(nll / count).
#   - Printed as "Final estimate: PPL = X +/- E". n_batch defaults to 2048, so 4 chunks share one
#     batch as separate sequences; this does not change the math.
#   - KV cache defaults to F16 in llama.cpp (ours defaults to F32): a small, real difference.
#
# Usage: bench/perplexity_vs_llama_cpp.sh   (env: CTX=512 THREADS=2 CHUNKS=200 MODELS="q4_1 [f16]" FILE=...
#        REUSE=1 keeps a side's earlier output in .cache/bench/perplexity/ instead of re-running it)
# CHUNKS=200 with CTX=512 evaluates 102,400 tokens of the text (>= 100k); CHUNKS=-1 uses all of it.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
CTX=${CTX:-512}
THREADS=${THREADS:-2}
CHUNKS=${CHUNKS:-200}
MODELS=${MODELS:-q4_1}
LOOKAHEAD=${LOOKAHEAD:-$ROOT/build/release/lookahead}
LLAMA_BIN=${LLAMA_BIN:-$ROOT/.cache/llama.cpp-build/bin}
FILE=${FILE:-$(data/corpus.sh heldout-en)}
WORK=$ROOT/.cache/bench/perplexity
OUTMD=$ROOT/docs/results/engine-perplexity.md
mkdir -p "$WORK" "$(dirname "$OUTMD")"

[ -x "$LLAMA_BIN/llama-perplexity" ] || bench/llama_cpp_build.sh
"$LOOKAHEAD" moe perplexity --help >/dev/null 2>&1 || { echo "perplexity_vs_llama_cpp: '$LOOKAHEAD moe perplexity' is missing" >&2; exit 1; }

model_path() {
  case $1 in
    q4_1) echo "$ROOT/models/SmolLM2-135M-Instruct.Q4_1.gguf" ;;
    f16) echo "$ROOT/.cache/models/SmolLM2-135M-Instruct.F16.gguf" ;;  # made by bench/engine_vs_llama_cpp.sh
    *) echo "$1" ;;
  esac
}

chunk_args_llama=(); chunk_args_ours=()
[ "${ESCAPE:-0}" = 1 ] || chunk_args_llama+=(--no-escape)
# (+=: an earlier version replaced the array here and so dropped --no-escape whenever CHUNKS was set)
if [ "$CHUNKS" != "-1" ]; then chunk_args_llama+=(--chunks "$CHUNKS"); chunk_args_ours+=(--chunks "$CHUNKS"); fi
for tag in $MODELS; do
  model=$(model_path "$tag")
  [ -f "$model" ] || { echo "perplexity_vs_llama_cpp: $model missing" >&2; exit 1; }
  if [ "${REUSE:-0}" != 1 ] || [ ! -s "$WORK/llama_$tag.seconds" ]; then
    echo "perplexity: $tag with llama.cpp" >&2
    start=$(date +%s.%N)
    "$LLAMA_BIN/llama-perplexity" -m "$model" -f "$FILE" -c "$CTX" -t "$THREADS" "${chunk_args_llama[@]}" \
      > "$WORK/llama_$tag.out" 2> "$WORK/llama_$tag.log"
    echo "$(date +%s.%N) - $start" | bc > "$WORK/llama_$tag.seconds"
    cut -d' ' -f1-3 /proc/loadavg > "$WORK/llama_$tag.load"
  fi
  if [ "${REUSE:-0}" != 1 ] || [ ! -s "$WORK/ours_$tag.seconds" ]; then
    echo "perplexity: $tag with lookahead" >&2
    start=$(date +%s.%N)
    "$LOOKAHEAD" moe perplexity --model "$model" --file "$FILE" --ctx "$CTX" --threads "$THREADS" "${chunk_args_ours[@]}" --json \
      > "$WORK/ours_$tag.json" 2> "$WORK/ours_$tag.log"
    echo "$(date +%s.%N) - $start" | bc > "$WORK/ours_$tag.seconds"
    cut -d' ' -f1-3 /proc/loadavg > "$WORK/ours_$tag.load"
  fi
done

ESCAPE="${ESCAPE:-0}" python3 - "$WORK" "$OUTMD" "$CTX" "$THREADS" "$CHUNKS" "$FILE" "$MODELS" <<'EOF'
import json, os, re, sys, datetime, subprocess
work, out, ctx, threads, chunks, file, models = sys.argv[1:8]
rows = []
for tag in models.split():
    log = open(os.path.join(work, f"llama_{tag}.out")).read() + open(os.path.join(work, f"llama_{tag}.log")).read()
    m = re.search(r"Final estimate: PPL = ([0-9.]+) \+/- ([0-9.]+)", log)
    if not m:
        sys.exit(f"perplexity_vs_llama_cpp: no 'Final estimate' in llama-perplexity's output for {tag}")
    llama_ppl, llama_err = float(m.group(1)), float(m.group(2))
    mc = re.search(r"calculating perplexity over (\d+) chunks", log)
    mt = re.search(r"tokenizes to only (\d+)|tokenization took", log)
    ours = json.load(open(os.path.join(work, f"ours_{tag}.json")))
    rel = (ours["ppl"] - llama_ppl) / llama_ppl
    ls = float(open(os.path.join(work, f"llama_{tag}.seconds")).read())
    os_ = float(open(os.path.join(work, f"ours_{tag}.seconds")).read())
    rows.append(f"| {tag.upper()} | {mc.group(1) if mc else '?'} | {ours['n_chunks']} | {ours['n_tokens']} | "
                f"{llama_ppl:.4f} ± {llama_err:.4f} | {ours['ppl']:.4f} ± {ours['ppl_stderr']:.4f} | {rel:+.3%} | "
                f"{'yes' if abs(rel) <= 0.01 else 'NO'} | {ls:.0f} / {os_:.0f} |")
sha = subprocess.run(["sha256sum", file], capture_output=True, text=True).stdout.split()[0]
md = f"""# Engine perplexity: lookahead vs llama.cpp

Generated by `bench/perplexity_vs_llama_cpp.sh` (CTX={ctx} THREADS={threads} CHUNKS={chunks}) on
{datetime.datetime.utcnow().strftime('%Y-%m-%d %H:%M UTC')}.

- Text: `{os.path.relpath(file)}` ({os.path.getsize(file)} bytes, sha256 `{sha[:16]}…`), the held-out
  English text made by `data/corpus.sh heldout-en` (Debian Reference 2.100, GPL-2+; see data/README.md).
- Commands:
  - `llama-perplexity -m MODEL -f FILE -c {ctx} -t {threads}{'' if chunks == '-1' else ' --chunks ' + chunks}{'' if os.environ.get('ESCAPE') == '1' else ' --no-escape'}`
  - `lookahead moe perplexity --model MODEL --file FILE --ctx {ctx} --threads {threads}{'' if chunks == '-1' else ' --chunks ' + chunks} --json`
- Each chunk of {ctx} tokens starts from an empty cache; the second half of each chunk is scored
  (llama.cpp's method). Target: |relative difference| <= 1%.
- `--no-escape`: without it llama-perplexity turns the text's backslash sequences (\\n, \\", \\\\ ...)
  into single characters before tokenizing (common_params.escape defaults to true), so it would not
  score the file's bytes; see the top of the script.

| weights | llama.cpp chunks | our chunks | our tokens in file | llama.cpp PPL | lookahead PPL | relative diff | within 1% | seconds (llama.cpp / ours) |
| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |
{chr(10).join(rows)}

Timings are wall-clock on a shared 2-core machine and are not a speed claim (see engine-speed.md).
"""
tmp = out + ".tmp"
open(tmp, "w").write(md)
os.replace(tmp, out)
print(md)
EOF
