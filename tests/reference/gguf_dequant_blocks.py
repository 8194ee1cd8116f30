#!/usr/bin/env python3
"""Bit-exact dequantization references for every ggml type palu supports, from gguf-py.

For each type, a few blocks of seeded random bytes (scale fields set to random finite halves so
values stay finite) and the f32 values gguf.quants.dequantize makes of them, stored as hex.
tests/formats/test_gguf.cpp (GgufDequant.MatchesGgufPy_*) dequantizes the same bytes and
compares bit for bit. Dev tooling only:
  ~/.venvs/palu-gguf/bin/python tests/reference/gguf_dequant_blocks.py tests/reference/gguf_dequant_blocks.json
"""
import importlib.metadata
import json
import sys

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T
from gguf.constants import GGML_QUANT_SIZES

# Byte offsets of the f16 scale fields inside one block.
F16_FIELDS = {
    T.Q4_0: [0], T.Q4_1: [0, 2], T.Q5_0: [0], T.Q5_1: [0, 2], T.Q8_0: [0],
    T.Q4_K: [0, 2], T.Q5_K: [0, 2], T.Q6_K: [208],
}
N_BLOCKS = {T.F32: 64, T.F16: 64, T.BF16: 64}


def main():
    rng = np.random.default_rng(20261123)
    out = {"generator": "tests/reference/gguf_dequant_blocks.py with gguf-py "
                        + importlib.metadata.version("gguf"), "cases": []}
    for t in [T.F32, T.F16, T.BF16, T.Q8_0, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q4_K, T.Q5_K, T.Q6_K]:
        block, type_size = GGML_QUANT_SIZES[t]
        n_blocks = N_BLOCKS.get(t, 3)
        if t == T.F32:
            raw = rng.standard_normal(n_blocks).astype("<f4").view(np.uint8)
        elif t == T.F16:
            raw = rng.standard_normal(n_blocks).astype("<f2").view(np.uint8)
        elif t == T.BF16:
            f = rng.standard_normal(n_blocks).astype("<f4")
            raw = (f.view("<u4") >> 16).astype("<u2").view(np.uint8)
        else:
            raw = rng.integers(0, 256, size=(n_blocks, type_size), dtype=np.uint8)
            for off in F16_FIELDS[t]:
                h = (rng.standard_normal(n_blocks) * 0.05).astype("<f2").view(np.uint8)
                raw[:, off:off + 2] = h.reshape(n_blocks, 2)
            raw = raw.reshape(-1)
        raw = np.ascontiguousarray(raw, dtype=np.uint8)
        n = n_blocks * block
        vals = gguf.quants.dequantize(raw.reshape(1, -1), t).reshape(-1)
        vals = np.ascontiguousarray(vals, dtype="<f4")
        assert vals.size == n
        out["cases"].append({
            "type": t.name, "n": int(n), "bytes": raw.tobytes().hex(),
            "f32_bits": vals.view("<u4").tobytes().hex(),
        })
    with open(sys.argv[1], "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
