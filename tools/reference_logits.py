#!/usr/bin/env python3
"""Reference logits from Hugging Face transformers, an implementation independent of ours.

Loads a GGUF file with `AutoModelForCausalLM.from_pretrained(dir, gguf_file=...)` (transformers
dequantizes every weight to float32 with gguf-py and runs its own PyTorch Llama), tokenizes a fixed
set of prompts with the tokenizer transformers builds from the same GGUF, and writes a small fixture
that the C++ test tests/integration/reference_logits_test.cpp compares our engine against.

Fixture (JSON, plus one raw little-endian float32 file for full logit rows):
  model:         file name of the GGUF, its size and sha256 (so a mismatch is detected)
  prompts[i]:    name, text, chat (bool), add_special (what HF's encode did: BOS added or not),
                 ids                    HF's token ids, fed verbatim to our engine
                 argmax[pos]            HF's argmax at every position
                 top2_gap[pos]          logit(top1) - logit(top2): how close a position is to a tie
                 topk_ids[pos][k], topk_logits[pos][k]   HF's top-k logits at every position
                 full_last              {offset, count} into the .f32 file: the whole last row, for some prompts
Nothing here downloads: HF_HUB_OFFLINE=1, the tokenizer and the config come from the GGUF itself.

Usage (a venv with torch, transformers, gguf; see docs/results/engine-logits.md):
  python tools/reference_logits.py --model models/SmolLM2-135M-Instruct.Q4_1.gguf \
      --out tests/data/reference/smollm2_q4_1_logits.json
"""
import argparse
import hashlib
import json
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

# The fixed prompts: different lengths and scripts. `chat` prompts are rendered with the model's
# chat template (from the GGUF) and encoded without adding special tokens, as a chat front end does.
LONG_PARAGRAPH = (
    "The lighthouse keeper kept a ledger of every ship that passed the point, and over forty years "
    "the ledger grew into a history of the harbour itself. In the early pages the entries are short: "
    "a schooner loaded with timber, a fishing boat returning late, a steamer whose name he could not "
    "read through the fog. Later the handwriting becomes more careful, and he begins to note the "
    "weather, the height of the tide, and the colour of the sky at dusk. When the railway reached the "
    "town, the number of ships fell by half within a decade, and the keeper wrote that the quiet "
    "evenings made him restless. He started to repair clocks for the neighbours, and the ledger fills "
    "with small diagrams of gears and springs drawn beside the names of vessels. A storm in the autumn "
    "of his thirtieth year destroyed the old jetty; he describes rowing out at dawn to count the "
    "timbers that had washed into the bay, and how the children of the village helped him stack them "
    "on the shore. The final pages list the ships that came to the harbour on the day the new light "
    "was switched on, an electric lamp that needed no keeper at all. He closes the ledger with a "
    "single sentence: the sea does not notice who is watching it, but the watching changes the one "
    "who watches. His granddaughter found the book many years later in a trunk beneath the stairs, "
    "wrapped in oilcloth, and gave it to the town museum, where it is kept open at a different page "
    "each week so that visitors can follow the slow turning of the seasons along the coast."
)

PROMPTS = [
    {"name": "one_token", "text": "Hello", "full_last": True},
    {"name": "english", "text": "The capital of France is", "full_last": False},
    {"name": "code", "text": "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n    if n < 2:\n        return n\n    return", "full_last": False},
    {"name": "chinese", "text": "机器学习是人工智能的一个分支，它使计算机能够从数据中学习。", "full_last": False},
    {"name": "russian", "text": "Москва — столица России, крупнейший по численности населения город страны.", "full_last": False},
    {"name": "emoji", "text": "I love pizza 🍕 and coffee ☕! Weekend plans: 🏖️ + 📚 = 😊", "full_last": False},
    {"name": "numbers_punct", "text": "In 2024, 3.14159 * 2 = 6.28318; e.g. [a, b] => {x: 42} -- done.", "full_last": False},
    {"name": "long_paragraph", "text": LONG_PARAGRAPH, "full_last": False},
    {"name": "chat", "chat": [{"role": "system", "content": "You are a helpful assistant."},
                              {"role": "user", "content": "What is the boiling point of water at sea level?"}],
     "full_last": True},
]


def sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="GGUF file")
    ap.add_argument("--out", required=True, help="fixture JSON to write (a .f32 file is written beside it)")
    ap.add_argument("--top-k", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    import numpy as np
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(args.threads)
    model_path = os.path.abspath(args.model)
    if not os.path.isfile(model_path):
        sys.exit(f"reference_logits: --model {args.model}: no such file")
    model_dir, model_file = os.path.split(model_path)

    tok = AutoTokenizer.from_pretrained(model_dir, gguf_file=model_file)
    model = AutoModelForCausalLM.from_pretrained(model_dir, gguf_file=model_file, dtype=torch.float32)
    model.eval()

    out_json = os.path.abspath(args.out)
    stem = out_json[:-5] if out_json.endswith(".json") else out_json
    out_bin = stem + "_last.f32"
    full_rows = []
    prompts_out = []
    for p in PROMPTS:
        if "chat" in p:
            text = tok.apply_chat_template(p["chat"], tokenize=False, add_generation_prompt=True)
            add_special = False
        else:
            text = p["text"]
            add_special = True
        ids = tok.encode(text, add_special_tokens=add_special)
        with torch.no_grad():
            logits = model(torch.tensor([ids], dtype=torch.long)).logits[0].float().numpy()  # [n][vocab]
        order = np.argsort(-logits, axis=1, kind="stable")[:, : args.top_k]
        top = np.take_along_axis(logits, order, axis=1)
        entry = {
            "name": p["name"],
            "text": text,
            "chat": "chat" in p,
            "add_special": add_special,
            "ids": [int(i) for i in ids],
            "argmax": [int(i) for i in order[:, 0]],
            "top2_gap": [round(float(top[r, 0] - top[r, 1]), 6) for r in range(len(ids))],
            "topk_ids": order.astype(int).tolist(),
            "topk_logits": [[round(float(v), 5) for v in row] for row in top],
        }
        if p["full_last"]:
            entry["full_last"] = {"offset": len(full_rows) * logits.shape[1], "count": int(logits.shape[1])}
            full_rows.append(logits[-1].astype("<f4"))
        prompts_out.append(entry)
        print(f"{p['name']:>15}: {len(ids):4d} tokens, last argmax {order[-1, 0]} "
              f"({tok.decode([int(order[-1, 0])])!r}), min top2 gap {min(entry['top2_gap']):.4f}", file=sys.stderr)

    fixture = {
        "generator": "tools/reference_logits.py",
        "reference": f"transformers {transformers.__version__}, torch {torch.__version__}, float32",
        "model": {"file": model_file, "bytes": os.path.getsize(model_path), "sha256": sha256_of(model_path)},
        "n_vocab": int(logits.shape[1]),
        "top_k": args.top_k,
        "full_last_file": os.path.basename(out_bin),
        "prompts": prompts_out,
    }
    tmp_json, tmp_bin = out_json + ".tmp", out_bin + ".tmp"
    with open(tmp_bin, "wb") as f:
        for row in full_rows:
            f.write(row.tobytes())
    with open(tmp_json, "w", encoding="utf-8") as f:
        json.dump(fixture, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")
    os.replace(tmp_bin, out_bin)
    os.replace(tmp_json, out_json)
    print(f"wrote {out_json} ({os.path.getsize(out_json)} bytes) and {out_bin} ({os.path.getsize(out_bin)} bytes)",
          file=sys.stderr)


if __name__ == "__main__":
    main()
