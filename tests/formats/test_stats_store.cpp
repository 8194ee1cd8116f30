// palu formats tests: the HDF5 calibration-statistics store (round trip, compression, atomic
// writes, refusal of foreign files) and the model/file fingerprints it records.
#include <gtest/gtest.h>
#include <hdf5.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "llama2c_fixture.h"
#include "palu/core/error.h"
#include "palu/core/sha256.h"
#include "palu/formats/fingerprint.h"
#include "palu/formats/llama2c.h"
#include "palu/formats/model_loader.h"
#include "palu/formats/stats_store.h"
#include "test_data.h"

using namespace palu;
using namespace palu::formats;
namespace fs = std::filesystem;

namespace {

StatsFileInfo sample_info() {
    StatsFileInfo info;
    info.model_fingerprint = "model-aaaa";
    info.data_fingerprint = "data-bbbb";
    info.n_tokens = 65536;
    info.seed = -42;
    info.settings_json = R"({"sampler":"random","seqlen":256,"label_shift":1})";
    return info;
}

std::vector<std::string> files_in(const fs::path& dir) {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename().string());
    std::sort(out.begin(), out.end());
    return out;
}

template <class T>
bool bit_equal(const std::vector<T>& a, const std::vector<double>& b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i) {
        double w = double(a[i]);  // widening is exact, NaN payload kept
        if (std::memcmp(&w, &b[i], sizeof(double)) != 0) return false;
    }
    return true;
}

template <class E>
std::string expect_throw_msg(const std::function<void()>& f) {
    try {
        f();
    } catch (const E& e) {
        return e.what();
    } catch (const std::exception& e) {
        ADD_FAILURE() << "wrong exception type: " << e.what();
        return {};
    }
    ADD_FAILURE() << "no exception";
    return {};
}

void expect_contains(const std::string& msg, const std::string& s) {
    EXPECT_NE(msg.find(s), std::string::npos) << "missing '" << s << "' in: " << msg;
}

}  // namespace

TEST(Hdf5Stats, RoundTrip_ValuesBitIdenticalAndAttributes) {
    auto dir = test::make_temp_dir("stats");
    // A Gram-like f64 matrix with awkward values, an f32 Fisher block, a scalar, an empty and a
    // rank-3 array.
    std::vector<double> gram(64 * 64);
    for (size_t i = 0; i < gram.size(); ++i)
        gram[i] = std::sin(double(i)) * std::exp(double(i % 7) * 50);
    gram[1] = -0.0;
    gram[2] = std::numeric_limits<double>::denorm_min();
    gram[3] = std::numeric_limits<double>::infinity();
    gram[4] = std::numeric_limits<double>::quiet_NaN();
    gram[5] = std::numeric_limits<double>::max();
    std::vector<float> fisher(32 * 64);
    for (size_t i = 0; i < fisher.size(); ++i) fisher[i] = float(i) * 1e-7f + 1e-38f;
    std::vector<double> r3(2 * 3 * 5);
    for (size_t i = 0; i < r3.size(); ++i) r3[i] = double(i) / 3.0;
    {
        StatsWriter w(dir / "stats.h5", sample_info());
        w.write_f64("gram/layer_3", {64, 64}, gram);
        w.write_f32("fisher/k/layer_3", {32, 64}, fisher);
        w.write_f64("n_windows", {}, std::vector<double>{16.0});
        w.write_f64("empty", {0, 4}, std::vector<double>{});
        w.write_f64("deep/a/b/c", {2, 3, 5}, r3);
        EXPECT_FALSE(fs::exists(dir / "stats.h5"));  // nothing at the final path before commit
        w.commit();
    }
    EXPECT_EQ(files_in(dir), std::vector<std::string>{"stats.h5"});

    auto s = StatsStore::open(dir / "stats.h5", {"model-aaaa", "data-bbbb"});
    const auto& info = s.info();
    EXPECT_EQ(info.format_version, 1);
    EXPECT_EQ(info.model_fingerprint, "model-aaaa");
    EXPECT_EQ(info.data_fingerprint, "data-bbbb");
    EXPECT_EQ(info.n_tokens, 65536);
    EXPECT_EQ(info.seed, -42);
    EXPECT_EQ(info.settings_json, sample_info().settings_json);
    EXPECT_EQ(s.list(), (std::vector<std::string>{"deep/a/b/c", "empty", "fisher/k/layer_3",
                                                  "gram/layer_3", "n_windows"}));
    EXPECT_TRUE(s.has("gram/layer_3"));
    EXPECT_FALSE(s.has("gram"));  // groups are not datasets

    auto g = s.read("gram/layer_3");
    EXPECT_EQ(g.shape, (std::vector<int64_t>{64, 64}));
    EXPECT_EQ(g.stored_type, StatsDType::F64);
    EXPECT_TRUE(bit_equal(gram, g.values));
    auto f = s.read("fisher/k/layer_3");
    EXPECT_EQ(f.shape, (std::vector<int64_t>{32, 64}));
    EXPECT_EQ(f.stored_type, StatsDType::F32);
    EXPECT_TRUE(bit_equal(fisher, f.values));
    auto n = s.read("n_windows");
    EXPECT_TRUE(n.shape.empty());
    EXPECT_EQ(n.values, std::vector<double>{16.0});
    auto e = s.read("empty");
    EXPECT_EQ(e.shape, (std::vector<int64_t>{0, 4}));
    EXPECT_TRUE(e.values.empty());
    auto d = s.read("deep/a/b/c");
    EXPECT_EQ(d.shape, (std::vector<int64_t>{2, 3, 5}));
    EXPECT_TRUE(bit_equal(r3, d.values));
    EXPECT_THROW(s.read("gram/layer_4"), FormatError);
}

