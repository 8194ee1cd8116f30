// palu pipeline tests: the Palu reference implementation's parity settings on stories260K, shared
// by the reference-parity test (test_compress.cpp) and the transformers check of the dense export
// (test_dense_export_hf.cpp): 256 × 256 calibration windows at the golden offsets, double label
// shift, rank block 4, kept ratio 0.5, one thread, no progress output.
#pragma once

#include <filesystem>

#include "palu/pipeline/compress.h"

namespace palu::test {

inline pipeline::CompressParams stories260k_reference_params(const std::filesystem::path& model,
                                                             const std::filesystem::path& tokens,
                                                             const std::filesystem::path& offsets) {
    pipeline::CompressParams p;
    p.model_path = model.string();
    p.calib.tokens_path = tokens.string();
    p.calib.sampler = calib::SamplerKind::Offsets;
    p.calib.offsets_path = offsets.string();
    p.calib.n_samples = 256;
    p.calib.seqlen = 256;
    p.calib.fisher_shift = model::LabelShift::Double;
    p.rank.round_to = 4;
    p.rank.ratio = 0.5;
    p.run.n_threads = 1;
    p.run.progress = false;
    return p;
}

}  // namespace palu::test
