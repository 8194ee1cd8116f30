// palu kernels testing: random latent-attention problems, the CPU reference (double precision) of
// exactly the math of latent_attention.h, and a device runner that uploads a problem, poisons the
// outputs, runs palu::cuda::latent_attention_decode and downloads the results. Used by
// palu-kernels-check, the GoogleTest suite (tests/kernels) and the benchmark.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "palu/kernels/latent_attention.h"

namespace palu::cuda::testing {

/// Shape of one problem (one layer, one decode step).
struct ProblemShape {
    int32_t batch = 1, n_heads = 8, n_kv_heads = 8, group_size = 1, d_head = 128;
    int32_t r_k = 64, r_v = 64, bits_k = 16, bits_v = 16;
    LatentDType dtype = LatentDType::F16;
    int32_t capacity = 256;         ///< multiple of 16; >= max(seq_lens)
    std::vector<int32_t> seq_lens;  ///< [batch]; empty: all = capacity
    bool random_positions = true;  ///< k_pos0 random in [0, 4096), q_pos = k_pos0 + len - 1 + extra
    double rope_theta = 10000.0;
    bool llama3_scaling = false;  ///< Llama-3.1 rope scaling (factor 8, 1/4, 8192)
    std::string describe() const;
};

/// Host copies of every input (raw little-endian f16/bf16 words, packed codes).
struct HostProblem {
    ProblemShape shape;
    std::vector<uint16_t> q;              ///< [batch, n_heads, d_head]
    std::vector<uint8_t> k_data, v_data;  ///< latent caches (layout of latent_attention.h)
    std::vector<uint16_t> k_scales, k_zeros, v_scales,
        v_zeros;                                   ///< f16, [batch, n_groups, capacity]
    std::vector<uint16_t> k_up, v_up;              ///< [n_groups, s·d_head, r]
    std::vector<float> inv_freq;                   ///< [d_head/2]
    std::vector<int32_t> seq_lens, k_pos0, q_pos;  ///< [batch]
};

/// Outputs in double (reference) or as read back from the device.
struct AttentionOutputs {
    std::vector<double> out_latent;  ///< [batch, n_heads, r_v]
    std::vector<double> out;         ///< [batch, n_heads, d_head]
};

/// RoPE inverse frequencies theta^(-2i/d) in float32 (as HF), optionally with Llama-3 scaling.
std::vector<float> rope_inv_freq(int32_t d_head, double theta, bool llama3_scaling);

/// Random problem: q ~ 2·N(0,1), latents ~ N(0,1) (quantized per token and group with the
/// asymmetric min/max quantizer when bits < 16), up-projections ~ N(0, 1/r). Deterministic in seed.
HostProblem make_random_problem(const ProblemShape& shape, uint64_t seed);

/// Dequantized latent value (double) of token t, group g, channel c of a cache.
double latent_value(const HostProblem& pb, bool key, int32_t b, int32_t g, int32_t t, int32_t c);

/// CPU reference in double of the math in latent_attention.h.
AttentionOutputs reference_latent_attention(const HostProblem& pb);

/// The key reconstruction step of the reference: keys of KV head j of sequence b for tokens
/// 0 … len − 1 before RoPE, [len, d_head] row-major (k_j[t] = B_k[g](j) · h_k[g][t]).
using KeyReconstruction =
    std::function<std::vector<double>(const HostProblem& pb, int32_t b, int32_t j, int32_t len)>;

/// The exact step, in double from the f16/bf16 B_k and the dequantized latents.
std::vector<double> reconstruct_keys_exact(const HostProblem& pb, int32_t b, int32_t j,
                                           int32_t len);

/// The reference with the key reconstruction replaced (low_precision_study.h emulates FP8/INT8 on
/// it); reference_latent_attention(pb) is this with reconstruct_keys_exact.
AttentionOutputs reference_latent_attention(const HostProblem& pb,
                                            const KeyReconstruction& reconstruct_keys);

/// Runs the kernel on the device (outputs poisoned with NaN first). `n_splits` 0 = auto; `kernel`
/// forces the block or the warp kernel. Throws palu::CudaError on CUDA failures.
AttentionOutputs run_latent_attention_device(const HostProblem& pb, int32_t n_splits = 0,
                                             LatentKernel kernel = LatentKernel::Auto);

/// True when `kernel` can run `pb` on this device (the plan accepts it).
bool latent_kernel_applies(const HostProblem& pb, LatentKernel kernel);

/// The kernels to validate on `pb`: Block, plus Warp where it applies.
std::vector<LatentKernel> kernels_to_check(const HostProblem& pb);

/// "block", "warp" or "auto".
const char* kernel_name(LatentKernel k);

/// Runs the prefill attention (latent_prefill.h) on the first n_tokens cached tokens of every
/// sequence of `pb` (positions k_pos0[0] + t), queries q_seq [batch, n_tokens, n_heads, d_head] in
/// the problem's dtype; returns out [batch, n_tokens, n_heads, d_head] (NaN-poisoned first).
std::vector<double> run_latent_prefill_device(const HostProblem& pb,
                                              const std::vector<uint16_t>& q_seq, int32_t n_tokens);

/// ‖x − ref‖_F / ‖ref‖_F; +inf when x holds a NaN/inf or the sizes differ.
double rel_frobenius_error(const std::vector<double>& x, const std::vector<double>& ref);

/// Relative Frobenius tolerance of the output dtype: 1e-3 for f16, 1e-2 for bf16.
double tolerance_for(LatentDType dtype);

/// True when a CUDA device is visible.
bool cuda_device_available(std::string* why = nullptr);

}  // namespace palu::cuda::testing
