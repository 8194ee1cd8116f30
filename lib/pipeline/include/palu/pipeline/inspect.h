// palu pipeline: the `inspect` stage — what a checkpoint is and what its KV cache costs.
// Input: any model path formats::open_model accepts. Output: InspectResult (+ JSON / text table).
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "palu/core/model_config.h"

namespace palu::pipeline {

struct InspectParams {
    std::string model_path;
    /// Context lengths (tokens, batch 1) the KV-cache size is reported for.
    std::vector<int64_t> contexts = {4096, 32768, 131072};
};

struct InspectResult {
    std::string path;
    std::string format;  // hf-safetensors | gguf | llama2c
    ModelConfig config;
    int64_t n_params = 0;         // elements of every stored tensor
    int64_t n_params_unique = 0;  // lm_head not counted when tied (stored copy or not)
    int64_t n_tensors = 0;
    int64_t file_bytes = 0;                        // tensor bytes as stored
    std::map<std::string, int64_t> storage_types;  // type -> tensor count
    std::string kv_dtype;  // the dtype a runtime caches K/V in for this checkpoint
    int64_t kv_dtype_bytes = 0;
    bool kv_from_quantized = false;  // weights quantized: F16 assumed (llama.cpp's default)
    int64_t kv_bytes_per_token = 0;  // all layers, K + V, batch 1
    std::vector<std::pair<int64_t, int64_t>> kv_bytes_at;  // (context, bytes)
};

/// Opens the model (headers only; no weights are converted) and summarises it.
/// Throws IoError / FormatError / ShapeError from the readers.
InspectResult run_inspect(const InspectParams& params);

nlohmann::json to_json(const InspectResult& r);
/// Human-readable report (stdout of palu-inspect).
std::string to_text(const InspectResult& r);

}  // namespace palu::pipeline
