// palu core: the read interface of a checkpoint, as lib/model consumes it.
// formats::open_model returns one for an HF directory, a .safetensors, a .gguf or a llama2.c .bin;
// every implementation exposes tensors under Hugging Face names, in the HF layout and RoPE
// convention (rotate-half), converted to f32 on request, one tensor at a time.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "palu/core/dtype.h"
#include "palu/core/model_config.h"
#include "palu/core/tensor.h"

namespace palu {

/// What a checkpoint stores for one tensor (before conversion).
struct StoredTensorInfo {
    std::string name;            // HF name, e.g. model.layers.0.self_attn.k_proj.weight
    std::vector<int64_t> shape;  // HF shape, e.g. [n_out, n_in]
    std::string storage_type;    // "F32", "BF16", "Q4_1", ...
    uint64_t n_bytes = 0;        // bytes occupied in the file
};

/// A tensor's stored bytes when they can be copied into a safetensors file unchanged.
struct RawTensorBytes {
    DType dtype = DType::F32;
    std::vector<int64_t> shape;
    std::span<const uint8_t> bytes;  // valid while the source is alive
};

class WeightSource {
   public:
    virtual ~WeightSource() = default;
    virtual const ModelConfig& config() const = 0;
    /// "hf-safetensors", "safetensors", "gguf", "llama2c".
    virtual std::string format_name() const = 0;
    /// The path the model was opened from.
    virtual std::string path() const = 0;
    /// Every tensor, sorted by name.
    virtual std::vector<StoredTensorInfo> tensors() const = 0;
    virtual bool has_tensor(const std::string& name) const = 0;
    /// The tensor converted to f32, HF layout. Throws FormatError if absent.
    virtual Tensor load_f32(const std::string& name) const = 0;

    /// The folder holding the checkpoint's side files (config.json, tokenizer): the directory
    /// itself, or the folder of a single-file checkpoint.
    virtual std::filesystem::path source_dir() const;
    /// The checkpoint's own config.json text (HF directories); empty for formats without one.
    /// formats::read_palu_checkpoint reads the palu keys from it.
    virtual std::string config_json_text() const { return {}; }
    /// The stored bytes of `name` when they are a plain F32/F16/BF16 safetensors array, for
    /// copying a tensor unchanged; nullopt otherwise (GGUF, llama2.c, computed tensors).
    virtual std::optional<RawTensorBytes> raw_tensor(const std::string& name) const {
        return std::nullopt;
    }
};

}  // namespace palu
