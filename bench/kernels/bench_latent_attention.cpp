// palu-kernels-bench: times palu::cuda::latent_attention_decode (split + reduce + value
// up-projection, i.e. the full attention output of one decode step of one layer) on the shapes of
// issue #5: Llama-2-7B (32 heads x 128, MHA) and Llama-3-8B (32 q / 8 KV heads x 128), contexts,
// batches, kept ratios, group sizes and latent bit widths from the command line.
// Timing: CUDA events around `iters` back-to-back launches (iters chosen so one repetition lasts
// >= 2 ms), 7 repetitions after a warm-up, median reported. Inputs are random halves in [-1, 1]
// (never zeros); when one configuration's caches are smaller than 512 MiB, several copies rotate
// so that the L2 cache (50 MB) does not serve them. One JSON object per configuration on stdout;
// bench/kernels/run_bench.py adds the PyTorch SDPA baseline and the physical bound.
#include <cuda_runtime_api.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "palu/core/error.h"
#include "palu/kernels/latent_attention.h"

using namespace palu::cuda;

namespace {

#define BENCH_CUDA(expr)                                                                          \
    do {                                                                                          \
        const cudaError_t e_ = (expr);                                                            \
        if (e_ != cudaSuccess)                                                                    \
            PALU_THROW(palu::CudaError, "bench: %s:%d: %s failed: %s", __FILE__, __LINE__, #expr, \
                       cudaGetErrorString(e_));                                                   \
    } while (0)

struct Model {
    const char* name;
    int32_t n_heads, n_kv_heads, d_head;
};

size_t align256(size_t x) {
    return (x + 255) & ~size_t(255);
}

struct Config {
    Model m;
    int32_t ctx, batch, gs, bits, rank;
    double kept;
    size_t cache_bytes() const {  // K + V latents incl. scales/zeros, one copy
        const size_t rows = size_t(batch) * (m.n_kv_heads / gs) * ctx;
        return 2 * align256(rows * size_t(latent_row_bytes(rank, bits))) +
               (bits == 16 ? 0 : 4 * align256(rows * 2));
    }
};

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"palu-kernels-bench: fused latent decode attention timings (JSON lines)"};
    std::vector<std::string> models{"llama2", "llama3"};
    std::vector<int32_t> ctxs{4096, 16384, 65536, 131072}, batches{1, 8, 32}, gss{1, 4},
        bitss{16, 4, 3};
    std::vector<double> kepts{0.5, 0.3};
    double mem_gb = 60.0;
    int32_t reps = 7;
    std::vector<std::string> kernel_names{"auto"};
    app.add_option("--models", models, "llama2 and/or llama3");
    app.add_option("--ctx", ctxs, "context lengths");
    app.add_option("--batch", batches, "batch sizes");
    app.add_option("--gs", gss, "group sizes");
    app.add_option("--bits", bitss, "latent bit widths (16, 4, 3, 2)");
    app.add_option("--kept", kepts, "kept ratios (rank = round(kept * s * d_head / 32) * 32)");
    app.add_option("--mem-gb", mem_gb, "skip configurations whose caches exceed this many GB");
    app.add_option("--reps", reps, "timed repetitions (median reported)");
    app.add_option("--kernels", kernel_names,
                   "auto, block and/or warp: each configuration is timed with each (skipped where "
                   "it does not apply)")
        ->check(CLI::IsMember({"auto", "block", "warp"}));
    CLI11_PARSE(app, argc, argv);
    try {
        std::vector<Config> cfgs;
        for (const auto& mn : models) {
            const Model m =
                mn == "llama3" ? Model{"llama3-8b", 32, 8, 128} : Model{"llama2-7b", 32, 32, 128};
            for (int32_t ctx : ctxs)
                for (int32_t b : batches)
                    for (double kept : kepts)
                        for (int32_t gs : gss)
                            for (int32_t bits : bitss) {
                                const int32_t r = std::max<int32_t>(
                                    32, int32_t(std::lround(kept * gs * m.d_head / 32.0)) * 32);
                                Config c{m, ctx, b, gs, bits, r, kept};
                                if (double(c.cache_bytes()) > mem_gb * 1e9) {
                                    std::fprintf(stderr,
                                                 "bench: skip %s ctx %d batch %d (%.1f GB)\n",
                                                 m.name, ctx, b, c.cache_bytes() / 1e9);
                                    continue;
                                }
                                cfgs.push_back(c);
                            }
        }
        // One arena of random halves in [-1, 1], carved per configuration.
        const size_t min_rot = size_t(512) << 20;
        size_t arena_bytes = 0;
        for (const auto& c : cfgs) {
            const size_t copies =
                std::clamp<size_t>(min_rot / std::max<size_t>(c.cache_bytes(), 1) + 1, 1, 16);
            arena_bytes = std::max(arena_bytes, copies * c.cache_bytes());
        }
        uint8_t* arena = nullptr;
        BENCH_CUDA(cudaMalloc(reinterpret_cast<void**>(&arena), arena_bytes));
        {
            std::vector<uint16_t> block(size_t(8) << 20);
            std::mt19937 rng(1234);
            std::uniform_real_distribution<float> ud(-1.0f, 1.0f);
            for (auto& v : block) {
                // f16 bits of a uniform value in [-1, 1] (exponent <= 15: also finite as bf16)
                const float x = ud(rng);
                const uint32_t s = x < 0 ? 0x8000u : 0u;
                const float ax = std::fabs(x);
                int e;
                const float mnt = std::frexp(ax, &e);  // ax = mnt * 2^e, mnt in [0.5, 1)
                const int he = std::max(0, e - 1 + 15);
                v = uint16_t(s | (uint32_t(he) << 10) |
                             (uint32_t((mnt * 2.0f - 1.0f) * 1024.0f) & 0x3ffu));
            }
            const size_t bb = block.size() * 2;
            BENCH_CUDA(
                cudaMemcpy(arena, block.data(), std::min(bb, arena_bytes), cudaMemcpyHostToDevice));
            for (size_t filled = std::min(bb, arena_bytes); filled < arena_bytes;) {
                const size_t n = std::min(filled, arena_bytes - filled);
                BENCH_CUDA(cudaMemcpy(arena + filled, arena, n, cudaMemcpyDeviceToDevice));
                filled += n;
            }
        }
        // Small per-layer tensors: q, up-projections, RoPE table, lengths, output, workspace.
        const int32_t max_b = *std::max_element(batches.begin(), batches.end());
        void *q = nullptr, *k_up = nullptr, *v_up = nullptr, *out = nullptr, *ws = nullptr;
        float* inv_freq = nullptr;
        int32_t* lens = nullptr;
        BENCH_CUDA(cudaMalloc(&q, size_t(max_b) * 32 * 128 * 2));
        BENCH_CUDA(cudaMalloc(&k_up, size_t(32) * 128 * 512 * 2));
        BENCH_CUDA(cudaMalloc(&v_up, size_t(32) * 128 * 512 * 2));
        BENCH_CUDA(cudaMalloc(&out, size_t(max_b) * 32 * 128 * 2));
        BENCH_CUDA(cudaMalloc(reinterpret_cast<void**>(&inv_freq), 64 * 4));
        BENCH_CUDA(cudaMalloc(reinterpret_cast<void**>(&lens), size_t(max_b) * 4));
        BENCH_CUDA(cudaMemcpy(q, arena, size_t(max_b) * 32 * 128 * 2, cudaMemcpyDeviceToDevice));
        BENCH_CUDA(
            cudaMemcpy(k_up, arena + 4096, size_t(32) * 128 * 512 * 2, cudaMemcpyDeviceToDevice));
        BENCH_CUDA(
            cudaMemcpy(v_up, arena + 8192, size_t(32) * 128 * 512 * 2, cudaMemcpyDeviceToDevice));
        {
            std::vector<float> f(64);
            for (int i = 0; i < 64; ++i) f[size_t(i)] = float(std::pow(500000.0, -2.0 * i / 128.0));
            BENCH_CUDA(cudaMemcpy(inv_freq, f.data(), 64 * 4, cudaMemcpyHostToDevice));
        }
        size_t ws_cap = 0;
        cudaEvent_t ev0, ev1;
        BENCH_CUDA(cudaEventCreate(&ev0));
        BENCH_CUDA(cudaEventCreate(&ev1));
        cudaStream_t stream;
        BENCH_CUDA(cudaStreamCreate(&stream));

        for (const auto& c : cfgs) {
            std::vector<int32_t> hl(size_t(c.batch), c.ctx);
            BENCH_CUDA(cudaMemcpy(lens, hl.data(), hl.size() * 4, cudaMemcpyHostToDevice));
            const size_t copies = std::clamp<size_t>(min_rot / c.cache_bytes() + 1, 1, 16);
            const size_t rows = size_t(c.batch) * (c.m.n_kv_heads / c.gs) * c.ctx;
            std::vector<LatentAttentionParams> ps;
            for (size_t i = 0; i < copies; ++i) {
                uint8_t* base = arena + i * c.cache_bytes();
                LatentAttentionParams p;
                p.batch = c.batch;
                p.n_heads = c.m.n_heads;
                p.n_kv_heads = c.m.n_kv_heads;
                p.group_size = c.gs;
                p.d_head = c.m.d_head;
                p.capacity = c.ctx;
                p.dtype = LatentDType::F16;
                p.q = q;
                p.seq_lens = lens;
                p.inv_freq = inv_freq;
                const size_t data_b = align256(rows * size_t(latent_row_bytes(c.rank, c.bits)));
                const size_t sc_b = align256(rows * 2);
                p.k = {base, c.bits == 16 ? nullptr : base + 2 * data_b,
                       c.bits == 16 ? nullptr : base + 2 * data_b + sc_b, c.rank, c.bits};
                p.v = {base + data_b, c.bits == 16 ? nullptr : base + 2 * data_b + 2 * sc_b,
                       c.bits == 16 ? nullptr : base + 2 * data_b + 3 * sc_b, c.rank, c.bits};
                p.k_up = k_up;
                p.v_up = v_up;
                p.out = out;
                ps.push_back(p);
            }
            for (const std::string& kn : kernel_names) {
                const LatentKernel kernel = kn == "block"  ? LatentKernel::Block
                                            : kn == "warp" ? LatentKernel::Warp
                                                           : LatentKernel::Auto;
                for (auto& p : ps) p.kernel = kernel;
                auto skip = [&](const palu::Error& e) {
                    std::fprintf(stderr,
                                 "bench: skip %s ctx %d batch %d s %d bits %d kernel %s: %s\n",
                                 c.m.name, c.ctx, c.batch, c.gs, c.bits, kn.c_str(), e.what());
                };
                LatentAttentionPlan plan;
                try {  // a forced kernel that does not apply to this shape
                    plan = plan_latent_attention(ps[0]);
                } catch (const palu::UsageError& e) {
                    skip(e);
                    continue;
                } catch (const palu::ShapeError& e) {
                    skip(e);
                    continue;
                }
                if (plan.workspace_bytes > ws_cap) {
                    if (ws) BENCH_CUDA(cudaFree(ws));
                    ws_cap = plan.workspace_bytes;
                    BENCH_CUDA(cudaMalloc(&ws, ws_cap));
                }
                for (auto& p : ps) {
                    p.workspace = ws;
                    p.workspace_bytes = ws_cap;
                }
                // Warm-up, then size the repetitions.
                for (size_t i = 0; i < std::max<size_t>(2, copies); ++i)
                    latent_attention_decode(ps[i % copies], stream);
                BENCH_CUDA(cudaEventRecord(ev0, stream));
                latent_attention_decode(ps[0], stream);
                BENCH_CUDA(cudaEventRecord(ev1, stream));
                BENCH_CUDA(cudaEventSynchronize(ev1));
                float ms1 = 0;
                BENCH_CUDA(cudaEventElapsedTime(&ms1, ev0, ev1));
                const int iters = std::clamp(int(2.0 / std::max(ms1, 1e-3f)), 1, 200);
                std::vector<double> per;
                for (int r = 0; r < reps; ++r) {
                    BENCH_CUDA(cudaEventRecord(ev0, stream));
                    for (int i = 0; i < iters; ++i)
                        latent_attention_decode(ps[size_t(r * iters + i) % copies], stream);
                    BENCH_CUDA(cudaEventRecord(ev1, stream));
                    BENCH_CUDA(cudaEventSynchronize(ev1));
                    float ms = 0;
                    BENCH_CUDA(cudaEventElapsedTime(&ms, ev0, ev1));
                    per.push_back(1e3 * ms / iters);
                }
                std::sort(per.begin(), per.end());
                const double us = per[per.size() / 2];
                const int32_t n_groups = c.m.n_kv_heads / c.gs;
                const double up_bytes = 2.0 * n_groups * c.gs * c.m.d_head * c.rank * 2;
                const double bytes = double(c.cache_bytes()) + up_bytes;
                const double flops =
                    2.0 * c.batch * double(c.ctx) * c.m.n_kv_heads * c.m.d_head * c.rank;
                std::printf(
                    "{\"model\":\"%s\",\"n_heads\":%d,\"n_kv_heads\":%d,\"ctx\":%d,\"batch\":%d,"
                    "\"kept\":%.2f,"
                    "\"gs\":%d,\"bits\":%d,\"rank\":%d,\"us\":%.3f,\"us_min\":%.3f,\"us_max\":%.3f,"
                    "\"bytes\":%.0f,\"flops\":%.0f,\"n_splits\":%d,\"kv_per_block\":%d,\"smem\":%"
                    "zu,"
                    "\"kernel\":\"%s\"}\n",
                    c.m.name, c.m.n_heads, c.m.n_kv_heads, c.ctx, c.batch, c.kept, c.gs, c.bits,
                    c.rank, us, per.front(), per.back(), bytes, flops, plan.n_splits,
                    plan.kv_heads_per_block, plan.smem_bytes,
                    plan.kernel == LatentKernel::Warp ? "warp" : "block");
                std::fflush(stdout);
            }
        }
        BENCH_CUDA(cudaDeviceSynchronize());
        return 0;
    } catch (const palu::Error& e) {
        std::fprintf(stderr, "E %s\n", e.what());
        return e.exit_code();
    }
}
