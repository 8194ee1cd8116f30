#!/usr/bin/env python3
"""Reference fixture for palu's GGUF reader, made with llama.cpp's own Python reader (gguf-py).

Reads a GGUF file with gguf.GGUFReader and writes a small JSON fixture that
tests/formats/test_gguf.cpp (GgufReference.*) compares palu's reader against:
  - header: version, tensor count, key count, alignment, data section offset;
  - every metadata key in file order with its type; scalar values and small arrays inline;
    long strings and large arrays summarized by length, first/last element and the sha256 of a
    canonical serialization (see canonical_bytes) that the C++ test reproduces;
  - every tensor: name, ggml dims (ne, fastest first), type, offset in the data section, byte
    count, and sha256 of its dequantized values (gguf.quants.dequantize) as little-endian f32, in
    ggml order (no renaming, no RoPE un-permutation).

Dev tooling only (never needed to build or test):
  python3 -m venv ~/.venvs/palu-gguf && ~/.venvs/palu-gguf/bin/pip install gguf numpy
  ~/.venvs/palu-gguf/bin/python tests/reference/gguf_reference.py \
      models/smollm2/SmolLM2-135M-Instruct-Q4_1.gguf tests/reference/smollm2_q4_1_gguf.json
"""
import hashlib
import importlib.metadata
import json
import struct
import sys

import numpy as np
import gguf
from gguf import GGUFValueType

INLINE_ARRAY_MAX = 16      # arrays longer than this are summarized
INLINE_STRING_MAX = 256    # strings longer than this are summarized


def canonical_bytes(elem_type, values):
    """Canonical serialization of an array, reproduced by the C++ test:
    strings: u64 LE byte length + UTF-8 bytes; integers and bools: i64 LE; floats: f64 LE."""
    out = bytearray()
    for v in values:
        if elem_type == GGUFValueType.STRING:
            b = v.encode("utf-8") if isinstance(v, str) else bytes(v)
            out += struct.pack("<Q", len(b)) + b
        elif elem_type in (GGUFValueType.FLOAT32, GGUFValueType.FLOAT64):
            out += struct.pack("<d", float(v))
        elif elem_type == GGUFValueType.ARRAY:
            raise ValueError("nested arrays are not summarized")
        else:
            out += struct.pack("<q", int(v))
    return bytes(out)


def array_values(field):
    """Element values of an array field (strings as str, numbers as Python numbers)."""
    elem_type = field.types[1]
    vals = []
    for idx in field.data:
        part = field.parts[idx]
        if elem_type == GGUFValueType.STRING:
            vals.append(bytes(part).decode("utf-8"))
        else:
            vals.append(part.tolist()[0])
    return vals


def scalar_value(field):
    t = field.types[0]
    part = field.parts[field.data[0]]
    if t == GGUFValueType.STRING:
        return bytes(part).decode("utf-8")
    v = part.tolist()[0]
    if t == GGUFValueType.BOOL:
        return bool(v)
    return v


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: gguf_reference.py MODEL.gguf OUT.json")
    path, out_path = sys.argv[1], sys.argv[2]
    r = gguf.GGUFReader(path)

    header = {}
    metadata = []
    for key, field in r.fields.items():
        if key.startswith("GGUF."):
            header[key[5:]] = scalar_value(field)
            continue
        t = field.types[0]
        entry = {"key": key, "type": t.name}
        if t == GGUFValueType.ARRAY:
            elem_type = field.types[1]
            vals = array_values(field)
            entry["array_type"] = elem_type.name
            entry["length"] = len(vals)
            if len(vals) <= INLINE_ARRAY_MAX:
                entry["values"] = vals
            else:
                entry["first"] = vals[0]
                entry["last"] = vals[-1]
                entry["sha256"] = hashlib.sha256(canonical_bytes(elem_type, vals)).hexdigest()
        else:
            v = scalar_value(field)
            if t == GGUFValueType.STRING and len(v.encode("utf-8")) > INLINE_STRING_MAX:
                b = v.encode("utf-8")
                entry["length"] = len(b)
                entry["sha256"] = hashlib.sha256(b).hexdigest()
            else:
                entry["value"] = v
        metadata.append(entry)

    tensors = []
    for t in r.tensors:
        values = gguf.quants.dequantize(t.data, t.tensor_type)
        f32 = np.ascontiguousarray(values, dtype="<f4")
        tensors.append({
            "name": t.name,
            "ne": [int(x) for x in t.shape],
            "type": t.tensor_type.name,
            "offset": int(t.data_offset - r.data_offset),
            "n_bytes": int(t.n_bytes),
            "f32_sha256": hashlib.sha256(f32.tobytes()).hexdigest(),
        })

    fixture = {
        "generator": "tests/reference/gguf_reference.py with gguf-py "
                     + importlib.metadata.version("gguf"),
        "file": path.split("/")[-1],
        "header": header,
        "alignment": int(r.alignment),
        "data_offset": int(r.data_offset),
        "metadata": metadata,
        "tensors": tensors,
    }
    with open(out_path, "w") as f:
        json.dump(fixture, f, indent=1, ensure_ascii=False)
        f.write("\n")


if __name__ == "__main__":
    main()
