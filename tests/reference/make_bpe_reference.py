#!/usr/bin/env python3
"""Reference token ids for palu's byte-level BPE tokenizer (tests/calibration/test_tokenizer_bpe.cpp).

Dev tooling only (never needed to build or test). Builds the SmolLM2-135M tokenizer with Hugging Face
`tokenizers` from the GGUF metadata (tokens, merges, control tokens, the "smollm" pre-tokenizer =
the model's own tokenizer.json pipeline: Digits(individual_digits) then ByteLevel(GPT-2 regex)),
encodes samples of WikiText-2 and C4 from ../shared/data, and writes
tests/reference/bpe_smollm2_reference.json: per sample, where its text comes from (file + line or
document range; the text itself is NOT copied) and the expected ids, or only their count and an
SHA-256 of the ids as little-endian int32 bytes for the large ones.

Also writes models/smollm2/tokenizer.json (git-ignored) so the C++ test can check the tokenizer.json
loader on the same vocabulary, and prints how many samples a tokenizer without the Digits step
(what transformers' GGUF loader builds for "smollm") would tokenize differently.

    python3 -m venv /tmp/v && /tmp/v/bin/pip install tokenizers gguf numpy
    scripts/get-smollm2.sh     # models/smollm2/SmolLM2-135M-Instruct-Q4_1.gguf
    /tmp/v/bin/python tests/reference/make_bpe_reference.py
"""
import hashlib
import json
import os
import struct
import sys

import gguf
import tokenizers
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA = os.environ.get("PALU_TEST_DATA") or os.path.join(ROOT, "..", "shared", "data")
GGUF_REL = "models/smollm2/SmolLM2-135M-Instruct-Q4_1.gguf"
OUT = os.path.join(ROOT, "tests", "reference", "bpe_smollm2_reference.json")
WIKI = "text/wikitext-2/wiki.test.raw"
C4 = "text/c4/c4_sample_500.jsonl"

# Strings written for this fixture (not from any dataset): whitespace runs, digits, contractions,
# Unicode letters / numbers / symbols, special tokens inside text, invalid-free edge cases.
INLINE = [
    "Hello world",
    "  leading spaces and trailing spaces   ",
    "tabs\tand\nnewlines\n\n\nand\r\nCRLF",
    "numbers 1234567, 3.14159 and 1,000,000 in 2024",
    "<|endoftext|>special<|im_start|>user\nhi there<|im_end|>\n<|im_start|>assistant\n",
    "emoji \U0001F600\U0001F389 and CJK \u6f22\u5b57\u30c6\u30b9\u30c8 and \ud55c\uad6d\uc5b4",
    "contractions: don't, I'll, we're, it's, O'Neil's, SHE'S, you've, they'd, I'm",
    "\u00dcn\u00efc\u00f6d\u00e9 fa\u00e7ade na\u00efve \u0391\u03b8\u03ae\u03bd\u03b1 \u041c\u043e\u0441\u043a\u0432\u0430",
    "non\u00a0breaking\u2003em space\u3000ideographic",
    "superscripts x\u00b2 \u00bd \u2163 \u0663\u0664 \u096b",
    "code: def f(x):\n    return x**2  # square\n\n\n    \n",
    "   ",
    "\n",
    "a",
    "!!!??? ... --- ___ ''' \"\"\"",
    "<|im_start|><|im_start|><|endoftext",
    "mixedCASE camelCase snake_case kebab-case URL https://example.com/a?b=c&d=1",
]


def sha256_ids(ids):
    return hashlib.sha256(struct.pack("<%di" % len(ids), *ids)).hexdigest()


def wiki_rows(lines):
    # HF wikitext-2-raw-v1 rows: each line with its "\n"; whitespace-only lines are "".
    return [ln if ln.strip() else "" for ln in lines]


def field(r, key):
    f = r.fields[key]
    return f.contents()


def build_from_gguf(path):
    r = gguf.GGUFReader(path)
    assert field(r, "tokenizer.ggml.model") == "gpt2"
    pre = field(r, "tokenizer.ggml.pre")
    assert pre == "smollm", pre
    tokens = field(r, "tokenizer.ggml.tokens")
    types = field(r, "tokenizer.ggml.token_type")
    merges = [tuple(m.split(" ")) for m in field(r, "tokenizer.ggml.merges")]
    vocab = {t: i for i, t in enumerate(tokens)}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(t, normalized=False, special=True)
                            for t, ty in zip(tokens, types) if ty == 3])
    meta = {
        "bos_id": int(field(r, "tokenizer.ggml.bos_token_id")),
        "eos_id": int(field(r, "tokenizer.ggml.eos_token_id")),
        "add_bos": bool(field(r, "tokenizer.ggml.add_bos_token")),
        "n_vocab": len(tokens),
    }
    return tok, meta


