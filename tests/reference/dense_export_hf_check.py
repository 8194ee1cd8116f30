#!/usr/bin/env python3
"""Hugging Face transformers check of palu's compressed forward (issue #4 acceptance): the perplexity
of the `palu-export --to dense` output, run by transformers, must equal palu-eval's perplexity of the
compressed checkpoint (within 0.1%).

Dev tooling only (never needed to build or test). Needs torch, transformers, safetensors, and gguf
for GGUF sources.

Two ways to give the dense model:
  --model DIR                  the dense export itself (any size; used for stories260K)
  --gguf FILE --kv FILE        for a GGUF-sourced model too large to carry to the GPU machine: the
                               original GGUF (transformers dequantizes it to f32, bit-identical to
                               palu's dequantization, tests/reference/smollm2_q4_1_gguf.json) with
                               every k_proj/v_proj weight (and bias) replaced by the dense export's
                               re-multiplied tensors from FILE (a safetensors holding exactly those
                               tensors, extracted from the export by --extract-kv). Every other tensor
                               of the export equals the source's dequantized tensor (palu's checkpoint
                               tests check the copy bit for bit), so this is the same model.
Token ids come from a raw int32 file (palu's tokenizer, the same ids palu-eval scores), windows are
non-overlapping, window NLL = mean over seqlen-1 predictions, ppl = exp(mean of window NLLs).

  python3 dense_export_hf_check.py --extract-kv DENSE_DIR --out kv.safetensors
  python3 dense_export_hf_check.py --gguf m.gguf --kv kv.safetensors --ids ids.i32 --seqlen 1024 \
      --max-windows 16 --device cuda --out hf.json
"""
import argparse
import json
import math
import os
import sys
import time


def extract_kv(dense_dir, out):
    from safetensors.numpy import load_file, save_file
    import glob
    tensors = {}
    for f in sorted(glob.glob(os.path.join(dense_dir, "*.safetensors"))):
        for name, t in load_file(f).items():
            if ".self_attn.k_proj." in name or ".self_attn.v_proj." in name:
                tensors[name] = t
    save_file(tensors, out)
    print(f"{len(tensors)} tensors -> {out}", file=sys.stderr)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--extract-kv", default="")
    ap.add_argument("--model", default="")
    ap.add_argument("--gguf", default="")
    ap.add_argument("--kv", default="")
    ap.add_argument("--ids", default="")
    ap.add_argument("--seqlen", type=int, default=1024)
    ap.add_argument("--max-windows", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    if a.extract_kv:
        extract_kv(a.extract_kv, a.out)
        return
    import numpy as np
    import torch
    import transformers
    from transformers import AutoModelForCausalLM
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    if a.model:
        model = AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.float32)
        source = os.path.basename(os.path.normpath(a.model))
    else:
        from safetensors.torch import load_file
        d, f = os.path.split(os.path.abspath(a.gguf))
        model = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, dtype=torch.float32)
        kv = load_file(a.kv)
        sd = model.state_dict()
        n = 0
        for name, t in kv.items():
            assert name in sd, f"{name} not in the transformers model"
            assert tuple(sd[name].shape) == tuple(t.shape), (name, sd[name].shape, t.shape)
            with torch.no_grad():
                sd[name].copy_(t.to(torch.float32))
            n += 1
        expected = 2 * model.config.num_hidden_layers
        assert n >= expected, f"only {n} k/v tensors replaced, expected {expected}"
        source = f"{f} + {os.path.basename(a.kv)} ({n} k/v tensors)"
    model.eval().to(a.device)
    ids = torch.from_numpy(np.fromfile(a.ids, dtype="<i4").astype("int64"))
    n_win = ids.numel() // a.seqlen
    if a.max_windows > 0:
        n_win = min(n_win, a.max_windows)
    nlls = []
    t0 = time.time()
    with torch.no_grad():
        for w in range(n_win):
            x = ids[w * a.seqlen:(w + 1) * a.seqlen].unsqueeze(0).to(a.device)
            logits = model(x).logits[0].double()
            nlls.append(float(torch.nn.functional.cross_entropy(logits[:-1], x[0, 1:], reduction="mean")))
    mean = sum(nlls) / len(nlls)
    out = {"model": source, "ids": os.path.basename(a.ids), "seqlen": a.seqlen, "n_windows": n_win,
           "dtype": "float32 (TF32 off)", "device": a.device, "torch": torch.__version__,
           "transformers": transformers.__version__, "window_nll": nlls, "nll": mean,
           "ppl": math.exp(mean), "seconds": time.time() - t0}
    with open(a.out, "w") as fh:
        json.dump(out, fh, indent=1)
    print(f"HF ppl {out['ppl']:.6f} over {n_win} windows of {a.seqlen} ({source})")


if __name__ == "__main__":
    main()
