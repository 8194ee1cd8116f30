// palu calibration: calibration window samplers (see sampling.h).
#include "palu/calib/sampling.h"

#include <fstream>
#include <random>
#include <string>

#include "palu/core/checked.h"
#include "palu/core/error.h"

namespace palu::calib {

const char* sampler_name(SamplerKind kind) {
    switch (kind) {
        case SamplerKind::Contiguous: return "contiguous";
        case SamplerKind::Random: return "random";
        case SamplerKind::Offsets: return "offsets";
    }
    return "?";
}

std::optional<SamplerKind> parse_sampler(std::string_view s) {
    if (s == "contiguous") return SamplerKind::Contiguous;
    if (s == "random") return SamplerKind::Random;
    if (s == "offsets") return SamplerKind::Offsets;
    return std::nullopt;
}

std::vector<int64_t> random_offsets(int64_t n, int64_t max_offset, uint64_t seed) {
    PALU_CHECK(n >= 0 && max_offset >= 0, UsageError,
               "calibrate: bad random sampling request (n %lld, max offset %lld)",
               static_cast<long long>(n), static_cast<long long>(max_offset));
    std::mt19937_64 gen(seed);
    // Rejection sampling on the raw 64-bit output: uniform and identical on every standard library
    // (std::uniform_int_distribution is implementation-defined).
    const uint64_t range = static_cast<uint64_t>(max_offset) + 1;
    const uint64_t limit = UINT64_MAX - UINT64_MAX % range;
    std::vector<int64_t> out(static_cast<size_t>(n));
    for (auto& o : out) {
        uint64_t x = gen();
        while (x >= limit) x = gen();
        o = static_cast<int64_t>(x % range);
    }
    return out;
}

CalibWindows sample_windows(const std::vector<int32_t>& stream, const SamplingParams& p) {
    const int64_t n_stream = static_cast<int64_t>(stream.size());
    const int64_t L = p.seqlen;
    PALU_CHECK(p.n_samples > 0, UsageError, "calibrate: --samples must be > 0, got %lld",
               static_cast<long long>(p.n_samples));
    PALU_CHECK(L >= 2, UsageError, "calibrate: --seqlen must be >= 2, got %lld",
               static_cast<long long>(L));
    const auto n_total =
        mul_no_overflow(static_cast<uint64_t>(p.n_samples), static_cast<uint64_t>(L));
    PALU_CHECK(n_total && *n_total <= (uint64_t{1} << 40), UsageError,
               "calibrate: %lld windows of %lld tokens is too many tokens to hold",
               static_cast<long long>(p.n_samples), static_cast<long long>(L));
    CalibWindows w;
    w.seqlen = L;
    w.tokens.reserve(static_cast<size_t>(p.n_samples * L));
    if (p.kind == SamplerKind::Contiguous) {
        PALU_CHECK(
            p.n_samples <= n_stream / L, UsageError,
            "calibrate: %lld contiguous windows of %lld tokens need %lld tokens, the data has "
            "%lld; hint: lower --samples or --seqlen, or use --sampler random",
            static_cast<long long>(p.n_samples), static_cast<long long>(L),
            static_cast<long long>(p.n_samples * L), static_cast<long long>(n_stream));
        for (int64_t i = 0; i < p.n_samples; ++i) {
            w.offsets.push_back(i * L);
            w.tokens.insert(w.tokens.end(), stream.begin() + i * L, stream.begin() + (i + 1) * L);
        }
        return w;
    }
    const bool bos = p.bos_id >= 0;
    const int64_t n_take = bos ? L - 1 : L;  // tokens taken from the stream per window
    std::vector<int64_t> offsets;
    if (p.kind == SamplerKind::Random) {
        PALU_CHECK(n_stream >= L + 1, UsageError,
                   "calibrate: random windows of %lld tokens need at least %lld tokens, the data "
                   "has %lld",
                   static_cast<long long>(L), static_cast<long long>(L + 1),
                   static_cast<long long>(n_stream));
        offsets = random_offsets(p.n_samples, n_stream - L - 1, p.seed);
    } else {
        PALU_CHECK(static_cast<int64_t>(p.offsets.size()) >= p.n_samples, UsageError,
                   "calibrate: %lld samples requested but only %zu offsets given",
                   static_cast<long long>(p.n_samples), p.offsets.size());
        offsets.assign(p.offsets.begin(), p.offsets.begin() + p.n_samples);
    }
    for (const int64_t o : offsets) {
        PALU_CHECK(o >= 0 && o + n_take <= n_stream, UsageError,
                   "calibrate: window offset %lld + %lld tokens is outside the data (%lld tokens)",
                   static_cast<long long>(o), static_cast<long long>(n_take),
                   static_cast<long long>(n_stream));
        w.offsets.push_back(o);
        if (bos) w.tokens.push_back(p.bos_id);
        w.tokens.insert(w.tokens.end(), stream.begin() + o, stream.begin() + o + n_take);
    }
    return w;
}

std::vector<int64_t> read_offsets_file(const std::filesystem::path& path) {
    std::ifstream in(path);
    PALU_CHECK(in.good(), IoError, "calibrate: %s: cannot open the offsets file",
               path.string().c_str());
    std::vector<int64_t> out;
    std::string line;
    int64_t line_no = 0;
    while (std::getline(in, line)) {
        ++line_no;
        const auto b = line.find_first_not_of(" \t\r");
        if (b == std::string::npos || line[b] == '#') continue;
        const auto e = line.find_last_not_of(" \t\r");
        const std::string tok = line.substr(b, e - b + 1);
        size_t used = 0;
        long long v = -1;
        try {
            v = std::stoll(tok, &used);
        } catch (const std::exception&) {
            used = 0;
        }
        PALU_CHECK(used == tok.size() && v >= 0, FormatError,
                   "calibrate: %s:%lld: expected one non-negative offset per line, got '%s'",
                   path.string().c_str(), static_cast<long long>(line_no), tok.c_str());
        out.push_back(v);
    }
    PALU_CHECK(!out.empty(), FormatError, "calibrate: %s: no offsets in the file",
               path.string().c_str());
    return out;
}

}  // namespace palu::calib
