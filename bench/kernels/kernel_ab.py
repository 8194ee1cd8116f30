#!/usr/bin/env python3
"""Block vs warp kernel table from two palu-kernels-bench runs with --kernels block warp.

Usage: kernel_ab.py run1.jsonl run2.jsonl. Each configuration's median time per kernel and run;
ratio = block / warp of the summed medians (> 1: the warp kernel is faster).
"""
import json
import sys


def load(path):
    d = {}
    for line in open(path):
        if line.startswith('{'):
            j = json.loads(line)
            d[(j['model'], j['ctx'], j['batch'], j['kept'], j['gs'], j['bits'], j['kernel'])] = j
    return d


r1, r2 = load(sys.argv[1]), load(sys.argv[2])
print('| model | ctx | batch | kept | s | bits | rank | block µs (1 / 2) | warp µs (1 / 2) | block/warp |')
print('|---|---|---|---|---|---|---|---|---|---|')
for k, j in r1.items():
    if k[6] != 'block':
        continue
    w = k[:6] + ('warp',)
    if w not in r1:
        continue
    b1, b2 = j['us'], r2.get(k, j)['us']
    w1, w2 = r1[w]['us'], r2.get(w, r1[w])['us']
    print(f"| {k[0]} | {k[1]} | {k[2]} | {k[3]} | {k[4]} | {k[5]} | {j['rank']} | {b1:.1f} / {b2:.1f} | "
          f"{w1:.1f} / {w2:.1f} | {(b1 + b2) / (w1 + w2):.2f} |")
