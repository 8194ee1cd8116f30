// palu pipeline tests: the Palu reference implementation's parity settings on stories260K, shared by
// the reference-parity test (test_compress.cpp) and the transformers check of the dense export
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
    p.calib.calib_tokens = tokens.string();
    p.calib.calib_sampler = "offsets";
    p.calib.calib_offsets = offsets.string();
    p.calib.calib_samples = 256;
    p.calib.calib_seqlen = 256;
    p.calib.fisher_shift = "double";
    p.round_to = 4;
    p.ratio = 0.5;
    p.n_threads = 1;
    p.progress = false;
    return p;
}

}  // namespace palu::test
