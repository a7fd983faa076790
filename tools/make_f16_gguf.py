#!/usr/bin/env python3
"""Write an F16 copy of a GGUF with gguf-py (llama.cpp's own Python GGUF library), independently of
our GGUF writer: every tensor with 2+ dimensions is dequantized to float32 by gguf.quants and
rounded to float16 (numpy: round to nearest even, as ggml's fp32->fp16); 1-D tensors stay float32;
all metadata is copied, general.file_type set to 1 (MOSTLY_F16).

Used to give transformers (tools/reference_logits.py) an F16 model whose tensor values equal what
`lookahead moe convert --type f16` writes (moe/checkpoint/convert.h promises bit-identical values).

Usage: python tools/make_f16_gguf.py IN.gguf OUT.gguf
"""
import os
import sys

import numpy as np
from gguf import GGMLQuantizationType, GGUFReader, GGUFValueType, GGUFWriter
from gguf.quants import dequantize


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: make_f16_gguf.py IN.gguf OUT.gguf")
    src, out = sys.argv[1:]
    r = GGUFReader(src)
    arch = r.fields["general.architecture"].contents()
    tmp = out + ".tmp"
    w = GGUFWriter(tmp, arch=arch)
    for name, field in r.fields.items():
        if name.startswith("GGUF.") or name == "general.architecture":
            continue
        vtype = field.types[0]
        value = field.contents()
        if name == "general.file_type":
            value = 1  # LLAMA_FTYPE_MOSTLY_F16
        if vtype == GGUFValueType.ARRAY:
            w.add_key_value(name, value, vtype, sub_type=field.types[-1])
        else:
            w.add_key_value(name, value, vtype)
    for t in r.tensors:
        values = dequantize(t.data, t.tensor_type).astype(np.float32)
        values = values.reshape(tuple(int(x) for x in reversed(t.shape)))  # numpy order: rows first
        if values.ndim >= 2:
            w.add_tensor(t.name, values.astype(np.float16), raw_dtype=GGMLQuantizationType.F16)
        else:
            w.add_tensor(t.name, values, raw_dtype=GGMLQuantizationType.F32)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    os.replace(tmp, out)
    print(f"wrote {out} ({os.path.getsize(out)} bytes)", file=sys.stderr)


if __name__ == "__main__":
    main()
