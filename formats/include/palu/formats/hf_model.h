// palu formats: a Hugging Face model directory (config.json + safetensors, single or sharded) as
// a WeightSource, with the tensor set checked against the config before any weight is read.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "palu/core/weight_source.h"
#include "palu/formats/hf_config.h"
#include "palu/formats/safetensors.h"

namespace palu::formats {

/// A tensor a config implies, with the config keys that determine its shape (for messages).
struct ExpectedTensor {
    std::string name;
    std::vector<int64_t> shape;
    std::string because;  // e.g. "num_key_value_heads=8, head_dim=128, hidden_size=4096"
};

/// Every HF tensor a dense (uncompressed) checkpoint of `c` holds, sorted by name. `lm_head.weight`
/// is included only when `with_lm_head`.
std::vector<ExpectedTensor> expected_hf_tensors(const ModelConfig& c, bool with_lm_head);

class HfModel final : public WeightSource {
   public:
    /// `dir_or_file`: an HF directory (config.json + model.safetensors or
    /// model.safetensors.index.json), a .safetensors file or an index .json with config.json
    /// beside it. Checks that every tensor the config implies exists with the implied shape
    /// (`lm_head.weight` optional when tied; compressed palu checkpoints may replace
    /// k_proj/v_proj); extra tensors are allowed. Throws IoError, FormatError or ShapeError.
    static std::unique_ptr<HfModel> open(const std::filesystem::path& dir_or_file);

    const ModelConfig& config() const override { return cfg_.model; }
    std::string format_name() const override { return "hf-safetensors"; }
    std::string path() const override { return path_; }
    std::vector<StoredTensorInfo> tensors() const override;
    bool has_tensor(const std::string& name) const override;
    Tensor load_f32(const std::string& name) const override;
    std::filesystem::path source_dir() const override { return config_path_.parent_path(); }
    std::string config_json_text() const override { return cfg_.raw.dump(); }
    /// Every stored tensor, in its stored dtype (safetensors arrays are copied as they are).
    std::optional<RawTensorBytes> raw_tensor(const std::string& name) const override;

    const HfConfig& hf_config() const { return cfg_; }
    /// The raw config.json (keys ModelConfig has no field for: head_wise_ranks, palu, ...).
    const nlohmann::json& raw_config() const { return cfg_.raw; }
    const SafetensorsCheckpoint& checkpoint() const { return ckpt_; }
    const std::filesystem::path& config_path() const { return config_path_; }

   private:
    HfModel(std::string path, std::filesystem::path config_path, HfConfig cfg,
            SafetensorsCheckpoint ckpt);
    std::string path_;
    std::filesystem::path config_path_;
    HfConfig cfg_;
    SafetensorsCheckpoint ckpt_;
};

}  // namespace palu::formats
