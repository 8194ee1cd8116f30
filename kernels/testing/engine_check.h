// palu kernels testing: the fused latent decode attention checked against the CPU engine
// (lib/model) on a compressed model — the engine's own latent KV cache, the checkpoint's own
// factors, real activations (issue #5: "its validation must end on real compressed checkpoints").
//
// One run: the engine (model::Transformer with model::latent_cache_factory at the chosen latent
// bits) prefills n_batch × n_tokens tokens. Observers capture, per checked layer, the post-norm
// input x of the last position (ObservePoint::KvInput) and the engine's attention output for it
// (ObservePoint::AttnOut = the o_proj input, [n_heads·d_head]). The kernel then gets
//   q       = x·Wqᵀ + bq (pre-RoPE), rounded to f16/bf16,
//   latents = the engine cache's own storage (LatentKvLayerCache::storage): f16 words, or the
//   packed
//             codes with their f16 scales and zeros, byte for byte,
//   k_up/v_up = the layer's U_g factors, rounded to f16/bf16,
// at positions 0 … n_tokens − 1 with the query at n_tokens − 1, and its `out` is compared with the
// engine's attention output. Ranks that are not a multiple of 32 (the kernel's constraint), or that
// differ between groups, are padded with zero latent channels and zero U columns (exact: a padded
// code equals the row's integer zero-point, so it dequantizes to 0; padded U columns are 0).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "latent_attention_reference.h"
#include "palu/model/transformer.h"

namespace palu::cuda::testing {

struct EngineCheckOptions {
    int latent_bits =
        16;  ///< 16 (f16 latents) or 4 / 3 / 2 (asymmetric, one scale per token and group)
    LatentDType dtype =
        LatentDType::F16;  ///< kernel dtype; bits 16 stores f16 latents, so bf16 needs bits < 16
    int64_t n_batch = 1;
    int64_t n_tokens = 256;
    std::vector<int32_t> tokens;  ///< [n_batch · n_tokens]; empty: random ids from `seed`
    std::vector<int64_t> layers;  ///< layers to check; empty: all
    uint64_t seed = 1;
    bool run_device = true;  ///< false: engine vs the double reference only (no GPU needed)
    bool prefill = false;    ///< also check the prefill path (latent_prefill.h) on every position
};

struct LayerCheck {
    int64_t layer = 0;
    ProblemShape shape;  ///< the kernel problem (padded ranks)
    std::string ranks;   ///< the model's ranks, e.g. "k 32,48,32 v 16,16,32"
    std::string
        kernels;  ///< decode kernels run, e.g. "block+warp" (the errors are the worst of them)
    double err_kernel_engine = -1;  ///< ‖kernel out − engine‖_F / ‖engine‖_F (−1: not run)
    double err_kernel_ref =
        -1;  ///< ‖kernel out − reference‖ / ‖reference‖ (the kernel's own error)
    double err_ref_engine =
        0;  ///< ‖reference − engine‖ / ‖engine‖: cost of the f16/bf16 inputs alone
    double err_prefill_engine =
        -1;  ///< prefill: ‖kernel out − engine‖ / ‖engine‖ over all positions (−1: not run)
    double err_prefill_ref =
        -1;  ///< prefill: ‖kernel out − reference‖ / ‖reference‖ (the prefill's own error)
    double err_prefill_ref_engine =
        -1;  ///< prefill: ‖reference − engine‖ / ‖engine‖ (f16/bf16 inputs alone)
};

/// One checked layer: the kernel problem built from the engine, and the engine's attention output.
struct EngineProblem {
    LayerCheck check;
    HostProblem problem;
    std::vector<double>
        engine_out;  ///< [n_batch, n_heads, d_head] engine attention output (f32 values)
    std::vector<uint16_t>
        q_seq;  ///< prefill only: [n_batch, n_tokens, n_heads, d_head] queries in dtype
    std::vector<float> engine_out_seq;  ///< prefill only: [n_batch, n_tokens, n_heads·d_head]
                                        ///< engine attention output
};

/// The CPU half: runs the engine on `engine` (a compressed model; its cache factory is replaced)
/// and builds the kernel problem of every requested layer. Throws UsageError on a dense model, on
/// latent bits the kernel lacks (8, 32), on k/v biases (the kernel has none), and when tokens do
/// not match n_batch · n_tokens.
std::vector<EngineProblem> engine_problems(model::Transformer& engine, const EngineCheckOptions& o);

/// Fills check.err_*: the double reference on the problem vs the engine, and, when `run_device`,
/// the kernel (NaN-poisoned outputs, automatic splits) vs both, and the prefill path vs the engine
/// at every position when the problem has prefill data. Throws CudaError on CUDA failures.
void evaluate(EngineProblem& p, bool run_device);

/// engine_problems + evaluate for every layer.
std::vector<LayerCheck> check_against_engine(model::Transformer& engine,
                                             const EngineCheckOptions& o);

/// Saves problems (with the engine outputs) as one safetensors file, so that the kernel half can
/// run on a GPU machine that has no copy of the checkpoint; `metadata` is stored beside them.
void save_engine_problems(const std::string& path, const std::vector<EngineProblem>& problems,
                          const std::map<std::string, std::string>& metadata);
/// Loads what save_engine_problems wrote (FormatError on a file it did not write).
std::vector<EngineProblem> load_engine_problems(
    const std::string& path, std::map<std::string, std::string>* metadata = nullptr);

/// The kernel's own tolerance (tolerance_for: 1e-3 f16, 1e-2 bf16), for kernel vs reference on the
/// same f16/bf16 inputs.
double engine_tolerance(LatentDType dtype);

/// Pass bound of kernel vs engine: engine_tolerance + the measured reference-vs-engine error (the
/// triangle inequality; see engine_check.cpp for why the second term is not negligible).
double engine_bound(LatentDType dtype, double err_ref_engine);

/// Whether a checked layer passes (decode, and prefill when it ran); `device` false: always true.
bool passes(const LayerCheck& c, bool device);

/// Double reference of the prefill (every position t of every sequence attends to tokens 0 … t),
/// [batch, n_tokens, n_heads, d_head]; the decode reference applied position by position.
std::vector<double> reference_prefill(const HostProblem& pb, const std::vector<uint16_t>& q_seq,
                                      int32_t n_tokens);

}  // namespace palu::cuda::testing
