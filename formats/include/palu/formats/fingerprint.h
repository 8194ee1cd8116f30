// palu formats: fingerprints that tie calibration statistics to the model and data they came from
// (stored in the HDF5 stats file, checked by StatsStore::open).
#pragma once

#include <filesystem>
#include <string>

#include "palu/core/weight_source.h"

namespace palu::formats {

/// A cheap, sound identity of a model: lower-case hex SHA-256 over a canonical text made of
///  - a version tag ("palu-model-fingerprint-v1");
///  - every ModelConfig field (architecture, dimensions, heads, vocab, positions, eps, rope_theta,
///    rope_scaling, tie/bias flags, bos/eos), doubles printed with 17 significant digits;
///  - for every tensor, sorted by name: name, shape and storage type;
///  - the SHA-256 of the f32 values (little-endian bytes, HF layout) of every k_proj / v_proj
///    weight and bias and of every 1-D tensor (norms, biases), sorted by name.
/// Hashing every tensor's bytes would cost a full read (and dequantization) of the model; the k/v
/// projections are exactly the weights the stats are used to compress and the norms scale their
/// inputs, so a model whose stats would differ in the part palu uses changes the fingerprint.
/// A change confined to other weights of same name/shape/type (e.g. a fine-tune that froze k/v and
/// the norms) is not detected. The same weights in different containers (HF dir vs llama2.c .bin)
/// give different fingerprints when their tensor lists or storage types differ.
/// Cost: reads d_model * d_kv * 2 * n_layers values (SmolLM2-135M: 6.6 M floats).
std::string fingerprint_model(const WeightSource& model);

/// Lower-case hex SHA-256 of a file's bytes (streamed). Throws IoError.
std::string fingerprint_file(const std::filesystem::path& path);

}  // namespace palu::formats
