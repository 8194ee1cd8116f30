// palu core: the read interface of a checkpoint, as lib/model consumes it.
// formats::open_model returns one for an HF directory, a .safetensors, a .gguf or a llama2.c .bin;
// every implementation exposes tensors under Hugging Face names, in the HF layout and RoPE
// convention (rotate-half), converted to f32 on request, one tensor at a time.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "palu/core/model_config.h"
#include "palu/core/tensor.h"

namespace palu {

/// What a checkpoint stores for one tensor (before conversion).
struct StoredTensorInfo {
    std::string name;             // HF name, e.g. model.layers.0.self_attn.k_proj.weight
    std::vector<int64_t> shape;   // HF shape, e.g. [n_out, n_in]
    std::string storage_type;     // "F32", "BF16", "Q4_1", ...
    uint64_t n_bytes = 0;         // bytes occupied in the file
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
};

}  // namespace palu
