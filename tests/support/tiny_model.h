// palu tests: a tiny random Llama-family checkpoint (config.json + safetensors) generated on the
// fly, so that tests never need committed model files (STYLE.md "Fixture models are generated").
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

#include "palu/core/dtype.h"
#include "palu/core/model_config.h"
#include "palu/model/random_weights.h"

namespace palu::test {

struct TinyConfig {
    int64_t n_layers = 2;
    int64_t d_model = 64;
    int64_t n_heads = 4;
    int64_t n_kv_heads = 2;
    int64_t d_head = 16;
    int64_t d_ff = 128;
    int64_t n_vocab = 96;
    bool qkv_bias = false;             // true: model_type qwen2 (q/k/v biases, no o_proj bias)
    bool tie_word_embeddings = false;  // true: no lm_head.weight is written
    uint64_t seed = 1234;
    DType dtype = DType::F32;      // F32, F16 or BF16 storage
    uint64_t max_shard_bytes = 0;  // 0: one model.safetensors; else sharded + index
    double rope_theta = 10000.0;
    double rms_norm_eps = 1e-5;
};

/// The distributions of the tiny checkpoints (palu::model::make_random_weights, seeded by
/// cfg.seed): linear weights and the embeddings / lm_head ~ N(0, 1/n_in), norms ~ 1 + N(0, 0.1²),
/// biases ~ N(0, 0.02²).
model::RandomWeightsOptions tiny_weight_options(const TinyConfig& cfg);

/// Writes config.json and the safetensors weights of a random model into `dir` (created), the
/// weights drawn as tiny_weight_options(cfg) says and stored in cfg.dtype.
/// Returns the ModelConfig that reading config.json back must give.
ModelConfig write_tiny_checkpoint(const std::filesystem::path& dir, const TinyConfig& cfg = {});

}  // namespace palu::test
