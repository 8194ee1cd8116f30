// palu formats: open any supported checkpoint as a WeightSource (HF names, HF layout, f32 on
// demand).
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>

#include "palu/core/weight_source.h"

namespace palu::formats {

/// Opens `path`, which is one of:
///  - a Hugging Face directory: config.json + model.safetensors or model.safetensors.index.json;
///  - a single .safetensors file (its config.json must sit beside it);
///  - a .gguf file (llama architecture);
///  - a llama2.c legacy checkpoint (.bin, 7 x int32 header).
/// Throws IoError when the path does not exist, FormatError when it is not a recognised model.
std::unique_ptr<WeightSource> open_model(const std::filesystem::path& path);

/// How many times open_model has been called in this process (a pipeline run opens its model
/// once; tests check that).
int64_t open_model_count();

// Per-format openers (implemented next to each parser).
std::unique_ptr<WeightSource> open_hf_model(const std::filesystem::path& dir_or_file);
std::unique_ptr<WeightSource> open_gguf_model(const std::filesystem::path& file);
std::unique_ptr<WeightSource> open_llama2c_model(const std::filesystem::path& file);

}  // namespace palu::formats
