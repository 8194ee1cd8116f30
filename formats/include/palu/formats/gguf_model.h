// palu formats: a GGUF file of the `llama` architecture seen as a palu model: metadata ->
// ModelConfig, GGUF tensor names -> Hugging Face names, and llama.cpp's RoPE row permutation of
// attn_q / attn_k undone so weights are in the HF rotate-half convention (docs/formats.md, GGUF).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "palu/core/model_config.h"
#include "palu/core/weight_source.h"
#include "palu/formats/gguf.h"

namespace palu::formats {

/// HF name of a GGUF tensor name of the llama architecture ("blk.3.attn_q.weight" ->
/// "model.layers.3.self_attn.q_proj.weight"), nullopt for names without an HF counterpart.
std::optional<std::string> gguf_to_hf_name(const std::string& gguf_name);

/// open_gguf_model (model_loader.h) on an already parsed file (e.g. GgufFile::open_memory).
std::unique_ptr<WeightSource> open_gguf_model(std::unique_ptr<GgufFile> file);

/// ModelConfig from the metadata (and tensor list) of a llama-architecture GGUF file.
/// Throws FormatError naming the file and key for another architecture, a missing or mistyped
/// key, or an unsupported rope scaling; ShapeError for inconsistent dimensions.
ModelConfig gguf_model_config(const GgufFile& file);

/// llama.cpp's converter stores q/k rows of each head interleaved for its RoPE:
///   gguf_row(h, i, j) = h*d_head + 2*i + j  holds  hf_row(h, i, j) = h*d_head + j*d_head/2 + i
/// for head h < n_heads, i < d_head/2, j in {0, 1}. `src`/`dst` are [n_rows, n_cols] row-major
/// with n_rows = n_heads * d_head (d_head even; ShapeError otherwise). n_cols = 1 for a bias.
void unpermute_rope_rows(const float* src, float* dst, int64_t n_rows, int64_t n_cols,
                         int64_t n_heads);
/// The inverse: HF rows -> llama.cpp's GGUF row order (what convert_hf_to_gguf.py writes).
void permute_rope_rows(const float* src, float* dst, int64_t n_rows, int64_t n_cols,
                       int64_t n_heads);

}  // namespace palu::formats
