// palu example (CUDA): one fused decode-attention step over a latent KV cache on the GPU, with the
// host API of palu/kernels/latent_attention.h. Random f16 latents and up-projections; the result is
// not compared with anything (tests/kernels does that against the CPU reference), only printed.
//
// Shape: 1 sequence of 100 cached tokens, 8 query heads on 8 KV heads of 64 dims, groups of 4 KV
// heads (2 groups), key and value rank 64 per group, f16 latents.
// Exits 77 (ctest SKIP_RETURN_CODE) when no CUDA device is visible.
//
// Usage: palu_example_cuda_decode
#include <cuda_runtime_api.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <random>
#include <vector>

#include "palu/core/dtype.h"
#include "palu/core/error.h"
#include "palu/kernels/latent_attention.h"

namespace {

void cuda_check(cudaError_t e, const char* what) {
    PALU_CHECK(e == cudaSuccess, palu::CudaError, "cuda_decode: %s: %s", what,
               cudaGetErrorString(e));
}

// Copies `host` to a new device buffer (released at process exit).
template <typename T>
T* upload(const std::vector<T>& host) {
    void* dev = nullptr;
    cuda_check(cudaMalloc(&dev, host.size() * sizeof(T)), "cudaMalloc");
    cuda_check(cudaMemcpy(dev, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice),
               "upload");
    return static_cast<T*>(dev);
}

// n random f16 values ~ U(-scale, scale).
std::vector<uint16_t> random_f16(size_t n, float scale, std::mt19937& rng) {
    std::uniform_real_distribution<float> u(-scale, scale);
    std::vector<uint16_t> v(n);
    for (auto& h : v) h = palu::f32_to_f16(u(rng));
    return v;
}

}  // namespace

int main() {
    int n_devices = 0;
    if (cudaGetDeviceCount(&n_devices) != cudaSuccess || n_devices == 0) {
        std::fprintf(stderr, "no CUDA device: skipped\n");
        return 77;
    }
    const int32_t n_heads = 8, n_kv = 8, s = 4, d_head = 64, rank = 64, capacity = 128;
    const size_t n_groups = n_kv / s;
    std::mt19937 rng(7);
    try {
        palu::cuda::LatentAttentionParams p;
        p.batch = 1;
        p.n_heads = n_heads;
        p.n_kv_heads = n_kv;
        p.group_size = s;
        p.d_head = d_head;
        p.capacity = capacity;
        p.dtype = palu::cuda::LatentDType::F16;
        p.q = upload(random_f16(n_heads * d_head, 1.0f, rng));  // [1, n_heads, d_head]
        p.k.data = upload(
            random_f16(n_groups * capacity * rank, 1.0f, rng));  // [1, n_groups, capacity, r]
        p.v.data = upload(random_f16(n_groups * capacity * rank, 1.0f, rng));
        p.k.rank = p.v.rank = rank;
        p.k_up = upload(
            random_f16(n_groups * s * d_head * rank, 0.125f, rng));  // [n_groups, s·d_head, r]
        p.v_up = upload(random_f16(n_groups * s * d_head * rank, 0.125f, rng));
        p.seq_lens = upload(std::vector<int32_t>{100});  // cached tokens of the one sequence
        // RoPE inverse frequencies θ^(-2i/d_head), θ = 10000.
        std::vector<float> inv_freq(d_head / 2);
        for (int32_t i = 0; i < d_head / 2; ++i)
            inv_freq[i] = std::pow(10000.0f, -2.0f * i / d_head);
        p.inv_freq = upload(inv_freq);
        std::vector<uint16_t> out(n_heads * d_head);  // [1, n_heads, d_head] f16
        p.out = upload(out);

        // The plan (kernel, token splits, shared memory) depends on the device; so does the
        // scratch.
        const palu::cuda::LatentAttentionPlan plan = palu::cuda::plan_latent_attention(p);
        p.workspace_bytes = plan.workspace_bytes;
        cuda_check(cudaMalloc(&p.workspace, p.workspace_bytes), "cudaMalloc workspace");
        palu::cuda::latent_attention_decode(p, /*stream=*/nullptr);
        cuda_check(cudaMemcpy(out.data(), p.out, out.size() * 2, cudaMemcpyDeviceToHost),
                   "download");
        double sum_abs = 0.0;
        for (uint16_t h : out) sum_abs += std::fabs(palu::f16_to_f32(h));
        std::printf("kernel %s, %d splits: out [%d, %d] mean |x| %.5f\n",
                    plan.kernel == palu::cuda::LatentKernel::Warp ? "warp" : "block", plan.n_splits,
                    n_heads, d_head, sum_abs / static_cast<double>(out.size()));
    } catch (const palu::Error& e) {
        std::fprintf(stderr, "E %s\n", e.what());
        return e.exit_code();
    }
    return 0;
}