def main():
    gguf_path = os.path.join(ROOT, GGUF_REL)
    if not os.path.exists(gguf_path):
        sys.exit(f"missing {gguf_path}; run scripts/get-smollm2.sh")
    tok, meta = build_from_gguf(gguf_path)
    enc = lambda s: tok.encode(s, add_special_tokens=False).ids

    with open(os.path.join(DATA, WIKI), encoding="utf-8", newline="") as f:
        lines = f.read().split("\n")
    lines = [ln + "\n" for ln in lines[:-1]] + ([lines[-1]] if lines[-1] else [])
    with open(os.path.join(DATA, C4), encoding="utf-8") as f:
        docs = [json.loads(ln)["text"] for ln in f if ln.strip()]

    samples = []
    texts = {}

    def add(name, source, sample_text, full, **where):
        ids = enc(sample_text)
        s = {"name": name, "source": source, **where, "n_ids": len(ids), "sha256": sha256_ids(ids)}
        if full:
            s["ids"] = ids
        samples.append(s)
        texts[name] = sample_text

    # WikiText-2 rows [0, 1500) joined with "\n\n" (the perplexity convention, one long text).
    add("wiki_rows_0_1500", WIKI, "\n\n".join(wiki_rows(lines[0:1500])), True,
        kind="wikitext_rows", first=0, count=1500)
    # Tricky single lines (kept verbatim incl. "\n"): non-ASCII, digits, long numbers.
    tricky = [i for i, ln in enumerate(lines) if any(ord(c) > 127 for c in ln)][:40]
    tricky += [i for i, ln in enumerate(lines) if sum(c.isdigit() for c in ln) > 40][:20]
    for i in sorted(set(tricky)):
        add(f"wiki_line_{i}", WIKI, lines[i], True, kind="line", first=i, count=1)
    # C4: documents one by one; full ids for the first 20, checksums for 100.
    for d in range(100):
        add(f"c4_doc_{d}", C4, docs[d], d < 20, kind="jsonl_doc", first=d, count=1)
    for k, s in enumerate(INLINE):
        add(f"inline_{k}", "inline", s, True, kind="inline", text=s)
    # The whole test set as palu load_text builds it (rows joined with "\n\n"): count + checksum.
    add("wiki_full", WIKI, "\n\n".join(wiki_rows(lines)), False, kind="wikitext_rows", first=0,
        count=len(lines))

    # Round trip through the decoder (sanity of the reference itself).
    for s in samples:
        if s["kind"] != "inline" or "<|" in s["text"]:
            continue
        assert tok.decode(enc(s["text"]), skip_special_tokens=False) == s["text"], s["name"]

    out = {
        "about": "Expected SmolLM2-135M BPE ids; made by tests/reference/make_bpe_reference.py",
        "tokenizers_version": tokenizers.__version__,
        "gguf": GGUF_REL,
        "pre_tokenizer": "smollm: Digits(individual_digits=true) + ByteLevel(GPT-2 regex)",
        **meta,
        "samples": samples,
    }
    with open(OUT, "w") as f:
        json.dump(out, f, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {OUT}: {len(samples)} samples, {os.path.getsize(OUT)} bytes")
    full = next(s for s in samples if s["name"] == "wiki_full")
    print(f"wiki_full: {full['n_ids']} ids, sha256 {full['sha256']}")

    tj = os.path.join(ROOT, "models", "smollm2", "tokenizer.json")
    tok.save(tj)
    print(f"wrote {tj} (git-ignored)")

    # transformers' GGUF loader (integrations/gguf/gguf_tokenizer_mapping.py) has no split regex for
    # "smollm" and keeps GPT2Tokenizer's plain ByteLevel pre-tokenizer, i.e. without the Digits step.
    # Informational: how many samples that variant would tokenize differently.
    plain = Tokenizer.from_str(tok.to_str())
    plain.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    n_diff = sum(plain.encode(texts[s["name"]], add_special_tokens=False).ids != enc(texts[s["name"]])
                 for s in samples)
    print(f"without the Digits step (transformers' GGUF loader): {n_diff}/{len(samples)} samples differ")


if __name__ == "__main__":
    main()
