#!/usr/bin/env python3
"""Reference token ids for SmolLM2's vocabulary from an independent tokenizer.

Builds a Hugging Face `tokenizers` BPE tokenizer from the GGUF's vocabulary and merges with the
pre-tokenizer SmolLM2's tokenizer.json declares (Digits(individual_digits) then ByteLevel), and
renders the GGUF's chat template with Jinja2. Writes tests/data/tokenizer/smollm2_reference.json,
which tests/integration/tokenizer_smollm2_test.cpp compares our C++ tokenizer against.

Usage (in a throwaway venv, not the project's):
  python3 -m venv /tmp/tokref && /tmp/tokref/bin/pip install tokenizers gguf jinja2
  /tmp/tokref/bin/python tools/tokenizer_reference.py models/SmolLM2-135M-Instruct.Q4_1.gguf \
      tests/data/tokenizer/smollm2_reference.json
"""
import json
import sys

import gguf
import jinja2
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

SAMPLES = [
    "Hello world",
    " Hello, y'all! How are you doing today? I'm fine; we'll see.",
    "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n",
    "for (int i = 0; i < 10; ++i) { sum += a[i] * 0x1F; }  // C++",
    "我想在apple工作1314151天～ 今天天气很好。",
    "Привет, мир! Как дела? Съешь же ещё этих мягких французских булок.",
    "Emoji: 🦙🚀 😶‍🌫️ ✅ 👍🏽 family: 👨‍👩‍👧‍👦",
    "Numbers: 3 33 333 3333 1234567890 3.14159 -42 1e-9 ٣٤٥ Ⅻ",
    "Whitespace:  two   three    four\t\ttabs\n\nnewlines\n\n\n   \n end   ",
    "Mixed: naïve café Ελληνικά العربية עברית हिन्दी ไทย 한국어 日本語のテキスト",
    "<|im_start|>user\nliteral special tokens stay text unless parsed<|im_end|>",
    "   leading spaces and trailing   ",
    "",
]

CONVERSATIONS = [
    [{"role": "user", "content": "What is the capital of France?"}],
    [{"role": "system", "content": "You are terse."},
     {"role": "user", "content": "Hi"},
     {"role": "assistant", "content": "Hello."},
     {"role": "user", "content": "Bye"}],
]


def build_reference_tokenizer(gguf_path, with_specials):
    """HF `tokenizers` BPE over the GGUF's vocabulary with SmolLM2's pre-tokenizer; also returns
    the GGUF fields. with_specials: CONTROL tokens are added tokens (parse_special = true)."""
    reader = gguf.GGUFReader(gguf_path)
    fields = reader.fields
    tokens = fields["tokenizer.ggml.tokens"].contents()
    types = fields["tokenizer.ggml.token_type"].contents()
    merges = fields["tokenizer.ggml.merges"].contents()
    assert fields["tokenizer.ggml.pre"].contents() == "smollm"
    vocab = {t: i for i, t in enumerate(tokens)}
    pairs = [tuple(m.split(" ", 1)) for m in merges]
    tok = Tokenizer(models.BPE(vocab=vocab, merges=pairs))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True),
    ])
    tok.decoder = decoders.ByteLevel()
    if with_specials:
        tok.add_special_tokens([AddedToken(tokens[i], special=True, normalized=False)
                                for i in range(len(tokens)) if types[i] == 3])
    return tok, fields


def main():
    gguf_path, out_path = sys.argv[1], sys.argv[2]
    # parse_special = false: special tokens in the text are ordinary text, so the reference
    # tokenizer must not know them as added tokens.
    plain_tok, fields = build_reference_tokenizer(gguf_path, False)
    tok, _ = build_reference_tokenizer(gguf_path, True)
    template = fields["tokenizer.chat_template"].contents()

    cases = []
    for text in SAMPLES:
        ids = plain_tok.encode(text, add_special_tokens=False).ids
        cases.append({"text": text, "ids": ids})
    # parse_special = true: special tokens written in the text become their ids.
    special = []
    for text in [SAMPLES[10], "<|im_start|>assistant\nok<|im_end|>\n<|endoftext|>"]:
        special.append({"text": text, "ids": tok.encode(text, add_special_tokens=False).ids})

    env = jinja2.Environment()
    chats = []
    for messages in CONVERSATIONS:
        for gen in (False, True):
            rendered = env.from_string(template).render(messages=messages, add_generation_prompt=gen)
            chats.append({"messages": messages, "add_generation_prompt": gen, "text": rendered})

    out = {
        "source": "tools/tokenizer_reference.py with HF tokenizers (BPE, Digits + ByteLevel) and jinja2 "
                  "over the vocabulary of SmolLM2-135M-Instruct.Q4_1.gguf",
        "plain": cases,
        "parse_special": special,
        "chat": chats,
    }
    # One case per line keeps the fixture small and its diffs readable.
    with open(out_path, "w", encoding="utf-8") as f:
        f.write("{\n")
        f.write(' "source": %s,\n' % json.dumps(out["source"]))
        for i, key in enumerate(("plain", "parse_special", "chat")):
            f.write(' "%s": [\n' % key)
            f.write(",\n".join("  " + json.dumps(c, ensure_ascii=False) for c in out[key]))
            f.write("\n ]%s\n" % ("," if i < 2 else ""))
        f.write("}\n")


if __name__ == "__main__":
    main()
