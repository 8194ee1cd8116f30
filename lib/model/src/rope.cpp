// palu model: RoPE (Su et al. 2021) in the rotate-half layout of Hugging Face transformers.
// inv_freq as transformers' _compute_default/linear/llama3_rope_parameters, in float32.
#include "palu/model/rope.h"

#include <cmath>
#include <vector>

#include "palu/core/error.h"

namespace palu::model {

Rope::Rope(const ModelConfig& config) : d_head_(config.d_head) {
    PALU_CHECK(d_head_ > 0 && d_head_ % 2 == 0, ShapeError,
               "model: rope: head_dim must be even and > 0, got %lld",
               static_cast<long long>(d_head_));
    const int64_t half = d_head_ / 2;
    inv_freq_.resize(static_cast<size_t>(half));
    const float base = static_cast<float>(config.rope_theta);
    for (int64_t i = 0; i < half; ++i) {
        const float expo = static_cast<float>(2 * i) / static_cast<float>(d_head_);
        inv_freq_[static_cast<size_t>(i)] = 1.0f / std::pow(base, expo);
    }
    const RopeScaling& rs = config.rope_scaling;
    if (rs.type == "linear") {
        for (float& f : inv_freq_) f = f / static_cast<float>(rs.factor);
    } else if (rs.type == "llama3") {
        // Llama 3.1: keep high frequencies, divide low ones by `factor`, interpolate in between.
        const float factor = static_cast<float>(rs.factor);
        const float lo = static_cast<float>(rs.low_freq_factor);
        const float hi = static_cast<float>(rs.high_freq_factor);
        const float old_ctx = static_cast<float>(rs.original_max_position_embeddings);
        const float low_freq_wavelen = old_ctx / lo;
        const float high_freq_wavelen = old_ctx / hi;
        for (float& f : inv_freq_) {
            const float wavelen = 2.0f * static_cast<float>(M_PI) / f;
            float g = wavelen > low_freq_wavelen ? f / factor : f;
            if (!(wavelen < high_freq_wavelen) && !(wavelen > low_freq_wavelen)) {
                const float smooth = (old_ctx / wavelen - lo) / (hi - lo);
                g = (1.0f - smooth) * g / factor + smooth * g;
            }
            f = g;
        }
    } else {
        PALU_CHECK(rs.type == "none" || rs.type == "default", UsageError,
                   "model: rope_scaling type '%s' is not supported; expected none|linear|llama3",
                   rs.type.c_str());
    }
}

void Rope::cos_sin(int64_t pos, int64_t i, float& c, float& s) const {
    // transformers: freqs = inv_freq(f32) * position(f32) in float32, then cos/sin of that.
    const float angle = static_cast<float>(pos) * inv_freq_[static_cast<size_t>(i)];
    c = static_cast<float>(std::cos(static_cast<double>(angle)));
    s = static_cast<float>(std::sin(static_cast<double>(angle)));
}

void Rope::apply(float* x, int64_t n_rows, int64_t n_heads, int64_t ld, const int64_t* positions,
                 bool inverse) const {
    const int64_t half = d_head_ / 2;
    for (int64_t r = 0; r < n_rows; ++r) {
        std::vector<float> cs(static_cast<size_t>(2 * half));
        for (int64_t i = 0; i < half; ++i) {
            cos_sin(positions[r], i, cs[static_cast<size_t>(i)], cs[static_cast<size_t>(half + i)]);
            if (inverse) cs[static_cast<size_t>(half + i)] = -cs[static_cast<size_t>(half + i)];
        }
        float* row = x + r * ld;
        for (int64_t h = 0; h < n_heads; ++h) {
            float* v = row + h * d_head_;
            for (int64_t i = 0; i < half; ++i) {
                const float c = cs[static_cast<size_t>(i)], s = cs[static_cast<size_t>(half + i)];
                const float a = v[i], b = v[i + half];
                v[i] = a * c - b * s;
                v[i + half] = b * c + a * s;
            }
        }
    }
}

}  // namespace palu::model
