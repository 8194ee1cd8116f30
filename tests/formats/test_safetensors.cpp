// palu formats tests: safetensors round trips (all dtypes, single and sharded, metadata,
// alignment), the parameterized corruption suite (error type + key substrings of the message), and
// the real stories260K files from ../shared/data.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <numeric>
#include <random>
#include <vector>

#include "palu/core/error.h"
#include "palu/formats/safetensors.h"
#include "test_data.h"

using namespace palu;
using namespace palu::formats;
using ::testing::HasSubstr;
namespace fs = std::filesystem;

namespace {

std::vector<uint8_t> read_file(const fs::path& p) {
    std::ifstream f(p, std::ios::binary);
    return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), {});
}

void write_file(const fs::path& p, const std::vector<uint8_t>& b) {
    std::ofstream f(p, std::ios::binary | std::ios::trunc);
    f.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

// A raw safetensors file: u64 header length, header text, then `n_data` bytes of data.
std::vector<uint8_t> raw_file(const std::string& header, size_t n_data,
                              uint64_t header_len_field = ~0ull) {
    std::vector<uint8_t> b(8 + header.size() + n_data);
    uint64_t n = header_len_field == ~0ull ? header.size() : header_len_field;
    for (int i = 0; i < 8; ++i) b[i] = static_cast<uint8_t>(n >> (8 * i));
    if (!header.empty()) std::memcpy(b.data() + 8, header.data(), header.size());
    for (size_t i = 0; i < n_data; ++i) b[8 + header.size() + i] = static_cast<uint8_t>(i * 7 + 3);
    return b;
}

// Random bytes that are valid values for `t` (finite floats, 0/1 bools).
std::vector<uint8_t> sample_bytes(DType t, size_t numel, std::mt19937& rng) {
    std::vector<uint8_t> b(numel * dtype_size(t));
    std::uniform_real_distribution<float> u(-4.f, 4.f);
    for (size_t i = 0; i < numel; ++i) {
        float v = u(rng);
        uint8_t* p = b.data() + i * dtype_size(t);
        switch (t) {
            case DType::F64: {
                double d = v;
                std::memcpy(p, &d, 8);
                break;
            }
            case DType::F32: std::memcpy(p, &v, 4); break;
            case DType::F16: {
                uint16_t h = f32_to_f16(v);
                std::memcpy(p, &h, 2);
                break;
            }
            case DType::BF16: {
                uint16_t h = f32_to_bf16(v);
                std::memcpy(p, &h, 2);
                break;
            }
            case DType::I64: {
                int64_t x = static_cast<int64_t>(v * 1e9);
                std::memcpy(p, &x, 8);
                break;
            }
            case DType::I32: {
                int32_t x = static_cast<int32_t>(v * 1000);
                std::memcpy(p, &x, 4);
                break;
            }
            case DType::I16: {
                int16_t x = static_cast<int16_t>(v * 100);
                std::memcpy(p, &x, 2);
                break;
            }
            case DType::I8: {
                int8_t x = static_cast<int8_t>(v * 30);
                std::memcpy(p, &x, 1);
                break;
            }
            case DType::U8: *p = static_cast<uint8_t>((v + 4) * 30); break;
            case DType::BOOL: *p = v > 0 ? 1 : 0; break;
        }
    }
    return b;
}

// Reference conversion of one element, independent of convert_to_f32.
float ref_value(DType t, const uint8_t* p) {
    switch (t) {
        case DType::F64: {
            double d;
            std::memcpy(&d, p, 8);
            return static_cast<float>(d);
        }
        case DType::F32: {
            float f;
            std::memcpy(&f, p, 4);
            return f;
        }
        case DType::F16: {
            uint16_t h;
            std::memcpy(&h, p, 2);
            return f16_to_f32(h);
        }
        case DType::BF16: {
            uint16_t h;
            std::memcpy(&h, p, 2);
            return bf16_to_f32(h);
        }
        case DType::I64: {
            int64_t x;
            std::memcpy(&x, p, 8);
            return static_cast<float>(x);
        }
        case DType::I32: {
            int32_t x;
            std::memcpy(&x, p, 4);
            return static_cast<float>(x);
        }
        case DType::I16: {
            int16_t x;
            std::memcpy(&x, p, 2);
            return static_cast<float>(x);
        }
        case DType::I8: {
            int8_t x;
            std::memcpy(&x, p, 1);
            return static_cast<float>(x);
        }
        case DType::U8: return static_cast<float>(*p);
        case DType::BOOL: return static_cast<float>(*p);
    }
    return NAN;
}

const DType kAllDtypes[] = {DType::F64, DType::F32, DType::F16, DType::BF16, DType::I64,
                            DType::I32, DType::I16, DType::I8,  DType::U8,   DType::BOOL};

struct Owned {
    std::vector<std::vector<uint8_t>> bytes;
    std::vector<TensorToWrite> tensors;
};

// One tensor per dtype with odd sizes (so that offsets are not naturally aligned).
Owned all_dtype_tensors(uint32_t seed) {
    Owned o;
    std::mt19937 rng(seed);
    o.bytes.reserve(std::size(kAllDtypes));
    int i = 0;
    for (DType t : kAllDtypes) {
        std::vector<int64_t> shape = {3 + i, 5};
        o.bytes.push_back(sample_bytes(t, static_cast<size_t>(shape[0] * shape[1]), rng));
        o.tensors.push_back({std::string("t.") + dtype_name(t), t, shape, o.bytes.back()});
        ++i;
    }
    return o;
}

void expect_same_as_written(const Owned& o, const SafetensorsCheckpoint& ck) {
    ASSERT_EQ(ck.tensors().size(), o.tensors.size());
    for (const auto& w : o.tensors) {
        const auto* e = ck.find(w.name);
        ASSERT_NE(e, nullptr) << w.name;
        EXPECT_EQ(e->info->dtype, w.dtype) << w.name;
        EXPECT_EQ(e->info->shape, w.shape) << w.name;
        auto got = ck.bytes(w.name);
        ASSERT_EQ(got.size(), w.bytes.size()) << w.name;
        EXPECT_EQ(0, std::memcmp(got.data(), w.bytes.data(), got.size())) << w.name;
        Tensor f = ck.load_f32(w.name);
        ASSERT_EQ(f.shape(), w.shape);
        for (int64_t k = 0; k < f.numel(); ++k)
            ASSERT_EQ(f.data()[k], ref_value(w.dtype, w.bytes.data() + k * dtype_size(w.dtype)))
                << w.name << " element " << k;
    }
}

}  // namespace

