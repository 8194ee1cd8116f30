# A/B table of palu-kernels-bench JSON lines: ab_table.py A1.jsonl B1.jsonl A2.jsonl B2.jsonl
import json, sys
def load(p):
    d = {}
    for line in open(p):
        if line.startswith('{'):
            j = json.loads(line)
            d[(j['model'], j['ctx'], j['batch'], j['kept'], j['gs'], j['bits'])] = j
    return d
a1, b1, a2, b2 = (load(p) for p in sys.argv[1:5])
print('| model | ctx | batch | kept | s | bits | old µs (run 1 / 2) | new µs (run 1 / 2) | old/new | new smem | splits |')
print('|---|---|---|---|---|---|---|---|---|---|---|')
for k in a1:
    if k not in b1: continue
    o1, o2 = a1[k]['us'], a2.get(k, a1[k])['us']
    n1, n2 = b1[k]['us'], b2.get(k, b1[k])['us']
    print(f"| {k[0]} | {k[1]} | {k[2]} | {k[3]} | {k[4]} | {k[5]} | {o1:.1f} / {o2:.1f} | {n1:.1f} / {n2:.1f} | "
          f"{(o1 + o2) / (n1 + n2):.3f} | {b1[k]['smem']} | {b1[k]['n_splits']} |")
