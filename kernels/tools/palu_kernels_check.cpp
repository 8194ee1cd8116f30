// palu-kernels-check: validates the fused latent decode attention (issue #5) on the current GPU
// against the double-precision CPU reference, over a grid of shapes (MHA/GQA, d_head 64/128,
// group sizes, ranks, f16/bf16, 16/4/3/2-bit latents, ragged lengths, forced token splits), with
// fresh random inputs per run (the seed is printed; --seed reproduces a run).
// Pass criterion per case: relative Frobenius error of both outputs (o_lat f32, out in dtype)
// <= 1e-3 for f16 and 1e-2 for bf16, and every output element finite (outputs are NaN-poisoned).
// Results table on stdout, one line per case; exit code 0 when all pass, 1 otherwise.
#include <chrono>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "latent_attention_reference.h"
#include "palu/core/error.h"

using namespace palu::cuda;
using namespace palu::cuda::testing;

namespace {

struct Case {
    ProblemShape shape;
    int32_t n_splits;
};

std::vector<Case> make_grid(bool quick) {
    std::vector<Case> cases;
    struct Geo {
        int32_t n_heads, n_kv, s, d, r_k, r_v;
    };
    const std::vector<Geo> geos = {
        {8, 8, 1, 128, 64, 64},     // MHA, M-LRD (Llama-2 kept 0.5 per head)
        {8, 8, 4, 128, 256, 256},   // MHA, G-LRD s=4 (Llama-2 kept 0.5)
        {16, 4, 4, 128, 160, 160},  // GQA n_rep 4, s=4 (Llama-3 kept 0.3)
        {16, 8, 1, 128, 32, 64},    // GQA n_rep 2, M-LRD, r_k != r_v
        {8, 4, 2, 64, 96, 64},      // d_head 64, s=2
        {12, 2, 2, 64, 128, 96},    // GQA n_rep 6, d_head 64
    };
    const int bit_pairs[][2] = {{16, 16}, {4, 4}, {3, 3}, {2, 2}, {16, 4}};
    int idx = 0;
    for (const Geo& g : geos) {
        for (LatentDType dt : {LatentDType::F16, LatentDType::BF16}) {
            for (const auto& bp : bit_pairs) {
                ++idx;
                if (quick && idx % 3 != 0) continue;
                ProblemShape s;
                s.n_heads = g.n_heads;
                s.n_kv_heads = g.n_kv;
                s.group_size = g.s;
                s.d_head = g.d;
                s.r_k = g.r_k;
                s.r_v = g.r_v;
                s.bits_k = bp[0];
                s.bits_v = bp[1];
                s.dtype = dt;
                s.batch = 3;
                s.capacity = 400;
                s.seq_lens = {400, 1, 131};  // full, a single token, a ragged tail
                s.llama3_scaling = (idx % 2) == 0;
                s.rope_theta = s.llama3_scaling ? 500000.0 : 10000.0;
                cases.push_back({s, idx % 4 == 0 ? 3 : 0});
            }
        }
    }
    // Long context, few splits vs many: one sequence, positions near 100K (RoPE range reduction).
    for (LatentDType dt : {LatentDType::F16, LatentDType::BF16}) {
        ProblemShape s;
        s.n_heads = 8;
        s.n_kv_heads = 8;
        s.group_size = 4;
        s.r_k = 256;
        s.r_v = 256;
        s.dtype = dt;
        s.capacity = quick ? 2048 : 8192;
        s.random_positions = true;
        s.rope_theta = 500000.0;
        s.llama3_scaling = true;
        cases.push_back({s, 0});
        cases.push_back({s, 1});
    }
    return cases;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"palu-kernels-check: fused latent attention vs the CPU reference"};
    uint64_t seed = 0;
    bool quick = false;
    app.add_option("--seed", seed, "base seed (0: fresh from std::random_device)");
    app.add_flag("--quick", quick, "a third of the grid, shorter long-context case");
    CLI11_PARSE(app, argc, argv);
    try {
        std::string why;
        if (!cuda_device_available(&why)) {
            std::fprintf(stderr, "kernels: check: no CUDA device: %s\n", why.c_str());
            return 7;
        }
        if (seed == 0) seed = (uint64_t(std::random_device{}()) << 32) | std::random_device{}();
        std::fprintf(stderr, "kernels: check: base seed %llu (case i uses seed + i)\n", (unsigned long long)seed);
        const auto cases = make_grid(quick);
        int n_fail = 0;
        std::printf("| # | shape | lens | splits | err o_lat | err out | tol | result |\n|---|---|---|---|---|---|---|---|\n");
        for (size_t i = 0; i < cases.size(); ++i) {
            const Case& c = cases[i];
            const HostProblem pb = make_random_problem(c.shape, seed + i);
            const AttentionOutputs ref = reference_latent_attention(pb);
            const AttentionOutputs got = run_latent_attention_device(pb, c.n_splits);
            const double e_lat = rel_frobenius_error(got.out_latent, ref.out_latent);
            const double e_out = rel_frobenius_error(got.out, ref.out);
            const double tol = tolerance_for(c.shape.dtype);
            const bool ok = e_lat <= tol && e_out <= tol;
            n_fail += ok ? 0 : 1;
            std::string lens;
            for (int32_t l : pb.seq_lens) lens += (lens.empty() ? "" : ",") + std::to_string(l);
            std::printf("| %zu | %s | %s | %s | %.2e | %.2e | %.0e | %s |\n", i, c.shape.describe().c_str(), lens.c_str(),
                        c.n_splits ? std::to_string(c.n_splits).c_str() : "auto", e_lat, e_out, tol,
                        ok ? "ok" : "FAIL");
            std::fflush(stdout);
        }
        std::printf("\n%zu cases, %d failed (seed %llu)\n", cases.size(), n_fail, (unsigned long long)seed);
        return n_fail == 0 ? 0 : 1;
    } catch (const palu::Error& e) {
        std::fprintf(stderr, "E %s\n", e.what());
        return e.exit_code();
    }
}
