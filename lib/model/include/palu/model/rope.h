// palu model: rotary position embedding in the Hugging Face rotate-half convention.
// inv_freq follows transformers' ROPE_INIT_FUNCTIONS (default, linear, llama3), computed in float32
// as transformers does, so that angles match the reference bit for bit at long positions.
#pragma once

#include <cstdint>
#include <vector>

#include "palu/core/model_config.h"

namespace palu::model {

class Rope {
   public:
    explicit Rope(const ModelConfig& config);
    int64_t d_head() const { return d_head_; }
    /// inv_freq [d_head/2] after scaling.
    const std::vector<float>& inv_freq() const { return inv_freq_; }
    /// Rotates `x` in place: x is [n_rows, n_heads * d_head] row-major with row stride `ld`,
    /// row r at position positions[r]. y[i] = x[i] cos - x[i+d/2] sin, y[i+d/2] = x[i+d/2] cos +
    /// x[i] sin. inverse = true applies the transpose rotation (used by the backward pass).
    void apply(float* x, int64_t n_rows, int64_t n_heads, int64_t ld, const int64_t* positions,
               bool inverse = false) const;
    /// cos/sin of position `pos` for frequency i (f32, as transformers computes them).
    void cos_sin(int64_t pos, int64_t i, float& c, float& s) const;

   private:
    int64_t d_head_;
    std::vector<float> inv_freq_;  // [d_head/2]
};

}  // namespace palu::model