TEST(SafetensorsRoundTrip, AllDtypes_SingleFile_BytesAndValuesIdentical) {
    auto dir = test::make_temp_dir("st_rt");
    Owned o = all_dtype_tensors(1);
    std::map<std::string, std::string> meta = {{"format", "pt"}, {"palu.note", "round trip ü"}};
    auto written = write_safetensors(dir, o.tensors, meta);
    ASSERT_EQ(written.size(), 1u);
    EXPECT_EQ(written[0], dir / "model.safetensors");
    auto ck = SafetensorsCheckpoint::open(dir);
    EXPECT_FALSE(ck.sharded());
    EXPECT_EQ(ck.metadata(), meta);
    expect_same_as_written(o, ck);
    // Sorted by name, data buffer 8-byte aligned, header padded with spaces only.
    const auto& f = ck.shards().at(0);
    EXPECT_EQ(f.data_offset() % 8, 0u);
    for (size_t i = 1; i < f.tensors().size(); ++i)
        EXPECT_LT(f.tensors()[i - 1].name, f.tensors()[i].name);
    auto raw = read_file(dir / "model.safetensors");
    std::string header(raw.begin() + 8, raw.begin() + static_cast<long>(f.data_offset()));
    auto last = header.find_last_not_of(' ');
    EXPECT_EQ(header[last], '}');
    EXPECT_LT(header.size() - last - 1, 8u);
    // Nothing but the checkpoint in the directory (no temporary files left).
    EXPECT_EQ(std::distance(fs::directory_iterator(dir), fs::directory_iterator()), 1);
}

