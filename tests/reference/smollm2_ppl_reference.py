#!/usr/bin/env python3
"""Reference WikiText-2 perplexity of SmolLM2-135M-Instruct (Q4_1 GGUF) with Hugging Face
transformers, float32, for palu's engine test (tests/model/test_smollm2.cpp) and docs.

Dev tooling only (never needed to build or test). Needs: torch, transformers, gguf (PyPI).

    python3 tests/reference/smollm2_ppl_reference.py \
        --gguf models/smollm2/SmolLM2-135M-Instruct-Q4_1.gguf \
        --text ../shared/data/text/wikitext-2/wiki.test.raw --seqlen 2048 [--max-windows K] \
        --out tests/reference/smollm2_wikitext2_ppl.json [--save-ids models/smollm2/wiki.test.ids.i32]

Text: WikiText raw rows (lines of wiki.test.raw with their trailing newline; whitespace-only lines
become empty rows) joined with "\\n\\n" -- the Hugging Face wikitext-2-raw-v1 convention that
GPTQ/Palu/SVD-LLM evaluate on, and what palu's calib::load_text(wikitext) produces. Tokenized once
with the GGUF's own tokenizer (transformers' GGUF converter) with its default special tokens.
Windows: non-overlapping windows of `seqlen` tokens; window NLL = mean over its seqlen-1
next-token predictions; ppl = exp(mean of window NLLs).
"""
import argparse
import hashlib
import json
import math
import os
import sys
import time

import numpy as np
import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer


def wikitext_join(raw: str) -> str:
    rows = []
    pos = 0
    while pos < len(raw):
        nl = raw.find("\n", pos)
        end = len(raw) if nl < 0 else nl + 1
        row = raw[pos:end]
        rows.append("" if row.strip() == "" else row)
        pos = end
    return "\n\n".join(rows)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gguf", required=True)
    ap.add_argument("--text", required=True)
    ap.add_argument("--seqlen", type=int, default=2048)
    ap.add_argument("--max-windows", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", required=True)
    ap.add_argument("--save-ids", default="")
    a = ap.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    d, f = os.path.split(os.path.abspath(a.gguf))
    tok = AutoTokenizer.from_pretrained(d, gguf_file=f)
    model = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, dtype=torch.float32)
    model.eval().to(a.device)
    with open(a.text, encoding="utf-8") as fh:
        text = wikitext_join(fh.read())
    ids = tok(text, return_tensors="pt").input_ids[0]
    ids_np = ids.numpy().astype("<i4")
    if a.save_ids:
        ids_np.tofile(a.save_ids)
    n_win = ids.numel() // a.seqlen
    if a.max_windows > 0:
        n_win = min(n_win, a.max_windows)
    nlls = []
    t0 = time.time()
    with torch.no_grad():
        for w in range(n_win):
            x = ids[w * a.seqlen:(w + 1) * a.seqlen].unsqueeze(0).to(a.device)
            logits = model(x).logits[0].double()
            nll = torch.nn.functional.cross_entropy(logits[:-1], x[0, 1:], reduction="mean")
            nlls.append(float(nll))
            print(f"window {w + 1}/{n_win} nll {nlls[-1]:.6f} ({time.time() - t0:.0f} s)", file=sys.stderr)
    mean = sum(nlls) / len(nlls)
    out = {
        "model": os.path.basename(a.gguf),
        "text": os.path.basename(a.text),
        "text_convention": "wikitext rows joined with \\n\\n (HF wikitext-2-raw-v1), tokenized once",
        "tokenizer": "transformers AutoTokenizer(gguf_file), default special tokens",
        "dtype": "float32 (TF32 off), NLL in float64 from float32 logits",
        "device": a.device,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "seqlen": a.seqlen,
        "n_tokens_text": int(ids.numel()),
        "ids_sha256": hashlib.sha256(ids_np.tobytes()).hexdigest(),
        "first_ids": [int(v) for v in ids_np[:16]],
        "bos_prepended": bool(tok.bos_token_id is not None and int(ids_np[0]) == tok.bos_token_id),
        "n_windows": n_win,
        "window_nll": nlls,
        "nll": mean,
        "ppl": math.exp(mean),
    }
    with open(a.out, "w") as fh:
        json.dump(out, fh, indent=1)
    print(f"ppl {out['ppl']:.4f} over {n_win} windows of {a.seqlen}", file=sys.stderr)


if __name__ == "__main__":
    main()
