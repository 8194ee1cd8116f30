// palu formats: Hugging Face config.json -> palu::ModelConfig for Llama-family models
// (llama, mistral, qwen2 and their palu-compressed variants palullama, palumistral, paluqwen2).
#pragma once

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "palu/core/dtype.h"
#include "palu/core/model_config.h"

namespace palu::formats {

/// A parsed config.json: the palu ModelConfig plus the raw JSON (later stages read keys such as
/// `head_wise_ranks` and the `palu` block from it).
struct HfConfig {
    ModelConfig model;
    nlohmann::json raw;
    std::string model_type;        // as written in the file, e.g. "paluqwen2"
    bool palu_compressed = false;  // model_type starts with "palu"
};

/// model_type values accepted (base architectures first, then the palu-compressed ones).
const std::vector<std::string>& supported_model_types();

/// Parses config.json text. `source` names the file in errors. Throws FormatError for invalid JSON,
/// unknown model_type (listing the supported ones), missing keys or wrong JSON types (naming the
/// key), unsupported rope_scaling or hidden_act; ShapeError from ModelConfig::validate.
HfConfig parse_hf_config(std::string_view text, const std::string& source);
/// Same for an already-parsed object.
HfConfig parse_hf_config(const nlohmann::json& j, const std::string& source);
/// Reads and parses a config.json file (IoError when unreadable).
HfConfig read_hf_config(const std::filesystem::path& config_json);
/// The raw JSON of a config.json file (duplicate keys rejected), for keys ModelConfig has no
/// field for.
nlohmann::json read_hf_config_json(const std::filesystem::path& config_json);

/// Hugging Face names of a base architecture and of its palu-compressed variant (the reference's
/// spelling, palu-reference.md §8).
struct HfArchNames {
    const char* base_class;  ///< transformers class of the base model, e.g. "LlamaForCausalLM"
    const char* palu_type;   ///< model_type of a compressed checkpoint, e.g. "palullama"
    const char* palu_class;  ///< its architectures entry, e.g. "PaluLlamaForCausalLM"
};
/// Throws UsageError for architectures other than llama, mistral and qwen2.
HfArchNames hf_arch_names(const std::string& architecture);

/// config.json for a ModelConfig (GGUF / llama2.c sources, exports): the HF keys of the base
/// architecture (model_type, architectures, hidden_size, ..., rope_scaling, tie_word_embeddings,
/// attention_bias, bos/eos ids, torch_dtype), readable by parse_hf_config and by transformers.
/// Throws UsageError for bias or rope-scaling settings config.json cannot express.
nlohmann::json hf_config_json(const ModelConfig& config, const std::string& torch_dtype);

/// transformers' torch_dtype spelling: "float32", "float16", "bfloat16".
const char* torch_dtype_name(DType dt);

}  // namespace palu::formats