TEST(SafetensorsRoundTrip, Sharded_IndexAndShardsConsistent) {
    auto dir = test::make_temp_dir("st_shard");
    Owned o = all_dtype_tensors(2);
    auto written = write_safetensors(dir, o.tensors, {{"k", "v"}}, /*max_shard_bytes=*/200);
    ASSERT_GE(written.size(), 4u);  // several shards + index
    EXPECT_EQ(written.back(), dir / "model.safetensors.index.json");
    const size_t n_shards = written.size() - 1;
    for (size_t i = 0; i < n_shards; ++i) {
        char want[64];
        std::snprintf(want, sizeof want, "model-%05zu-of-%05zu.safetensors", i + 1, n_shards);
        EXPECT_EQ(written[i].filename().string(), want);
        auto f = SafetensorsFile::open(written[i]);
        EXPECT_EQ(f.data_offset() % 8, 0u);
        EXPECT_EQ(f.metadata().at("k"), "v");
    }
    std::ifstream idx_in(written.back());
    auto idx = nlohmann::json::parse(idx_in);
    uint64_t total = 0;
    for (const auto& w : o.tensors) total += w.bytes.size();
    EXPECT_EQ(idx["metadata"]["total_size"].get<uint64_t>(), total);
    EXPECT_EQ(idx["weight_map"].size(), o.tensors.size());

    auto ck = SafetensorsCheckpoint::open(dir);
    EXPECT_TRUE(ck.sharded());
    EXPECT_EQ(ck.shards().size(), n_shards);
    expect_same_as_written(o, ck);
    // Opening through the index file directly gives the same tensors.
    auto ck2 = SafetensorsCheckpoint::open(written.back());
    EXPECT_EQ(ck2.tensors().size(), o.tensors.size());
}

TEST(SafetensorsRoundTrip, ScalarAndEmptyTensors) {
    auto dir = test::make_temp_dir("st_scalar");
    float pi = 3.25f;
    std::vector<uint8_t> scalar(4), empty;
    std::memcpy(scalar.data(), &pi, 4);
    write_safetensors(
        dir, {{"a_empty", DType::F32, {0, 4}, empty}, {"b_scalar", DType::F32, {}, scalar}});
    auto f = SafetensorsFile::open(dir / "model.safetensors");
    EXPECT_EQ(f.info("a_empty").n_bytes(), 0u);
    EXPECT_EQ(f.load_f32("a_empty").numel(), 0);
    Tensor s = f.load_f32("b_scalar");
    EXPECT_TRUE(s.shape().empty());
    ASSERT_EQ(s.numel(), 1);
    EXPECT_EQ(s.data()[0], pi);
}

TEST(SafetensorsRoundTrip, FromMemoryMatchesOpen) {
    auto dir = test::make_temp_dir("st_mem");
    Owned o = all_dtype_tensors(3);
    write_safetensors(dir, o.tensors);
    auto a = SafetensorsFile::open(dir / "model.safetensors");
    auto b = SafetensorsFile::from_memory(read_file(dir / "model.safetensors"), "mem");
    ASSERT_EQ(a.tensors().size(), b.tensors().size());
    for (size_t i = 0; i < a.tensors().size(); ++i) {
        EXPECT_EQ(a.tensors()[i].name, b.tensors()[i].name);
        auto x = a.bytes(a.tensors()[i]);
        auto y = b.bytes(b.tensors()[i]);
        ASSERT_EQ(x.size(), y.size());
        EXPECT_EQ(0, std::memcmp(x.data(), y.data(), x.size()));
    }
}

TEST(SafetensorsRead, AcceptsHeaderWithoutPaddingAndTrailingWhitespace) {
    // Files written by other tools need not be aligned; whitespace after the object is valid.
    auto dir = test::make_temp_dir("st_unaligned");
    std::string h = R"({"x":{"dtype":"I8","shape":[3],"data_offsets":[0,3]}}  )";
    write_file(dir / "x.safetensors", raw_file(h, 3));
    auto f = SafetensorsFile::open(dir / "x.safetensors");
    EXPECT_EQ(f.data_offset(), 8 + h.size());
    EXPECT_EQ(f.load_f32("x").data()[1], 10.f);  // raw_file data: i*7+3
}

TEST(SafetensorsRead, MissingTensor_FormatErrorNamesIt) {
    auto dir = test::make_temp_dir("st_missing");
    Owned o = all_dtype_tensors(4);
    write_safetensors(dir, o.tensors);
    auto f = SafetensorsFile::open(dir / "model.safetensors");
    EXPECT_EQ(f.find("nope"), nullptr);
    try {
        f.load_f32("nope");
        FAIL() << "expected FormatError";
    } catch (const FormatError& e) {
        EXPECT_THAT(e.what(), HasSubstr("no tensor named 'nope'"));
    }
}

TEST(SafetensorsRead, NonexistentFileOrDirectory_IoError) {
    auto dir = test::make_temp_dir("st_io");
    EXPECT_THROW(SafetensorsFile::open(dir / "absent.safetensors"), IoError);
    EXPECT_THROW(SafetensorsFile::open(dir), IoError);
    EXPECT_THROW(SafetensorsCheckpoint::open(dir), IoError);  // empty directory: no model files
}

