// palu model: a WeightSource with seeded random weights for a given architecture — the one random
// model generator of the project: benchmarks (same shapes and FLOPs as a real model), the tests'
// in-memory synthetic models (tests/model/synthetic_model.h) and the tiny checkpoints they write
// to disk (tests/support/tiny_model.h) all take their tensors from it.
#pragma once

#include <cstdint>
#include <memory>

#include "palu/core/weight_source.h"

namespace palu::model {

/// Distributions of make_random_weights. Linear weights [n_out, n_in] ~ N(0, gain² / n_in) (fan-in
/// scaling, one gain per kind of projection), RMSNorm weights ~ 1 + N(0, norm_std²), biases
/// ~ N(0, bias_std²). A standard deviation of 0 for the embedding or lm_head means fan-in scaling
/// 1/√d_model.
struct RandomWeightsOptions {
    uint64_t seed = 0;
    double embed_std = 1.0;      ///< model.embed_tokens.weight [n_vocab, d_model]
    double lm_head_std = 0.0;    ///< lm_head.weight [n_vocab, d_model] (untied models)
    double norm_std = 0.05;      ///< input/post_attention_layernorm, model.norm
    double bias_std = 0.02;      ///< q/k/v/o_proj and mlp biases (when the config has them)
    double qk_gain = 1.0;        ///< q_proj, k_proj
    double v_gain = 1.0;         ///< v_proj
    double residual_gain = 1.0;  ///< o_proj, down_proj (the residual branches)
    double mlp_gain = 1.0;       ///< gate_proj, up_proj
};

/// Every tensor of a dense HF checkpoint of `config` (as formats::expected_hf_tensors lists them,
/// lm_head.weight only when the embeddings are untied; for an MLA config q_proj,
/// kv_a_proj_with_mqa, kv_a_layernorm, kv_b_proj and o_proj in place of q/k/v/o_proj), f32. Each
/// tensor is generated on demand from (seed, tensor name) alone, so nothing is held in memory
/// beyond the requested tensor and the values do not depend on which tensors are loaded or in which
/// order. Throws ShapeError when the config is invalid (ModelConfig::validate); load_f32 throws
/// FormatError for an unknown name.
std::unique_ptr<WeightSource> make_random_weights(const ModelConfig& config,
                                                  const RandomWeightsOptions& options);

/// make_random_weights with the default options and `seed`: embeddings ~ N(0, 1), norms
/// ~ 1 + N(0, 0.05²), linear weights (lm_head included) ~ N(0, 1/n_in), biases ~ N(0, 0.02²).
std::unique_ptr<WeightSource> make_random_weights(const ModelConfig& config, uint64_t seed);

/// SmolLM2-135M's architecture (30 layers, d_model 576, 9/3 heads, head_dim 64, d_ff 1536,
/// vocab 49152, rope_theta 100000, tied embeddings).
ModelConfig smollm2_135m_config();

}  // namespace palu::model
