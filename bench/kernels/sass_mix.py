#!/usr/bin/env python3
"""Instruction mix of the latent-attention kernels in a cuobjdump -sass listing.

Usage: sass_mix.py all.sass. For each warp_kernel / split_kernel function: total SASS instructions
and counts by opcode class (HMMA, LDSM, LDS/STS, MUFU, FFMA/FMUL/FADD, SHFL, BAR, LDGSTS, local
memory LDL/STL), so a change's instruction budget can be read without device time.

cuobjdump comes with the CUDA toolkit; where the toolkit has only nvcc (the dev machine), the PyPI
wheel `nvidia-cuda-cuobjdump` (13.x) provides it: `cuobjdump -sass
build/kernels/CMakeFiles/palu_kernels.dir/src/latent_attention_warp.cu.o > all.sass`.
"""
import re
import sys
from collections import Counter

funcs = {}
cur = None
for line in open(sys.argv[1], errors='replace'):
    m = re.match(r'\s*Function : (\S+)', line)
    if m:
        cur = m.group(1)
        funcs[cur] = Counter()
        continue
    if cur is None:
        continue
    m = re.match(r'\s*/\*[0-9a-f]+\*/\s+(@!?U?P\w+\s+)?([A-Z][A-Z0-9_.]*)', line)
    if m:
        funcs[cur][m.group(2).split('.')[0]] += 1
classes = ['HMMA', 'LDSM', 'LDS', 'STS', 'MUFU', 'FFMA', 'FMUL', 'FADD', 'SHFL', 'BAR', 'LDGSTS', 'LDL', 'STL', 'BRA']
print('| function | total | ' + ' | '.join(classes) + ' |')
print('|---|---|' + '---|' * len(classes))
for f, c in funcs.items():
    if 'warp_kernel' not in f and 'split_kernel' not in f:
        continue
    short = re.sub(r'_ZN4palu.*?(warp_kernel|split_kernel)', r'\1', f)[:60]
    print(f"| {short} | {sum(c.values())} | " + ' | '.join(str(c[k]) for k in classes) + ' |')