TEST(Hdf5Stats, Compression_ShuffleAndDeflateOnChunkedDatasets) {
    auto dir = test::make_temp_dir("stats");
    // A smooth, compressible 512x512 f64 matrix (2 MiB raw; chunked by row blocks).
    std::vector<double> m(512 * 512);
    for (size_t i = 0; i < m.size(); ++i) m[i] = double((i / 512) % 8);
    {
        StatsWriter w(dir / "c.h5", sample_info());
        w.write_f64("gram/layer_0", {512, 512}, m);
        w.write_f64("scalar", {}, std::vector<double>{1.0});
        w.commit();
    }
    auto s = StatsStore::open(dir / "c.h5");
    EXPECT_EQ(s.filters("gram/layer_0"), (std::vector<std::string>{"shuffle", "deflate"}));
    EXPECT_TRUE(s.filters("scalar").empty());
    EXPECT_TRUE(bit_equal(m, s.read("gram/layer_0").values));

    // Independently, through the HDF5 API: chunked layout, the filters, and a storage size far
    // below the raw 2 MiB.
    hid_t f = H5Fopen((dir / "c.h5").c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    ASSERT_GE(f, 0);
    hid_t ds = H5Dopen2(f, "gram/layer_0", H5P_DEFAULT);
    hid_t dcpl = H5Dget_create_plist(ds);
    EXPECT_EQ(H5Pget_layout(dcpl), H5D_CHUNKED);
    hsize_t chunk[2] = {0, 0};
    EXPECT_EQ(H5Pget_chunk(dcpl, 2, chunk), 2);
    EXPECT_EQ(chunk[1], hsize_t(512));
    EXPECT_LE(chunk[0] * chunk[1] * 8, hsize_t(1) << 20);
    EXPECT_EQ(512 % chunk[0], 0u);  // balanced: no padded edge chunk
    ASSERT_EQ(H5Pget_nfilters(dcpl), 2);
    unsigned flags = 0, cfg = 0, cd[4] = {};
    size_t n_cd = 4;
    char name[32];
    EXPECT_EQ(H5Pget_filter2(dcpl, 0, &flags, &n_cd, cd, sizeof(name), name, &cfg),
              H5Z_FILTER_SHUFFLE);
    n_cd = 4;
    EXPECT_EQ(H5Pget_filter2(dcpl, 1, &flags, &n_cd, cd, sizeof(name), name, &cfg),
              H5Z_FILTER_DEFLATE);
    EXPECT_EQ(cd[0], 1u);  // default deflate level
    EXPECT_LT(H5Dget_storage_size(ds), hsize_t(512 * 512 * 8 / 20));
    H5Pclose(dcpl);
    H5Dclose(ds);
    H5Fclose(f);
}

TEST(Hdf5Stats, LargeSettingsJson_RoundTrips) {
    auto dir = test::make_temp_dir("stats");
    auto info = sample_info();
    info.settings_json = "{\"x\":\"" + std::string(200000, 'y') + "\"}";
    {
        StatsWriter w(dir / "big.h5", info);
        w.commit();
    }
    EXPECT_EQ(StatsStore::open(dir / "big.h5").info().settings_json, info.settings_json);
}

TEST(Hdf5Stats, RefusesOtherFormatVersion) {
    auto dir = test::make_temp_dir("stats");
    {
        StatsWriter w(dir / "v2.h5", sample_info());
        w.commit();
    }
    // Rewrite format_version as a future palu would.
    hid_t f = H5Fopen((dir / "v2.h5").c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    ASSERT_GE(f, 0);
    hid_t a = H5Aopen(f, "format_version", H5P_DEFAULT);
    int32_t v = 2;
    ASSERT_GE(H5Awrite(a, H5T_NATIVE_INT32, &v), 0);
    H5Aclose(a);
    H5Fclose(f);
    auto msg = expect_throw_msg<FormatError>([&] { StatsStore::open(dir / "v2.h5"); });
    expect_contains(msg, "v2.h5");
    expect_contains(msg, "stats file format_version 2, this palu reads 1");
    expect_contains(msg, "hint: re-run palu-calibrate");
}

TEST(Hdf5Stats, RefusesOtherModelAndOtherData) {
    auto dir = test::make_temp_dir("stats");
    {
        StatsWriter w(dir / "s.h5", sample_info());
        w.commit();
    }
    auto msg = expect_throw_msg<UsageError>([&] {
        StatsStore::open(dir / "s.h5", {"model-cccc", ""});
    });
    expect_contains(msg, "expected model fingerprint model-cccc, got model-aaaa");
    expect_contains(msg, "--stats belongs to another model");
    msg = expect_throw_msg<UsageError>([&] {
        StatsStore::open(dir / "s.h5", {"model-aaaa", "data-x"});
    });
    expect_contains(msg, "expected data fingerprint data-x, got data-bbbb");
    EXPECT_NO_THROW(StatsStore::open(dir / "s.h5", {"model-aaaa", ""}));
}

TEST(Hdf5Stats, NotHdf5_MissingAndForeignFiles) {
    auto dir = test::make_temp_dir("stats");
    {
        std::ofstream(dir / "text.h5") << "this is not HDF5\n";
        std::ofstream(dir / "empty.h5");
    }
    for (const char* n : {"text.h5", "empty.h5"}) {
        auto msg = expect_throw_msg<FormatError>([&] { StatsStore::open(dir / n); });
        expect_contains(msg, n);
        expect_contains(msg, "not an HDF5 file");
    }
    EXPECT_THROW(StatsStore::open(dir / "missing.h5"), IoError);
    EXPECT_THROW(StatsStore::open(dir), IoError);  // a directory
    // A valid HDF5 file that palu did not write.
    hid_t f = H5Fcreate((dir / "foreign.h5").c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    ASSERT_GE(f, 0);
    H5Fclose(f);
    auto msg = expect_throw_msg<FormatError>([&] { StatsStore::open(dir / "foreign.h5"); });
    expect_contains(msg, "not a palu stats file");
    expect_contains(msg, "'format_version' is missing");
}

TEST(Hdf5Stats, UnwritableOutputDir_IoErrorAndNothingLeft) {
    auto dir = test::make_temp_dir("stats");
    std::ofstream(dir / "plainfile") << "x";
    auto msg = expect_throw_msg<IoError>(
        [&] { StatsWriter w(dir / "plainfile" / "s.h5", sample_info()); });
    expect_contains(msg, "s.h5");
    expect_contains(msg, "is not a directory");
    msg = expect_throw_msg<IoError>(
        [&] { StatsWriter w(dir / "no" / "such" / "s.h5", sample_info()); });
    expect_contains(msg, "does not exist");
    EXPECT_EQ(files_in(dir), std::vector<std::string>{"plainfile"});
    if (::geteuid() != 0) {  // root writes anywhere
        fs::create_directories(dir / "ro");
        ::chmod((dir / "ro").c_str(), 0500);
        msg = expect_throw_msg<IoError>([&] { StatsWriter w(dir / "ro" / "s.h5", sample_info()); });
        expect_contains(msg, "is the directory writable");
        EXPECT_TRUE(files_in(dir / "ro").empty());
        ::chmod((dir / "ro").c_str(), 0700);
    }
}

TEST(Hdf5Stats, ErrorBeforeCommit_LeavesNothingBehind) {
    auto dir = test::make_temp_dir("stats");
    fs::path tmp;
    try {
        StatsWriter w(dir / "s.h5", sample_info());
        tmp = w.temp_path();
        EXPECT_TRUE(fs::exists(tmp));
        w.write_f64("gram/layer_0", {2, 2}, std::vector<double>{1, 2, 3, 4});
        w.write_f64("gram/layer_1", {2, 2}, std::vector<double>{1, 2, 3});  // ShapeError
        FAIL() << "expected ShapeError";
    } catch (const ShapeError& e) {
        expect_contains(e.what(), "gram/layer_1");
        expect_contains(e.what(), "expected 4 values, got 3");
    }
    EXPECT_FALSE(tmp.empty());
    EXPECT_TRUE(files_in(dir).empty());
    // An existing file at the path survives a failed rewrite untouched.
    {
        StatsWriter w(dir / "s.h5", sample_info());
        w.write_f64("x", {1}, std::vector<double>{7});
        w.commit();
    }
    auto before = sha256_file_hex(dir / "s.h5");
    {
        StatsWriter w(dir / "s.h5", sample_info());
        w.write_f64("y", {1}, std::vector<double>{8});
    }  // destroyed without commit
    EXPECT_EQ(sha256_file_hex(dir / "s.h5"), before);
    EXPECT_EQ(files_in(dir), std::vector<std::string>{"s.h5"});
    // A committed rewrite replaces it.
    {
        StatsWriter w(dir / "s.h5", sample_info());
        w.write_f64("y", {1}, std::vector<double>{8});
        w.commit();
    }
    EXPECT_EQ(StatsStore::open(dir / "s.h5").list(), std::vector<std::string>{"y"});
}

TEST(Hdf5Stats, BadNamesShapesAndMisuse) {
    auto dir = test::make_temp_dir("stats");
    StatsWriter w(dir / "s.h5", sample_info());
    for (const char* bad : {"", "/abs", "a//b", "a/../b", "a/./b", "trailing/", "sp ace", "é"})
        EXPECT_THROW(w.write_f64(bad, {1}, std::vector<double>{1}), UsageError) << bad;
    w.write_f64("ok.name-1/x_2", {1}, std::vector<double>{1});
    EXPECT_THROW(w.write_f64("ok.name-1/x_2", {1}, std::vector<double>{1}), UsageError);
    EXPECT_THROW(w.write_f64("neg", {-1, 2}, std::vector<double>{}), ShapeError);
    EXPECT_THROW(w.write_f32("count", {3}, std::vector<float>{1, 2}), ShapeError);
    w.commit();
    EXPECT_THROW(w.write_f64("late", {1}, std::vector<double>{1}), UsageError);
    EXPECT_THROW(w.commit(), UsageError);
    EXPECT_EQ(StatsStore::open(dir / "s.h5").list(), std::vector<std::string>{"ok.name-1/x_2"});
}

// ---- fingerprints -----------------------------------------------------------------------------

TEST(Hdf5Fingerprint, ModelFingerprint_StableAndSensitiveToKvAndConfig) {
    auto fx = test::make_llama2c_fixture(test::tiny_llama2c_header(true), 5);
    auto a = Llama2cModel::from_bytes(fx.bytes, "a.bin");
    auto b = Llama2cModel::from_bytes(fx.bytes, "b.bin");  // same bytes, other name
    std::string fa = fingerprint_model(*a);
    EXPECT_EQ(fa.size(), 64u);
    EXPECT_EQ(fa, fingerprint_model(*b));

    // One k_proj value of layer 1 changed (wk section: layer 1 starts 8*16 floats in).
    auto bytes = fx.bytes;
    const auto& L = a->layout();
    for (const auto& s : L.sections)
        if (s.name == "wk") bytes[s.offset + (8 * 16 + 5) * 4] ^= 0x01;
    EXPECT_NE(fingerprint_model(*Llama2cModel::from_bytes(bytes, "k.bin")), fa);
    // One v_proj value.
    bytes = fx.bytes;
    for (const auto& s : L.sections)
        if (s.name == "wv") bytes[s.offset + 3 * 4] ^= 0x80;
    EXPECT_NE(fingerprint_model(*Llama2cModel::from_bytes(bytes, "v.bin")), fa);
    // A norm weight.
    bytes = fx.bytes;
    for (const auto& s : L.sections)
        if (s.name == "rms_ffn") bytes[s.offset + 2] ^= 0x10;
    EXPECT_NE(fingerprint_model(*Llama2cModel::from_bytes(bytes, "n.bin")), fa);
    // Config: seq_len differs (max_position_embeddings), same weights otherwise.
    auto h2 = test::tiny_llama2c_header(true);
    h2.seq_len = 16;
    EXPECT_NE(fingerprint_model(
                  *Llama2cModel::from_bytes(test::make_llama2c_fixture(h2, 5).bytes, "s.bin")),
              fa);
    // Untied: an extra tensor.
    EXPECT_NE(fingerprint_model(*Llama2cModel::from_bytes(
                  test::make_llama2c_fixture(test::tiny_llama2c_header(false), 5).bytes, "u.bin")),
              fa);
}

TEST(Hdf5Fingerprint, FileFingerprint_IsSha256OfBytes_Data) {
    PALU_REQUIRE_DATA(bin, "models/stories260K/stories260K.bin");
    // DATA.md publishes this checksum for the original file.
    EXPECT_EQ(fingerprint_file(bin),
              "b0a507e7ad0f626624f17112325e66691f9076d622e1d3274d103d00299f2696");
    auto m = open_llama2c_model(bin);
    EXPECT_EQ(fingerprint_model(*m), fingerprint_model(*open_llama2c_model(bin)));
}
