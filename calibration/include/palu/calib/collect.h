// palu calibration: statistics collection over calibration windows (issue 4, stage 1).
//  * collect_gram:   per layer G_l = Σ_{windows, positions} x xᵀ of the k/v_proj input x ∈ R^d
//                    (the post input_layernorm hidden state), an unnormalised sum accumulated in
//                    f64 (reference §3.2; k_proj and v_proj share it). Read through the engine's
//                    ObservePoint::KvInput observer hook of the ordinary forward.
//  * collect_fisher: per k_proj / v_proj Σ_{windows} (∂L_w/∂W)² elementwise, f64 accumulation,
//                    L_w = the window's mean next-token NLL (single shift) or the reference's
//                    double shift (reference §4.1).
// Memory: the Gram sums are n_layers · d² f64 (SmolLM2-135M: 30·576²·8 B = 80 MB; Llama-2-7B:
// 4.3 GB), the Fisher sums 2 · n_layers · d_kv · d f64; the engine holds one window's activations.
#pragma once

#include <cstdint>
#include <vector>

#include "palu/calib/sampling.h"
#include "palu/model/transformer.h"

namespace palu::calib {

struct GramStats {
    int64_t d = 0;                          ///< d_model
    int64_t n_tokens = 0;                   ///< rows summed (windows · seqlen)
    std::vector<std::vector<double>> gram;  ///< n_layers x [d, d] row-major, symmetric
};

struct FisherStats {
    int64_t n_out = 0;                   ///< n_kv_heads · d_head
    int64_t d = 0;                       ///< d_model
    int64_t n_samples = 0;               ///< windows summed
    double mean_loss = 0.0;              ///< mean over windows of the window loss (nats)
    std::vector<std::vector<double>> k;  ///< n_layers x [n_out, d]: Σ (∂L/∂W_k)²
    std::vector<std::vector<double>> v;  ///< n_layers x [n_out, d]: Σ (∂L/∂W_v)²
};

struct CollectOptions {
    int64_t n_batch = 8;   ///< windows per forward (Gram)
    bool progress = true;  ///< progress lines with ETA on stderr
};

/// Runs every window through `engine` (forward, last position's logits only) with a KvInput
/// observer. The engine's observers are cleared on return (it must have none registered).
GramStats collect_gram(model::Transformer& engine, const CalibWindows& windows,
                       const CollectOptions& opts = {});

/// One backward per window. Throws UsageError when seqlen <= shift.
FisherStats collect_fisher(const model::Transformer& engine, const CalibWindows& windows,
                           model::LabelShift shift, const CollectOptions& opts = {});

}  // namespace palu::calib
