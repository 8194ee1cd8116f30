// palu calibration tests: window samplers and the offsets file.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <numeric>

#include "palu/calib/sampling.h"
#include "palu/core/error.h"

namespace palu::calib {
namespace {

std::vector<int32_t> iota_stream(int n) {
    std::vector<int32_t> s(static_cast<size_t>(n));
    std::iota(s.begin(), s.end(), 10);
    return s;
}

TEST(Sampling, ContiguousWindows) {
    const auto s = iota_stream(100);
    SamplingParams p{SamplerKind::Contiguous, 3, 30, 0, 1, {}};
    const CalibWindows w = sample_windows(s, p);
    ASSERT_EQ(w.n_samples(), 3);
    EXPECT_EQ(w.offsets, (std::vector<int64_t>{0, 30, 60}));
    EXPECT_EQ(w.window(2)[0], 70);  // no BOS inserted
    EXPECT_EQ(w.window(2)[29], 99);
    p.n_samples = 4;  // 120 > 100 tokens
    EXPECT_THROW(sample_windows(s, p), UsageError);
}

TEST(Sampling, RandomIsSeededAndInRange) {
    const auto s = iota_stream(50);
    SamplingParams p{SamplerKind::Random, 200, 8, 3, 1, {}};
    const CalibWindows a = sample_windows(s, p);
    const CalibWindows b = sample_windows(s, p);
    EXPECT_EQ(a.tokens, b.tokens);
    ASSERT_EQ(a.n_samples(), 200);
    int64_t max_o = 0;
    for (int64_t i = 0; i < a.n_samples(); ++i) {
        const int64_t o = a.offsets[static_cast<size_t>(i)];
        EXPECT_LE(o, 50 - 8 - 1);
        max_o = std::max(max_o, o);
        EXPECT_EQ(a.window(i)[0], 1);                          // BOS
        EXPECT_EQ(a.window(i)[1], s[static_cast<size_t>(o)]);  // then tokens[o : o+L-1]
        EXPECT_EQ(a.window(i)[7], s[static_cast<size_t>(o + 6)]);
    }
    EXPECT_EQ(max_o, 41);  // 200 draws over 42 values reach the top
    p.seed = 4;
    EXPECT_NE(sample_windows(s, p).offsets, a.offsets);
    p.bos_id = -1;  // without BOS: tokens[o : o+L]
    const CalibWindows c = sample_windows(s, p);
    EXPECT_EQ(c.window(0)[0], s[static_cast<size_t>(c.offsets[0])]);
}

TEST(Sampling, ExplicitOffsets) {
    const auto s = iota_stream(20);
    SamplingParams p{SamplerKind::Offsets, 2, 5, 0, 1, {3, 16, 0}};
    const CalibWindows w = sample_windows(s, p);
    EXPECT_EQ(w.tokens, (std::vector<int32_t>{1, 13, 14, 15, 16, 1, 26, 27, 28, 29}));
    p.n_samples = 4;  // only 3 offsets
    EXPECT_THROW(sample_windows(s, p), UsageError);
    p.n_samples = 2;
    p.offsets = {0, 17};  // 17 + 4 > 20
    EXPECT_THROW(sample_windows(s, p), UsageError);
}

TEST(Sampling, BadRequests) {
    const auto s = iota_stream(20);
    EXPECT_THROW(sample_windows(s, {SamplerKind::Random, 0, 5, 0, 1, {}}), UsageError);
    EXPECT_THROW(sample_windows(s, {SamplerKind::Random, 1, 1, 0, 1, {}}), UsageError);
    EXPECT_THROW(sample_windows(s, {SamplerKind::Random, 1, 20, 0, 1, {}}), UsageError);
    EXPECT_THROW(
        sample_windows(s, {SamplerKind::Random, int64_t{1} << 40, int64_t{1} << 30, 0, 1, {}}),
        UsageError);
    EXPECT_EQ(parse_sampler("contiguous"), SamplerKind::Contiguous);
    EXPECT_FALSE(parse_sampler("Random").has_value());
}

TEST(Sampling, OffsetsFile) {
    const auto path = std::filesystem::temp_directory_path() /
                      ("palu_offsets_" + std::to_string(getpid()) + ".txt");
    {
        std::ofstream f(path);
        f << "# header\n7797\n\n  42 \r\n0\n";
    }
    EXPECT_EQ(read_offsets_file(path), (std::vector<int64_t>{7797, 42, 0}));
    {
        std::ofstream f(path);
        f << "# only a comment\n";
    }
    EXPECT_THROW(read_offsets_file(path), FormatError);
    {
        std::ofstream f(path);
        f << "12\n-3\n";
    }
    EXPECT_THROW(read_offsets_file(path), FormatError);
    {
        std::ofstream f(path);
        f << "12x\n";
    }
    EXPECT_THROW(read_offsets_file(path), FormatError);
    std::filesystem::remove(path);
    EXPECT_THROW(read_offsets_file(path), IoError);
}

}  // namespace
}  // namespace palu::calib
