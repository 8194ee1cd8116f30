// palu model: a WeightSource with seeded random weights for a given architecture — for benchmarks
// (same shapes and FLOPs as a real model) and tests that need no checkpoint file.
#pragma once

#include <cstdint>
#include <memory>

#include "palu/core/weight_source.h"

namespace palu::model {

/// Weights ~ N(0, 1/n_in) (fan-in scaling), norms ~ 1, embeddings ~ N(0, 1). Generated on demand
/// from (seed, tensor name), so nothing is held in memory beyond the requested tensor.
std::unique_ptr<WeightSource> make_random_weights(const ModelConfig& config, uint64_t seed);

/// SmolLM2-135M's architecture (30 layers, d_model 576, 9/3 heads, head_dim 64, d_ff 1536,
/// vocab 49152, rope_theta 100000, tied embeddings).
ModelConfig smollm2_135m_config();

}  // namespace palu::model
