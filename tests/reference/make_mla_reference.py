#!/usr/bin/env python3
"""Dev script: builds a tiny random DeepSeek-V3 (MLA, dense MLP) model with transformers on CPU,
saves it to tests/reference/mla_tiny/ (safetensors, f32) and writes tests/reference/mla_tiny_logits.json
with the logits of one full forward and of the last step of incremental decoding (prefill 8 + 4
single-token steps through the transformers cache). Never needed to build or test palu.
"""
import json
import os

import torch
import transformers
from transformers import DeepseekV3Config, DeepseekV3ForCausalLM

HERE = os.path.dirname(os.path.abspath(__file__))
OUT_DIR = os.path.join(HERE, "mla_tiny")
IDS = [3, 17, 42, 5, 88, 60, 11, 29, 71, 2, 95, 36]
N_PREFILL = 8


def main():
    torch.manual_seed(1234)
    cfg = DeepseekV3Config(
        vocab_size=96, hidden_size=64, intermediate_size=128, moe_intermediate_size=32,
        num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
        kv_lora_rank=16, q_lora_rank=None, qk_rope_head_dim=8, qk_nope_head_dim=16,
        v_head_dim=16, first_k_dense_replace=2, n_routed_experts=4, n_shared_experts=1,
        num_experts_per_tok=2, n_group=1, topk_group=1,
        max_position_embeddings=128, rms_norm_eps=1e-6, tie_word_embeddings=False,
        rope_interleave=True, rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
        bos_token_id=0, eos_token_id=1)
    model = DeepseekV3ForCausalLM(cfg).to(torch.float32).eval()
    # Norm weights default to ones: perturb them so a missing norm would show in the logits.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.add_(0.1 * torch.randn_like(p))
            else:
                p.normal_(0.0, 0.08)
    model.save_pretrained(OUT_DIR, safe_serialization=True)
    ids = torch.tensor([IDS])
    with torch.no_grad():
        full = model(ids, use_cache=False).logits[0]
        out = model(ids[:, :N_PREFILL], use_cache=True)
        cache = out.past_key_values
        for t in range(N_PREFILL, len(IDS)):
            out = model(ids[:, t:t + 1], past_key_values=cache, use_cache=True)
            cache = out.past_key_values
        last_decode = out.logits[0, -1]
    ref = {
        "torch_version": torch.__version__,
        "transformers_version": transformers.__version__,
        "ids": IDS,
        "n_prefill": N_PREFILL,
        "logits_full": full.tolist(),
        "logits_last_decode": last_decode.tolist(),
    }
    with open(os.path.join(HERE, "mla_tiny_logits.json"), "w") as f:
        json.dump(ref, f)
    print("max |full - decode| last:", (full[-1] - last_decode).abs().max().item())


if __name__ == "__main__":
    main()
