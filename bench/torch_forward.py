#!/usr/bin/env python3
"""PyTorch CPU baseline for bench/engine_vs_torch.sh: the same Llama forward as palu's engine
(SmolLM2-135M's architecture, transformers' LlamaForCausalLM, float32, random weights or the GGUF),
prefill at the given sequence lengths and greedy-style decode through transformers' KV cache.
Prints one JSON line per measurement. Dev tooling (PyPI torch + transformers)."""
import argparse
import json
import os
import time

import torch
from transformers import LlamaConfig, LlamaForCausalLM


def smollm2_config():
    return LlamaConfig(vocab_size=49152, hidden_size=576, intermediate_size=1536,
                       num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3,
                       head_dim=64, max_position_embeddings=8192, rms_norm_eps=1e-5,
                       rope_theta=100000.0, tie_word_embeddings=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seqlens", default="512,2048")
    ap.add_argument("--decode", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--gguf", default="")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    if a.gguf:
        d, f = os.path.split(os.path.abspath(a.gguf))
        model = LlamaForCausalLM.from_pretrained(d, gguf_file=f, dtype=torch.float32)
    else:
        model = LlamaForCausalLM(smollm2_config()).float()
    model.eval()
    g = torch.Generator().manual_seed(1)
    with torch.inference_mode():
        for n in [int(s) for s in a.seqlens.split(",")]:
            x = torch.randint(0, 49152, (1, n), generator=g)
            model(x)  # warm-up
            best = 1e30
            for _ in range(a.repeats):
                t0 = time.perf_counter()
                model(x, use_cache=False)
                best = min(best, time.perf_counter() - t0)
            print(json.dumps({"what": "prefill", "seqlen": n, "seconds": best,
                              "tokens_per_s": n / best, "threads": a.threads}), flush=True)
        x = torch.randint(0, 49152, (1, 512), generator=g)
        out = model(x, use_cache=True)
        past = out.past_key_values
        tok = torch.randint(0, 49152, (1, 1), generator=g)
        t0 = time.perf_counter()
        for _ in range(a.decode):
            out = model(tok, past_key_values=past, use_cache=True)
            past = out.past_key_values
        dt = time.perf_counter() - t0
        print(json.dumps({"what": "decode", "prompt": 512, "n_new": a.decode, "seconds": dt,
                          "tokens_per_s": a.decode / dt, "threads": a.threads}), flush=True)


if __name__ == "__main__":
    main()
