#!/usr/bin/env python3
"""palu kernels benchmark driver (issue #5), run on the GPU machine.

1. Measures the two ceilings on this device: device-to-device copy bandwidth (bytes read + written
   per second, torch copy_ of 1 GiB) and the bf16 / fp16 tensor-core GEMM rate (torch.matmul
   8192^3, random data).
2. Runs palu-kernels-bench (JSON lines: fused latent attention time per configuration).
3. Times the baseline in the same run: torch scaled_dot_product_attention with the FlashAttention
   backend over the full fp16 K/V cache of the same shape (decode: one query token; GQA as q-len
   n_rep against each KV head), CUDA events, warm-up, median of 7 repetitions, caches rotated when
   small so L2 does not serve them.
4. Writes a markdown table: time, speedup, achieved bandwidth vs copy bandwidth, and the physics
   bound max(bytes / copy BW, reconstruction FLOPs / GEMM rate) for every configuration.

Usage: run_bench.py --bench build/kernels/palu-kernels-bench --out results.md [-- bench args...]
"""
import argparse
import json
import subprocess
import sys

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel


def timed(fn, iters, reps=7):
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    out = []
    for _ in range(reps):
        start.record()
        for i in range(iters):
            fn(i)
        end.record()
        end.synchronize()
        out.append(start.elapsed_time(end) * 1e3 / iters)
    out.sort()
    return out[len(out) // 2]


def copy_bandwidth():
    n = 1 << 29  # fp16 elements = 1 GiB
    x = torch.empty(n, dtype=torch.float16, device="cuda").uniform_(-1, 1)
    y = torch.empty_like(x)
    for _ in range(3):
        y.copy_(x)
    us = timed(lambda i: y.copy_(x), 10)
    return 2 * n * 2 / (us * 1e-6)


def gemm_rate(dtype):
    n = 8192
    a = torch.randn(n, n, dtype=dtype, device="cuda")
    b = torch.randn(n, n, dtype=dtype, device="cuda")
    for _ in range(3):
        a @ b
    us = timed(lambda i: a @ b, 10)
    return 2 * n**3 / (us * 1e-6)


def sdpa_baseline(n_heads, n_kv, ctx, batch, max_bytes):
    d = 128
    n_rep = n_heads // n_kv
    kv_bytes = 2 * batch * n_kv * ctx * d * 2
    if kv_bytes > max_bytes:
        return None, kv_bytes
    copies = max(1, min(8, (512 << 20) // kv_bytes + 1))
    sets = []
    for _ in range(copies):
        q = torch.randn(batch, n_kv, n_rep, d, dtype=torch.float16, device="cuda")
        k = torch.randn(batch, n_kv, ctx, d, dtype=torch.float16, device="cuda")
        v = torch.randn(batch, n_kv, ctx, d, dtype=torch.float16, device="cuda")
        sets.append((q, k, v))
    with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
        def run(i):
            q, k, v = sets[i % copies]
            return F.scaled_dot_product_attention(q, k, v)
        for i in range(3):
            run(i)
        torch.cuda.synchronize()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        run(0)
        end.record()
        end.synchronize()
        iters = max(1, min(200, int(2000 / max(start.elapsed_time(end) * 1e3, 1))))
        us = timed(run, iters)
    del sets
    torch.cuda.empty_cache()
    return us, kv_bytes


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bench", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--baseline-max-gb", type=float, default=66.0)
    ap.add_argument("bench_args", nargs="*")
    args = ap.parse_args()

    dev = torch.cuda.get_device_name()
    bw = copy_bandwidth()
    rate_bf16 = gemm_rate(torch.bfloat16)
    rate_f16 = gemm_rate(torch.float16)
    torch.cuda.empty_cache()
    print(f"device {dev}; copy {bw / 1e12:.2f} TB/s; GEMM bf16 {rate_bf16 / 1e12:.0f} TFLOP/s, "
          f"f16 {rate_f16 / 1e12:.0f} TFLOP/s", flush=True)

    cmd = [args.bench] + args.bench_args
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=sys.stderr, text=True)
    rows = [json.loads(l) for l in proc.stdout.splitlines() if l.startswith("{")]
    if proc.returncode != 0:
        print(f"palu-kernels-bench exited with {proc.returncode} after {len(rows)} rows", flush=True)

    base = {}
    for r in rows:
        key = (r["model"], r["n_heads"], r["n_kv_heads"], r["ctx"], r["batch"])
        if key not in base:
            base[key] = sdpa_baseline(r["n_heads"], r["n_kv_heads"], r["ctx"], r["batch"],
                                      args.baseline_max_gb * 1e9)

    lines = [
        f"Device: {dev}. Copy bandwidth {bw / 1e12:.2f} TB/s (read + write), GEMM {rate_f16 / 1e12:.0f} "
        f"TFLOP/s f16 / {rate_bf16 / 1e12:.0f} bf16 (torch.matmul 8192^3). Bound = max(latent bytes / copy BW, "
        f"2·n_kv·d_head·r·tokens / f16 GEMM rate). Times are medians of 7 (µs).",
        "",
        "| model | ctx | batch | kept | s | bits | r | palu µs | SDPA µs | speedup | palu GB/s | % copy BW | "
        "bound µs | bound / palu | SDPA GB/s | splits | kernel |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        key = (r["model"], r["n_heads"], r["n_kv_heads"], r["ctx"], r["batch"])
        b_us, kv_bytes = base[key]
        t_bytes = r["bytes"] / bw * 1e6
        t_flops = r["flops"] / rate_f16 * 1e6
        bound = max(t_bytes, t_flops)
        gbs = r["bytes"] / (r["us"] * 1e-6) / 1e9
        r.update(sdpa_us=b_us, bound_us=bound, bound_bytes_us=t_bytes, bound_flops_us=t_flops,
                 copy_bw=bw, gemm_f16=rate_f16)
        lines.append(
            f"| {r['model']} | {r['ctx']} | {r['batch']} | {r['kept']} | {r['gs']} | {r['bits']} | {r['rank']} | "
            f"{r['us']:.1f} | {'—' if b_us is None else f'{b_us:.1f}'} | "
            f"{'—' if b_us is None else f'{b_us / r['us']:.2f}×'} | {gbs:.0f} | {100 * gbs * 1e9 / bw:.0f}% | "
            f"{bound:.1f} ({'mma' if t_flops > t_bytes else 'bytes'}) | {100 * bound / r['us']:.0f}% | "
            f"{'—' if b_us is None else f'{kv_bytes / (b_us * 1e-6) / 1e9:.0f}'} | {r['n_splits']} | "
            f"{r.get('kernel', 'block')} |")
    text = "\n".join(lines) + "\n"
    with open(args.out, "w") as f:
        f.write(text)
    with open(args.out.rsplit(".", 1)[0] + ".jsonl", "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    # Short summary on stdout (the full table is in --out).
    for r in rows:
        if r["ctx"] >= 16384 and r["batch"] in (1, 8):
            b = r["sdpa_us"]
            print(f"{r['model']} ctx {r['ctx']} b {r['batch']} kept {r['kept']} s {r['gs']} bits {r['bits']} "
                  f"{r.get('kernel', 'block')}: {r['us']:.1f} us, sdpa {b if b is None else round(b, 1)}, "
                  f"bound {r['bound_us']:.1f}, x{(b or 0) / r['us']:.2f}")
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
