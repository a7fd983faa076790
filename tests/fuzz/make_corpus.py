#!/usr/bin/env python3
"""Writes the fuzz seed corpora (tests/fuzz/corpus/*) with an implementation of the GGUF and
safetensors layouts independent of the C++ code (struct + json only), so the seeds double as
cross-implementation fixtures (tests/unit/moe/format_corpus_test.cpp reads them back).
Deterministic: running it again rewrites identical files."""
import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))

# GGUF value types
U8, I8, U16, I16, U32, I32, F32, BOOL, STR, ARR, U64, I64, F64 = range(13)
FMT = {U8: "<B", I8: "<b", U16: "<H", I16: "<h", U32: "<I", I32: "<i", F32: "<f", BOOL: "<?", U64: "<Q",
       I64: "<q", F64: "<d"}
# ggml types: (id, block size, bytes per block)
GGML = {"F32": (0, 1, 4), "F16": (1, 1, 2), "Q4_0": (2, 32, 18), "Q4_1": (3, 32, 20), "Q8_0": (8, 32, 34),
        "BF16": (30, 1, 2)}


def gstr(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def gvalue(t, v):
    if t == STR:
        return gstr(v)
    if t == ARR:
        et, items = v
        return struct.pack("<IQ", et, len(items)) + b"".join(gvalue(et, x) for x in items)
    return struct.pack(FMT[t], v)


def gguf(kvs, tensors, version=3, alignment=32):
    """kvs: [(key, type, value)]; tensors: [(name, ggml type name, dims innermost first)]."""
    out = b"GGUF" + struct.pack("<IQQ", version, len(tensors), len(kvs))
    for k, t, v in kvs:
        out += gstr(k) + struct.pack("<I", t) + gvalue(t, v)
    data = b""
    for name, tname, dims in tensors:
        tid, bs, ts = GGML[tname]
        n = 1
        for d in dims:
            n *= d
        nbytes = n // bs * ts
        out += gstr(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
        out += struct.pack("<IQ", tid, len(data))
        # Deterministic, small-valued content (valid f16/bf16 scales for the quantized blocks).
        data += bytes((i * 7 + 3) % 61 for i in range(nbytes))
        data += b"\0" * ((-len(data)) % alignment)
    out += b"\0" * ((-len(out)) % alignment)
    return out + data


def safetensors(tensors, metadata=None):
    """tensors: [(name, dtype, shape)], row-major; data back to back."""
    header, data = {}, b""
    size = {"F32": 4, "F16": 2, "BF16": 2, "U8": 1}
    for name, dtype, shape in tensors:
        n = 1
        for d in shape:
            n *= d
        nbytes = n * size[dtype]
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + nbytes]}
        data += bytes((i * 5 + 1) % 59 for i in range(nbytes))
    if metadata is not None:
        header["__metadata__"] = metadata
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((-len(text)) % 8)
    return struct.pack("<Q", len(text)) + text + data


def write(target, name, blob):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(blob)


def main():
    write("gguf_fuzz", "empty.gguf", gguf([], []))
    llama = [
        ("general.architecture", STR, "llama"),
        ("general.name", STR, "tiny"),
        ("llama.block_count", U32, 1),
        ("llama.context_length", U32, 64),
        ("llama.embedding_length", U32, 32),
        ("llama.feed_forward_length", U32, 64),
        ("llama.attention.head_count", U32, 2),
        ("llama.attention.head_count_kv", U32, 1),
        ("llama.rope.freq_base", F32, 10000.0),
        ("llama.attention.layer_norm_rms_epsilon", F32, 1e-5),
        ("tokenizer.ggml.model", STR, "gpt2"),
        ("tokenizer.ggml.tokens", ARR, (STR, ["a", "b", "ab", "<|im_start|>"])),
        ("tokenizer.ggml.token_type", ARR, (I32, [1, 1, 1, 3])),
        ("tokenizer.ggml.merges", ARR, (STR, ["a b"])),
        ("tokenizer.ggml.bos_token_id", U32, 3),
        ("tokenizer.ggml.add_bos_token", BOOL, False),
    ]
    write("gguf_fuzz", "llama_tiny.gguf", gguf(llama, [
        ("token_embd.weight", "Q4_1", [32, 4]),
        ("blk.0.attn_norm.weight", "F32", [32]),
        ("blk.0.attn_q.weight", "Q8_0", [32, 32]),
        ("blk.0.attn_k.weight", "Q4_0", [32, 16]),
        ("blk.0.ffn_up.weight", "F16", [32, 2]),
        ("output.weight", "BF16", [32, 1]),
    ]))
    every_type = [("u8", U8, 255), ("i8", I8, -1), ("u16", U16, 65535), ("i16", I16, -2), ("u32", U32, 7),
                  ("i32", I32, -3), ("f32", F32, 0.5), ("bool", BOOL, True), ("str", STR, "x"),
                  ("u64", U64, 2**40), ("i64", I64, -2**40), ("f64", F64, 0.25),
                  ("nested", ARR, (ARR, [(U8, [1, 2]), (STR, ["y"])])), ("general.alignment", U32, 64)]
    write("gguf_fuzz", "every_type_v2.gguf", gguf(every_type, [("t", "F32", [3, 2])], version=2, alignment=64))

    write("safetensors_fuzz", "empty.safetensors", safetensors([]))
    write("safetensors_fuzz", "llama_tiny.safetensors", safetensors([
        ("model.embed_tokens.weight", "BF16", [4, 8]),
        ("model.layers.0.input_layernorm.weight", "F32", [8]),
        ("model.layers.0.self_attn.q_proj.weight", "F16", [8, 8]),
        ("lm_head.weight", "F32", [4, 8]),
    ], {"format": "pt"}))
    write("safetensors_fuzz", "scalar_and_empty.safetensors",
          safetensors([("s", "F32", []), ("e", "F16", [0, 3]), ("c", "BF16", [1, 1, 1, 2])]))
    # Quantized Read-ME weights (docs/readme-model.md): GGML blocks as U8 [rows, row bytes], declared
    # in __metadata__["ggml_types"].
    write("safetensors_fuzz", "quantized_blocks.safetensors", safetensors([
        ("q8", "U8", [2, 68]), ("q4", "U8", [1, 40]), ("n", "F32", [4]),
    ], {"format": "pt", "ggml_types": json.dumps({"q8": "Q8_0", "q4": "Q4_1"}, separators=(",", ":"))}))


if __name__ == "__main__":
    main()
