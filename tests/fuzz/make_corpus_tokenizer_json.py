#!/usr/bin/env python3
"""Writes the seed corpus of fuzz_tokenizer_json: small toy byte-level BPE tokenizer.json files
(written here, no real vocabulary), each followed by a NUL byte and a text to encode."""
import json
import os

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "tokenizer_json")


def byte_alphabet():
    out, extra = [], 0
    for b in range(256):
        printable = 0x21 <= b <= 0x7E or 0xA1 <= b <= 0xAC or b >= 0xAE
        out.append(chr(b) if printable else chr(256 + extra))
        extra += 0 if printable else 1
    return out


def toy(pre, merges_as_lists=False, post=None):
    vocab = {c: i for i, c in enumerate(byte_alphabet())}
    words = ["\u0120t", "he", "\u0120the", "in", "\u0120in", "\u0120\u0120", "12"]
    for w in words:
        vocab[w] = len(vocab)
    merges = ["\u0120 t", "h e", "\u0120t he", "i n", "\u0120 in", "\u0120 \u0120", "1 2"]
    if merges_as_lists:
        merges = [m.split(" ") for m in merges]
    return {
        "version": "1.0",
        "added_tokens": [{"id": len(vocab), "content": "<|eot|>", "special": True},
                         {"id": len(vocab) + 1, "content": "<s>", "special": True}],
        "normalizer": None,
        "pre_tokenizer": pre,
        "post_processor": post,
        "decoder": {"type": "ByteLevel"},
        "model": {"type": "BPE", "vocab": vocab, "merges": merges, "ignore_merges": False},
    }


GPT2 = {"type": "ByteLevel", "add_prefix_space": False, "use_regex": True}
SEQ = {"type": "Sequence", "pretokenizers": [{"type": "Digits", "individual_digits": True}, GPT2]}
SPLIT = {"type": "Sequence", "pretokenizers": [
    {"type": "Split", "pattern": {"Regex": r"(?i:'s|'t)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|\s+(?!\S)|\s+"},
     "behavior": "Isolated", "invert": False},
    {"type": "ByteLevel", "add_prefix_space": True, "use_regex": False}]}
POST = {"type": "TemplateProcessing",
        "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
        "special_tokens": {"<s>": {"id": "<s>", "ids": [264], "tokens": ["<s>"]}}}
TEXT = "the in 12 <|eot|> It's 2024!\n\n  \u00e9t\u00e9 \U0001F600 <s>the"

os.makedirs(OUT, exist_ok=True)
for name, tj in [("gpt2", toy(GPT2)), ("digits_seq", toy(SEQ, merges_as_lists=True)),
                 ("split_template", toy(SPLIT, post=POST)), ("no_pre", toy(None))]:
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(json.dumps(tj, ensure_ascii=False).encode() + b"\0" + TEXT.encode())
print("wrote", sorted(os.listdir(OUT)))