TEST(SafetensorsWriter, BadInput_UsageErrorAndNothingWritten) {
    auto dir = test::make_temp_dir("st_wbad");
    std::vector<uint8_t> b(16);
    EXPECT_THROW(write_safetensors(dir, {{"a", DType::F32, {4}, b}, {"a", DType::F32, {4}, b}}),
                 UsageError);
    EXPECT_THROW(write_safetensors(dir, {{"a", DType::F32, {3}, b}}), UsageError);
    EXPECT_THROW(write_safetensors(dir, {{"__metadata__", DType::F32, {4}, b}}), UsageError);
    EXPECT_EQ(std::distance(fs::directory_iterator(dir), fs::directory_iterator()), 0);
}

TEST(SafetensorsWriter, RenameFailure_LeavesNoTemporaryFiles) {
    // The final name is taken by a non-empty directory: rename fails after the temporary file was
    // fully written; the temporary must be removed.
    auto dir = test::make_temp_dir("st_wfail");
    fs::create_directories(dir / "model.safetensors" / "occupied");
    std::vector<uint8_t> b(16);
    EXPECT_THROW(write_safetensors(dir, {{"a", DType::F32, {4}, b}}), IoError);
    std::vector<std::string> names;
    for (auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
    EXPECT_EQ(names, std::vector<std::string>{"model.safetensors"});
}

// ---- corruption suite -------------------------------------------------------------------------

enum class Corruption {
    HeaderTooSmall,
    HeaderTooLarge,
    HeaderPastEof,
    NotJson,
    NotObject,
    DuplicateName,
    UnknownDtype,
    MissingField,
    NegativeDim,
    ShapeOverflow,
    BadMetadata,
    SizeMismatch,
    OffsetOverlap,
    OffsetGap,
    OffsetPastEnd,
    IncompleteBuffer,
    Truncated,
    ShardMissing,
    ShardTensorMissing,
    TensorInTwoShards,
    IndexNotJson,
    DeepNesting,
};

struct CorruptCase {
    fs::path path;                      // what to open
    std::vector<std::string> contains;  // substrings of the error message
};

namespace {

const char* corruption_name(Corruption c) {
    switch (c) {
        // clang-format off (a macro list clang-format 14 does not format stably)
#define C(x) \
    case Corruption::x: return #x;
        C(HeaderTooSmall)
        C(HeaderTooLarge)
        C(HeaderPastEof)
        C(NotJson)
        C(NotObject)
        C(DuplicateName)
        C(UnknownDtype)
        C(MissingField)
        C(NegativeDim)
        C(ShapeOverflow)
        C(BadMetadata)
        C(SizeMismatch)
        C(OffsetOverlap)
        C(OffsetGap)
        C(OffsetPastEnd)
        C(IncompleteBuffer)
        C(Truncated)
        C(ShardMissing)
        C(ShardTensorMissing)
        C(TensorInTwoShards)
        C(IndexNotJson)
        C(DeepNesting)
#undef C
        // clang-format on
    }
    return "?";
}

std::string entry(const std::string& name, const std::string& dtype, const std::string& shape,
                  uint64_t b, uint64_t e) {
    return "\"" + name + "\":{\"dtype\":\"" + dtype + "\",\"shape\":" + shape +
           ",\"data_offsets\":[" + std::to_string(b) + "," + std::to_string(e) + "]}";
}

// A valid two-shard checkpoint whose shard files and index tests then damage.
fs::path write_sharded(const fs::path& dir) {
    static std::vector<uint8_t> b(64, 1);
    write_safetensors(
        dir, {{"a", DType::F32, {16}, b}, {"b", DType::F32, {16}, b}, {"c", DType::F32, {16}, b}},
        {}, 130);
    return dir;
}

CorruptCase make_case(Corruption c, const fs::path& dir) {
    const fs::path f = dir / "bad.safetensors";
    auto file = [&](const std::string& header, size_t n_data) {
        write_file(f, raw_file(header, n_data));
        return f;
    };
    const std::string w16 = entry("w", "F32", "[2,2]", 0, 16);
    switch (c) {
        case Corruption::HeaderTooSmall:
            write_file(f, {1, 2, 3, 4, 5});
            return {f, {"HeaderTooSmall", "expected >= 8 bytes, got 5"}};
        case Corruption::HeaderTooLarge:
            write_file(f, raw_file("{}", 0, 200'000'000));
            return {f, {"HeaderTooLarge", "got 200000000"}};
        case Corruption::HeaderPastEof:
            write_file(f, raw_file("{}", 0, 50));
            return {f,
                    {"InvalidHeaderLength", "expected <= 2 bytes, got 50", "incomplete download?"}};
        case Corruption::NotJson:
            return {file("{\"w\": {\"dtype\": \"F32\", ", 0), {"InvalidHeader", "not valid JSON"}};
        case Corruption::NotObject:
            return {file("[1,2,3]", 0), {"InvalidHeaderStart", "expected '{'"}};
        case Corruption::DuplicateName:
            return {file("{" + w16 + "," + entry("w", "F32", "[4]", 0, 16) + "}", 16),
                    {"duplicate key 'w'", "DuplicateTensorName"}};
        case Corruption::UnknownDtype:
            return {file("{" + entry("w", "F8_E4M3", "[16]", 0, 16) + "}", 16),
                    {"tensor 'w'", "unknown dtype", "got 'F8_E4M3'", "BF16", "(UnknownDtype)"}};
        case Corruption::MissingField:
            return {file(R"({"w":{"dtype":"F32","shape":[4]}})", 16),
                    {"tensor 'w' has no 'data_offsets'"}};
        case Corruption::NegativeDim:
            return {file("{" + entry("w", "F32", "[-1,4]", 0, 16) + "}", 16),
                    {"tensor 'w'", "[-1,4]", "expected dims in [0, 2^63), got -1"}};
        case Corruption::ShapeOverflow:
            return {file("{" + entry("w", "F32", "[4611686018427387904,8]", 0, 16) + "}", 16),
                    {"tensor 'w'", "ValidationOverflow"}};
        case Corruption::BadMetadata:
            return {file("{\"__metadata__\":{\"k\":1}," + w16 + "}", 16),
                    {"__metadata__ key 'k'", "expected a string, got number"}};
        case Corruption::SizeMismatch:
            return {file("{" + entry("w", "BF16", "[4,4]", 0, 16) + "}", 16),
                    {"tensor 'w' data_offsets [0,16) = 16 bytes, but shape [4,4] BF16 needs 32",
                     "(TensorInvalidInfo)"}};
        case Corruption::OffsetOverlap:
            return {file("{" + w16 + "," + entry("x", "F32", "[4]", 8, 24) + "}", 24),
                    {"tensor 'x' data_offsets [8,24) overlap tensor 'w' [0,16)",
                     "expected begin 16, got 8", "InvalidOffset"}};
        case Corruption::OffsetGap:
            return {file("{" + w16 + "," + entry("x", "F32", "[4]", 20, 36) + "}", 36),
                    {"tensor 'x'", "gap after tensor 'w'", "expected begin 16, got 20"}};
        case Corruption::OffsetPastEnd:
            return {file("{" + w16 + "," + entry("x", "F32", "[4]", 16, 32) + "}", 20),
                    {"tensor 'x' data_offsets [16,32) past the end of the data buffer",
                     "expected end <= 20, got 32", "MetadataIncompleteBuffer"}};
        case Corruption::IncompleteBuffer:
            return {file("{" + w16 + "}", 24),
                    {"tensors cover 16 bytes", "expected 16, got 24", "incomplete download?",
                     "(MetadataIncompleteBuffer)"}};
        case Corruption::Truncated: {
            write_sharded(dir);
            auto shard = dir / "model-00002-of-00002.safetensors";
            fs::resize_file(shard, fs::file_size(shard) - 10);
            return {dir,
                    {"model-00002-of-00002.safetensors", "tensor 'c'", "expected end <= 54, got 64",
                     "MetadataIncompleteBuffer"}};
        }
        case Corruption::ShardMissing:
            write_sharded(dir);
            fs::remove(dir / "model-00001-of-00002.safetensors");
            return {dir, {"shard 'model-00001-of-00002.safetensors'", "missing", "(ShardMissing)"}};
        case Corruption::ShardTensorMissing: {
            write_sharded(dir);
            auto idx = nlohmann::json::parse(std::ifstream(dir / "model.safetensors.index.json"));
            idx["weight_map"]["d"] = "model-00002-of-00002.safetensors";
            std::ofstream(dir / "model.safetensors.index.json") << idx.dump();
            return {dir,
                    {"tensor 'd' is listed in the index but missing from shard "
                     "'model-00002-of-00002.safetensors'"}};
        }
        case Corruption::TensorInTwoShards: {
            write_sharded(dir);
            static std::vector<uint8_t> b(64, 2);
            write_safetensors_file(dir / "model-00002-of-00002.safetensors",
                                   {{"a", DType::F32, {16}, b}, {"c", DType::F32, {16}, b}});
            return {dir, {"tensor 'a' appears in two shards"}};
        }
        case Corruption::IndexNotJson:
            write_sharded(dir);
            std::ofstream(dir / "model.safetensors.index.json") << "{\"weight_map\": {";
            return {dir, {"model.safetensors.index.json", "not valid JSON"}};
        case Corruption::DeepNesting:
            return {file("{\"w\":" + std::string(100000, '[') + std::string(100000, ']') + "}", 0),
                    {"nests arrays/objects too deeply", "expected <= 64 levels, got 100001"}};
    }
    return {};
}

}  // namespace

class CorruptionSafetensors : public ::testing::TestWithParam<Corruption> {};

TEST_P(CorruptionSafetensors, Rejected_FormatErrorWithContext) {
    auto dir = test::make_temp_dir(std::string("st_corrupt_") + corruption_name(GetParam()));
    CorruptCase cc = make_case(GetParam(), dir);
    try {
        SafetensorsCheckpoint::open(cc.path);
        FAIL() << "expected FormatError";
    } catch (const FormatError& e) {
        std::string msg = e.what();
        EXPECT_EQ(msg.rfind("formats: ", 0), 0u) << msg;
        for (const auto& s : cc.contains) EXPECT_THAT(msg, HasSubstr(s));
    }
    // The in-memory parser agrees on single files (the fuzz entry point).
    if (!fs::is_directory(cc.path)) {
        try {
            SafetensorsFile::from_memory(read_file(cc.path), "mem");
            FAIL() << "expected FormatError from from_memory";
        } catch (const FormatError& e) {
            for (const auto& s : cc.contains) EXPECT_THAT(e.what(), HasSubstr(s));
        }
    }
}

INSTANTIATE_TEST_SUITE_P(
    Corruption, CorruptionSafetensors,
    ::testing::Values(Corruption::HeaderTooSmall, Corruption::HeaderTooLarge,
                      Corruption::HeaderPastEof, Corruption::NotJson, Corruption::NotObject,
                      Corruption::DuplicateName, Corruption::UnknownDtype, Corruption::MissingField,
                      Corruption::NegativeDim, Corruption::ShapeOverflow, Corruption::BadMetadata,
                      Corruption::SizeMismatch, Corruption::OffsetOverlap, Corruption::OffsetGap,
                      Corruption::OffsetPastEnd, Corruption::IncompleteBuffer,
                      Corruption::Truncated, Corruption::ShardMissing,
                      Corruption::ShardTensorMissing, Corruption::TensorInTwoShards,
                      Corruption::IndexNotJson, Corruption::DeepNesting),
    [](const ::testing::TestParamInfo<Corruption>& info) { return corruption_name(info.param); });

// ---- real files (../shared/data) --------------------------------------------------------------

TEST(SafetensorsData, GoldenFileOpensWithExpectedTensors) {
    PALU_REQUIRE_DATA(golden, "golden/stories260K.hf-transformers.safetensors");
    auto f = SafetensorsFile::open(golden);
    const auto& logits = f.info("logits_first128");
    EXPECT_EQ(logits.dtype, DType::F32);
    EXPECT_EQ(logits.shape, (std::vector<int64_t>{128, 512}));
    EXPECT_EQ(f.info("tokens").dtype, DType::I32);
    EXPECT_EQ(f.info("tokens").shape, (std::vector<int64_t>{32768}));
    EXPECT_EQ(f.info("nll_windows").dtype, DType::F64);
    EXPECT_EQ(f.info("gram.0").shape, (std::vector<int64_t>{64, 64}));
    EXPECT_EQ(f.info("fisher_k.4").shape, (std::vector<int64_t>{32, 64}));
    Tensor tokens = f.load_f32("tokens");
    EXPECT_EQ(tokens.data()[0], 1.0f);  // each paragraph starts with BOS=1
    // DATA.md: mean of nll_windows = 1.42681 nats.
    Tensor nll = f.load_f32("nll_windows");
    double mean = std::accumulate(nll.vec().begin(), nll.vec().end(), 0.0) / nll.numel();
    EXPECT_NEAR(mean, 1.42681, 5e-5);
}
