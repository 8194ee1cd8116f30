// palu calibration: seeded sampling of calibration windows from a token stream (issue 4, stage 1).
// Input: the corpus as one token stream [N] (BOS only at its start when tokenized by palu). Output:
// CalibWindows, n_samples windows of exactly seqlen tokens each, row-major [n_samples, seqlen].
//
// Samplers:
//  * contiguous: window i = tokens[i·L : (i+1)·L] (non-overlapping, from the start of the stream).
//  * random:     the reference's sampler (palu/data_utils.py, over tokens instead of characters):
//                o = uniform integer in [0, N − L − 1], sample = [BOS] + tokens[o : o+L−1]
//                (without a BOS id: tokens[o : o+L]). The generator is palu's own (mt19937_64 +
//                rejection sampling, identical on every platform); it does not reproduce Python's
//                random.seed(3)/randint sequence: use an offsets file for that.
//  * offsets:    like random, with the start offsets given explicitly (read_offsets_file).
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string_view>
#include <vector>

namespace palu::calib {

enum class SamplerKind { Contiguous, Random, Offsets };

/// "contiguous", "random", "offsets".
const char* sampler_name(SamplerKind kind);
std::optional<SamplerKind> parse_sampler(std::string_view s);

struct SamplingParams {
    SamplerKind kind = SamplerKind::Random;
    int64_t n_samples = 0;         ///< windows wanted (> 0); always honoured exactly or refused
    int64_t seqlen = 0;            ///< tokens per window L (>= 2)
    uint64_t seed = 3;             ///< random sampler only
    int32_t bos_id = -1;           ///< random/offsets: prepended to each window when >= 0
    std::vector<int64_t> offsets;  ///< offsets sampler: the first n_samples are used
};

struct CalibWindows {
    int64_t seqlen = 0;
    std::vector<int32_t> tokens;   ///< [n_samples, seqlen] row-major
    std::vector<int64_t> offsets;  ///< start offset of each window in the stream
    int64_t n_samples() const {
        return seqlen > 0 ? static_cast<int64_t>(tokens.size()) / seqlen : 0;
    }
    const int32_t* window(int64_t i) const { return tokens.data() + i * seqlen; }
};

/// Draws the windows. Throws UsageError when n_samples <= 0, seqlen < 2, the stream is too short
/// for the request (contiguous: n_samples·L > N; random: N < L + 1), an offset is out of range
/// (offset + tokens taken > N) or fewer offsets than n_samples are given.
CalibWindows sample_windows(const std::vector<int32_t>& stream, const SamplingParams& params);

/// The random sampler's offsets alone: n uniform integers in [0, max_offset], deterministic in
/// seed.
std::vector<int64_t> random_offsets(int64_t n, int64_t max_offset, uint64_t seed);

/// Reads an offsets file: one non-negative decimal offset per line; blank lines and lines starting
/// with '#' are skipped. Throws IoError (unreadable), FormatError (a bad line, with its number) or
/// FormatError when it holds no offset.
std::vector<int64_t> read_offsets_file(const std::filesystem::path& path);

}  // namespace palu::calib
