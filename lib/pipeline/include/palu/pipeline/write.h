// palu pipeline: the write stage — the factors of the decompose stage into a compressed
// checkpoint through its owner, formats/palu_checkpoint.h.
#pragma once

#include <filesystem>
#include <vector>

#include "palu/core/weight_source.h"
#include "palu/formats/palu_checkpoint.h"
#include "palu/pipeline/decompose.h"

namespace palu::pipeline {

/// The writer's views of `layers` (valid while `layers` lives).
std::vector<formats::PaluLayerView> factor_views(const std::vector<CompressedLayer>& layers);

/// formats::write_palu_checkpoint over `layers`. Throws as it does.
void write_compressed_checkpoint(const WeightSource& src,
                                 const std::vector<CompressedLayer>& layers,
                                 const formats::PaluBlock& block,
                                 const std::filesystem::path& out_dir,
                                 const formats::PaluWriteOptions& options = {});

}  // namespace palu::pipeline
