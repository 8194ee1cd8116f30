// palu formats tests: GGUF reader, dequantization, writer round trips, corruption suite, llama
// metadata -> ModelConfig, GGUF -> HF names and RoPE un-permutation, open_gguf_model, and the
// cross-check against gguf-py on the real SmolLM2-135M-Instruct Q4_1 file.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <set>

#include "gguf_test_util.h"
#include "palu/core/dtype.h"
#include "palu/core/error.h"
#include "palu/core/sha256.h"
#include "palu/formats/gguf.h"
#include "palu/formats/gguf_model.h"
#include "palu/formats/gguf_writer.h"
#include "palu/formats/model_loader.h"
#include "test_data.h"

using namespace palu;
using namespace palu::formats;
using palu::test::GgufBytes;
using ::testing::HasSubstr;

namespace {

std::unique_ptr<GgufFile> parse(const std::vector<uint8_t>& bytes,
                                const std::string& name = "t.gguf") {
    return GgufFile::open_memory(bytes.data(), bytes.size(), name);
}

std::vector<float> random_values(size_t n, uint32_t seed, float scale = 1.0f) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> nd(0.0f, scale);
    std::vector<float> v(n);
    for (auto& x : v) x = nd(rng);
    return v;
}

uint32_t f32_bits(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    return u;
}

std::vector<uint8_t> from_hex(const std::string& s) {
    std::vector<uint8_t> out(s.size() / 2);
    for (size_t i = 0; i < out.size(); ++i)
        out[i] = uint8_t(std::stoul(s.substr(2 * i, 2), nullptr, 16));
    return out;
}

void put_f16(uint8_t* p, float f) {
    const uint16_t h = f32_to_f16(f);
    std::memcpy(p, &h, 2);
}

}  // namespace

// ---- type table -------------------------------------------------------------------------------

TEST(GgufTypes, BlockAndTypeSizes) {
    struct Row {
        GgmlType t;
        int64_t block;
        uint64_t size;
        const char* name;
        bool deq;
    };
    for (auto r : std::vector<Row>{{GgmlType::F32, 1, 4, "F32", true},
                                   {GgmlType::F16, 1, 2, "F16", true},
                                   {GgmlType::BF16, 1, 2, "BF16", true},
                                   {GgmlType::Q4_0, 32, 18, "Q4_0", true},
                                   {GgmlType::Q4_1, 32, 20, "Q4_1", true},
                                   {GgmlType::Q5_0, 32, 22, "Q5_0", true},
                                   {GgmlType::Q5_1, 32, 24, "Q5_1", true},
                                   {GgmlType::Q8_0, 32, 34, "Q8_0", true},
                                   {GgmlType::Q2_K, 256, 84, "Q2_K", false},
                                   {GgmlType::Q4_K, 256, 144, "Q4_K", true},
                                   {GgmlType::Q5_K, 256, 176, "Q5_K", true},
                                   {GgmlType::Q6_K, 256, 210, "Q6_K", true}}) {
        EXPECT_EQ(ggml_block_size(r.t), r.block) << r.name;
        EXPECT_EQ(ggml_type_size(r.t), r.size) << r.name;
        EXPECT_STREQ(ggml_type_name(r.t), r.name);
        EXPECT_EQ(ggml_type_dequantizable(r.t), r.deq) << r.name;
    }
    EXPECT_EQ(ggml_nbytes(GgmlType::Q4_1, 64), 40u);
    EXPECT_THROW(ggml_nbytes(GgmlType::Q4_1, 33), FormatError);
    EXPECT_FALSE(ggml_type_known(4));  // removed Q4_2
    EXPECT_FALSE(ggml_type_known(1000));
}

// ---- dequantization of hand-built blocks with known values -------------------------------------

TEST(GgufDequant, Q4_0_KnownBlock) {
    uint8_t blk[18];
    put_f16(blk, 0.5f);
    for (int j = 0; j < 16; ++j) blk[2 + j] = uint8_t(j | ((15 - j) << 4));
    float y[32];
    dequantize_row(GgmlType::Q4_0, blk, y, 32);
    for (int j = 0; j < 16; ++j) {
        EXPECT_EQ(y[j], 0.5f * float(j - 8)) << j;
        EXPECT_EQ(y[16 + j], 0.5f * float(7 - j)) << j;
    }
}

TEST(GgufDequant, Q4_1_KnownBlock) {
    uint8_t blk[20];
    put_f16(blk, 0.25f);
    put_f16(blk + 2, -1.0f);
    for (int j = 0; j < 16; ++j) blk[4 + j] = uint8_t(j | (j << 4));
    float y[32];
    dequantize_row(GgmlType::Q4_1, blk, y, 32);
    for (int j = 0; j < 16; ++j) {
        EXPECT_EQ(y[j], 0.25f * float(j) - 1.0f);
        EXPECT_EQ(y[16 + j], 0.25f * float(j) - 1.0f);
    }
}

TEST(GgufDequant, Q5_0_And_Q5_1_KnownBlock) {
    // Element k has 5-bit value k: low nibble in qs, fifth bit in bit k of qh.
    uint8_t b0[22], b1[24];
    put_f16(b0, 2.0f);
    put_f16(b1, 2.0f);
    put_f16(b1 + 2, 0.5f);
    uint32_t qh = 0;
    for (int k = 0; k < 32; ++k)
        if (k & 16) qh |= 1u << k;
    std::memcpy(b0 + 2, &qh, 4);
    std::memcpy(b1 + 4, &qh, 4);
    for (int j = 0; j < 16; ++j) b0[6 + j] = b1[8 + j] = uint8_t((j & 15) | (((j + 16) & 15) << 4));
    float y0[32], y1[32];
    dequantize_row(GgmlType::Q5_0, b0, y0, 32);
    dequantize_row(GgmlType::Q5_1, b1, y1, 32);
    for (int k = 0; k < 32; ++k) {
        EXPECT_EQ(y0[k], 2.0f * float(k - 16)) << k;
        EXPECT_EQ(y1[k], 2.0f * float(k) + 0.5f) << k;
    }
}

TEST(GgufDequant, Q8_0_KnownBlock) {
    uint8_t blk[34];
    put_f16(blk, 0.125f);
    for (int j = 0; j < 32; ++j) blk[2 + j] = uint8_t(int8_t(j * 8 - 128));
    float y[32];
    dequantize_row(GgmlType::Q8_0, blk, y, 32);
    for (int j = 0; j < 32; ++j) EXPECT_EQ(y[j], 0.125f * float(j * 8 - 128));
}

TEST(GgufDequant, Q4_K_KnownBlock) {
    // Sub-block s (32 elements) has scale s+1 and min 2s (6-bit packed), element value q = l % 16.
    uint8_t blk[144] = {};
    put_f16(blk, 0.5f);       // d
    put_f16(blk + 2, 0.25f);  // dmin
    uint8_t sc[8], mn[8];
    for (int s = 0; s < 8; ++s)
        sc[s] = uint8_t(s + 1 + (s >= 4 ? 40 : 0)), mn[s] = uint8_t(2 * s + (s >= 4 ? 33 : 0));
    uint8_t* S = blk + 4;
    for (int s = 0; s < 4; ++s) {
        S[s] = uint8_t((sc[s] & 63) | ((sc[s + 4] >> 4) << 6));
        S[s + 4] = uint8_t((mn[s] & 63) | ((mn[s + 4] >> 4) << 6));
        S[s + 8] = uint8_t((sc[s + 4] & 15) | ((mn[s + 4] & 15) << 4));
    }
    // Element e = 64*p + 32*h + l: nibble h of qs[32*p + l].
    for (int e = 0; e < 256; ++e) {
        const int p = e / 64, h = (e / 32) % 2, l = e % 32;
        blk[16 + 32 * p + l] |= uint8_t((l % 16) << (4 * h));
    }
    float y[256];
    dequantize_row(GgmlType::Q4_K, blk, y, 256);
    for (int e = 0; e < 256; ++e) {
        const int s = e / 32;
        EXPECT_EQ(y[e], (0.5f * float(sc[s])) * float(e % 16) - 0.25f * float(mn[s])) << e;
    }
}

TEST(GgufDequant, Q5_K_KnownBlock) {
    uint8_t blk[176] = {};
    put_f16(blk, 0.5f);
    put_f16(blk + 2, 1.0f);
    // All scales 3 (s<4 path) / 3 (s>=4 path), mins 1.
    uint8_t* S = blk + 4;
    for (int s = 0; s < 4; ++s) {
        S[s] = 3;
        S[s + 4] = 1;
        S[s + 8] = uint8_t(3 | (1 << 4));
    }
    // Element e = 32*s + l has q = (e * 7) % 32: low 4 bits in qs, bit 4 in bit s of qh[l].
    for (int e = 0; e < 256; ++e) {
        const int s = e / 32, l = e % 32, q = (e * 7) % 32;
        blk[48 + 32 * (s / 2) + l] |= uint8_t((q & 15) << (4 * (s % 2)));
        blk[16 + l] |= uint8_t(((q >> 4) & 1) << s);
    }
    float y[256];
    dequantize_row(GgmlType::Q5_K, blk, y, 256);
    for (int e = 0; e < 256; ++e) EXPECT_EQ(y[e], 1.5f * float((e * 7) % 32) - 1.0f) << e;
}

TEST(GgufDequant, Q6_K_KnownBlock) {
    uint8_t blk[210] = {};
    // Element e = 128*hf + 32*k + l: q = (e*5) % 64, scale index 8*hf + 2*k + l/16 -> scale i-8.
    for (int e = 0; e < 256; ++e) {
        const int hf = e / 128, k = (e % 128) / 32, l = e % 32, q = (e * 5) % 64;
        blk[64 * hf + l + 32 * (k & 1)] |= uint8_t((q & 15) << (4 * (k >> 1)));
        blk[128 + 32 * hf + l] |= uint8_t((q >> 4) << (2 * k));
    }
    for (int i = 0; i < 16; ++i) blk[192 + i] = uint8_t(int8_t(i - 8));
    put_f16(blk + 208, 0.125f);
    float y[256];
    dequantize_row(GgmlType::Q6_K, blk, y, 256);
    for (int e = 0; e < 256; ++e) {
        const int hf = e / 128, k = (e % 128) / 32, l = e % 32;
        const int scale = 8 * hf + 2 * k + l / 16 - 8;
        EXPECT_EQ(y[e], (0.125f * float(scale)) * float((e * 5) % 64 - 32)) << e;
    }
}

TEST(GgufDequant, HalfTypes_Exact) {
    const std::vector<float> v = {1.0f, -2.5f, 65504.0f, 0.0f, -0.0f, 1.0f / 1024};
    std::vector<uint16_t> h(v.size()), b(v.size());
    for (size_t i = 0; i < v.size(); ++i) h[i] = f32_to_f16(v[i]), b[i] = f32_to_bf16(v[i]);
    std::vector<float> yh(v.size()), yb(v.size());
    dequantize_row(GgmlType::F16, h.data(), yh.data(), int64_t(v.size()));
    dequantize_row(GgmlType::BF16, b.data(), yb.data(), int64_t(v.size()));
    for (size_t i = 0; i < v.size(); ++i) {
        EXPECT_EQ(f32_bits(yh[i]), f32_bits(v[i]));
        EXPECT_EQ(yb[i], bf16_to_f32(b[i]));
    }
}

TEST(GgufDequant, UnsupportedType_Throws) {
    uint8_t blk[84] = {};
    float y[256];
    try {
        dequantize_row(GgmlType::Q2_K, blk, y, 256);
        FAIL() << "expected FormatError";
    } catch (const FormatError& e) {
        EXPECT_THAT(e.what(), HasSubstr("Q2_K"));
        EXPECT_THAT(e.what(), HasSubstr("not supported"));
    }
}

// Bit-exact against gguf-py (tests/reference/gguf_dequant_blocks.py) for every supported type.
TEST(GgufDequant, MatchesGgufPy_AllTypes) {
    const auto path = palu::test::source_root() / "tests/reference/gguf_dequant_blocks.json";
    std::ifstream f(path);
    ASSERT_TRUE(f.good()) << path;
    const auto j = nlohmann::json::parse(f);
    std::set<std::string> seen;
    for (const auto& c : j.at("cases")) {
        const std::string type = c.at("type");
        GgmlType t{};
        bool found = false;
        for (uint32_t id = 0; id < 64; ++id)
            if (ggml_type_known(id) && type == ggml_type_name(GgmlType(id)))
                t = GgmlType(id), found = true;
        ASSERT_TRUE(found) << type;
        const int64_t n = c.at("n");
        const auto bytes = from_hex(c.at("bytes"));
        const auto expect = from_hex(c.at("f32_bits"));
        ASSERT_EQ(bytes.size(), ggml_nbytes(t, n)) << type;
        std::vector<float> y(size_t(n), -1.0f);
        dequantize_row(t, bytes.data(), y.data(), n);
        ASSERT_EQ(expect.size(), y.size() * 4);
        int64_t n_bad = 0;
        for (int64_t i = 0; i < n; ++i) {
            uint32_t want;
            std::memcpy(&want, expect.data() + 4 * i, 4);
            if (f32_bits(y[size_t(i)]) != want && n_bad++ < 3)
                ADD_FAILURE() << type << " element " << i << ": got " << y[size_t(i)] << " bits "
                              << std::hex << f32_bits(y[size_t(i)]) << ", want bits " << want;
        }
        EXPECT_EQ(n_bad, 0) << type;
        seen.insert(type);
    }
    EXPECT_EQ(seen, (std::set<std::string>{"F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0",
                                           "Q5_1", "Q4_K", "Q5_K", "Q6_K"}));
}

// ---- writer round trips -------------------------------------------------------------------------

namespace {

GgufWriter writer_with_all_value_types(uint32_t version) {
    GgufWriter w(version);
    w.set("t.u8", gguf_u8(200));
    w.set("t.i8", gguf_i8(-100));
    w.set("t.u16", gguf_u16(60000));
    w.set("t.i16", gguf_i16(-30000));
    w.set("t.u32", gguf_u32(4000000000u));
    w.set("t.i32", gguf_i32(-2000000000));
    w.set("t.u64", gguf_u64(18000000000000000000ull));
    w.set("t.i64", gguf_i64(-9000000000000000000ll));
    w.set("t.f32", gguf_f32(0.1f));
    w.set("t.f64", gguf_f64(0.1));
    w.set("t.bool", gguf_bool(true));
    w.set("t.str", gguf_str(std::string("h\0llo \xC3\xA9", 9)));
    w.set("t.arr_str", gguf_str_array({"a", "", "bc"}));
    w.set("t.arr_i32", gguf_i32_array({1, -2, 3}));
    w.set("t.arr_f32", gguf_f32_array({0.5f, -1.25f}));
    w.set("t.arr_empty", gguf_array(GgufValueType::U8, {}));
    w.set("t.nested", gguf_array(GgufValueType::ARRAY, {gguf_i32_array({1, 2}), gguf_i32_array({}),
                                                        gguf_i32_array({3})}));
    return w;
}

}  // namespace

TEST(GgufRoundTrip, AllValueTypes_V2AndV3) {
    for (uint32_t version : {2u, 3u}) {
        auto w = writer_with_all_value_types(version);
        auto f = parse(w.to_bytes());
        EXPECT_EQ(f->version(), version);
        EXPECT_EQ(f->alignment(), 32u);
        ASSERT_EQ(f->keys().size(), 17u);
        EXPECT_EQ(f->keys()[0], "t.u8");
        EXPECT_EQ(f->keys()[16], "t.nested");
        EXPECT_EQ(f->get_int("t.u8"), 200);
        EXPECT_EQ(f->get_int("t.i8"), -100);
        EXPECT_EQ(f->get_int("t.u16"), 60000);
        EXPECT_EQ(f->get_int("t.i16"), -30000);
        EXPECT_EQ(f->get_int("t.u32"), 4000000000ll);
        EXPECT_EQ(f->get_int("t.i32"), -2000000000);
        EXPECT_EQ(f->find("t.u64")->u, 18000000000000000000ull);
        EXPECT_THROW(f->get_int("t.u64"), FormatError);  // > INT64_MAX
        EXPECT_EQ(f->get_int("t.i64"), -9000000000000000000ll);
        EXPECT_EQ(f->get_float("t.f32"), double(0.1f));
        EXPECT_EQ(f->get_float("t.f64"), 0.1);
        EXPECT_EQ(f->get_float("t.u8"), 200.0);
        EXPECT_EQ(f->find("t.bool")->type, GgufValueType::BOOL);
        EXPECT_EQ(f->find("t.bool")->u, 1u);
        EXPECT_EQ(f->get_string("t.str"), std::string("h\0llo \xC3\xA9", 9));
        EXPECT_EQ(f->get_string_array("t.arr_str"), (std::vector<std::string>{"a", "", "bc"}));
        EXPECT_EQ(f->get_int_array("t.arr_i32"), (std::vector<int64_t>{1, -2, 3}));
        EXPECT_EQ(f->get_float_array("t.arr_f32"), (std::vector<double>{0.5, -1.25}));
        EXPECT_EQ(f->get_float_array("t.arr_i32"), (std::vector<double>{1, -2, 3}));
        EXPECT_TRUE(f->find("t.arr_empty")->array.empty());
        const GgufValue* nested = f->find("t.nested");
        ASSERT_EQ(nested->array.size(), 3u);
        EXPECT_EQ(nested->array_type, GgufValueType::ARRAY);
        EXPECT_EQ(nested->array[0].array.size(), 2u);
        EXPECT_EQ(nested->array[2].array[0].i, 3);
        EXPECT_EQ(f->find("missing"), nullptr);
        EXPECT_TRUE(f->tensor_infos().empty());
    }
}

TEST(GgufRoundTrip, TypedGetters_ErrorsNameKeyAndType) {
    auto f = parse(writer_with_all_value_types(3).to_bytes());
    try {
        f->get_string("t.u32");
        FAIL();
    } catch (const FormatError& e) {
        EXPECT_THAT(e.what(), HasSubstr("t.gguf"));
        EXPECT_THAT(e.what(), HasSubstr("'t.u32'"));
        EXPECT_THAT(e.what(), HasSubstr("expected a string, got u32"));
    }
    try {
        f->get_int("nope");
        FAIL();
    } catch (const FormatError& e) {
        EXPECT_THAT(e.what(), HasSubstr("'nope'"));
        EXPECT_THAT(e.what(), HasSubstr("no such key"));
    }
    EXPECT_THROW(f->get_int_array("t.arr_str"), FormatError);
    EXPECT_THROW(f->get_string_array("t.arr_i32"), FormatError);
    EXPECT_THROW(f->get_float("t.str"), FormatError);
}

TEST(GgufRoundTrip, Tensors_AllWriterTypes_Aligned) {
    for (uint32_t alignment : {32u, 64u, 256u}) {
        GgufWriter w;
        w.set_alignment(alignment);
        w.set("general.architecture", gguf_str("none"));
        const auto v = random_values(64 * 3, 7);
        const std::vector<GgmlType> types = {GgmlType::F32,  GgmlType::F16,  GgmlType::BF16,
                                             GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::Q4_1};
        for (auto t : types) w.add_tensor(std::string("w.") + ggml_type_name(t), {64, 3}, t, v);
        w.add_tensor("odd.f32", {3}, GgmlType::F32, {1.0f, 2.0f, 3.0f});
        const auto bytes = w.to_bytes();
        auto f = parse(bytes);
        EXPECT_EQ(f->alignment(), alignment);
        EXPECT_EQ(f->data_offset() % alignment, 0u);
        ASSERT_EQ(f->tensor_infos().size(), types.size() + 1);
        for (size_t k = 0; k < types.size(); ++k) {
            const GgufTensorInfo& ti = f->tensor_infos()[k];
            SCOPED_TRACE(ti.name);
            EXPECT_EQ(ti.type, types[k]);
            EXPECT_EQ(ti.ne, (std::vector<int64_t>{64, 3}));
            EXPECT_EQ(ti.offset % alignment, 0u);
            EXPECT_EQ(ti.n_bytes, ggml_nbytes(types[k], 192));
            const auto y = f->dequantize(ti);
            ASSERT_EQ(y.size(), v.size());
            // Per-block error bound of each encoding (round to nearest).
            for (size_t i = 0; i < v.size(); ++i) {
                const size_t b0 = i / 32 * 32;
                float amax = 0, lo = v[b0], hi = v[b0];
                for (size_t j = b0; j < b0 + 32; ++j)
                    amax = std::max(amax, std::fabs(v[j])), lo = std::min(lo, v[j]),
                    hi = std::max(hi, v[j]);
                float tol = 0;
                switch (types[k]) {
                    case GgmlType::F32: tol = 0; break;
                    case GgmlType::F16: tol = std::fabs(v[i]) * 0x1p-11f + 0x1p-25f; break;
                    case GgmlType::BF16: tol = std::fabs(v[i]) * 0x1p-8f; break;
                    case GgmlType::Q8_0: tol = amax / 127 * 0.5f * 1.01f + amax * 0x1p-11f; break;
                    // q = 16 clamps to 15 for the value opposite the extreme: a full step.
                    case GgmlType::Q4_0: tol = amax / 8 * 1.01f + amax * 0x1p-9f; break;
                    case GgmlType::Q4_1:
                        tol = (hi - lo) / 15 * 0.5f * 1.01f + (hi - lo + std::fabs(lo)) * 0x1p-10f;
                        break;
                    default: break;
                }
                ASSERT_LE(std::fabs(y[i] - v[i]), tol) << "element " << i;
            }
            // The stored bytes are exactly what the reference quantizer makes.
            std::vector<uint8_t> q(ti.n_bytes);
            if (types[k] == GgmlType::Q8_0) quantize_q8_0(v.data(), q.data(), 192);
            if (types[k] == GgmlType::Q4_0) quantize_q4_0(v.data(), q.data(), 192);
            if (types[k] == GgmlType::Q4_1) quantize_q4_1(v.data(), q.data(), 192);
            if (types[k] == GgmlType::Q8_0 || types[k] == GgmlType::Q4_0 ||
                types[k] == GgmlType::Q4_1) {
                EXPECT_EQ(std::memcmp(q.data(), f->tensor_data(ti), q.size()), 0);
            }
        }
        EXPECT_EQ(f->dequantize(*f->find_tensor("odd.f32")), (std::vector<float>{1, 2, 3}));

        // Reading back and writing again gives identical bytes.
        GgufWriter w2;
        for (const auto& key : f->keys()) w2.set(key, *f->find(key));
        for (const auto& ti : f->tensor_infos()) {
            const uint8_t* p = f->tensor_data(ti);
            w2.add_tensor_raw(ti.name, ti.ne, ti.type, std::vector<uint8_t>(p, p + ti.n_bytes));
        }
        // set() keeps general.alignment's value; the writer pads with it only via set_alignment.
        w2.set_alignment(alignment);
        EXPECT_EQ(w2.to_bytes(), bytes);
    }
}

TEST(GgufRoundTrip, FileOnDisk_OpenMatchesMemory) {
    auto w = writer_with_all_value_types(3);
    w.add_tensor("x", {32, 2}, GgmlType::Q8_0, random_values(64, 3));
    const auto dir = palu::test::make_temp_dir("gguf_disk");
    w.write(dir / "m.gguf");
    EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir), {}), 1);  // no temp left
    auto a = GgufFile::open(dir / "m.gguf");
    auto b = parse(w.to_bytes());
    EXPECT_EQ(a->path(), (dir / "m.gguf").string());
    EXPECT_EQ(a->keys(), b->keys());
    EXPECT_EQ(a->dequantize(a->tensor_infos()[0]), b->dequantize(b->tensor_infos()[0]));
    EXPECT_THROW(GgufFile::open(dir / "absent.gguf"), IoError);
}

// Fuzz regression: empty tensors reached memcpy with null pointers (UBSan).
TEST(GgufRoundTrip, EmptyTensor_DequantizesToNothing) {
    GgufWriter w;
    w.add_tensor("z.f32", {0, 4}, GgmlType::F32, {});
    w.add_tensor("z.q4", {0}, GgmlType::Q4_1, {});
    auto f = parse(w.to_bytes());
    for (const auto& t : f->tensor_infos()) {
        EXPECT_EQ(t.n_bytes, 0u);
        EXPECT_TRUE(f->dequantize(t).empty());
    }
    unpermute_rope_rows(nullptr, nullptr, 8, 0, 2);  // no rows to move
}

TEST(GgufRoundTrip, UnsupportedTensorType_DequantizeNamesTensor) {
    GgufWriter w;
    w.add_tensor_raw("blk.0.ffn_up.weight", {256}, GgmlType::Q2_K, std::vector<uint8_t>(84));
    auto f = parse(w.to_bytes());
    try {
        f->dequantize(f->tensor_infos()[0]);
        FAIL();
    } catch (const FormatError& e) {
        EXPECT_THAT(e.what(), HasSubstr("'blk.0.ffn_up.weight'"));
        EXPECT_THAT(e.what(), HasSubstr("Q2_K"));
    }
}

// ---- corruption suite ---------------------------------------------------------------------------

namespace {

enum class Corruption {
    WrongMagic,
    VersionOne,
    VersionFour,
    TruncatedHeader,
    EmptyFile,
    TruncatedTensorData,
    BadAlignment,
    AlignmentWrongType,
    TensorOffsetPastEnd,
    TensorOffsetMisaligned,
    StringLengthPastEnd,
    AbsurdArrayCount,
    AbsurdKeyCount,
    AbsurdTensorCount,
    TooManyDims,
    ZeroDims,
    UnknownTensorType,
    UnknownValueType,
    DuplicateKey,
    DuplicateTensor,
    BlockSizeMismatch,
    DimsOverflow,
    OverlappingTensors,
    BadBool,
    NestedTooDeep,
    NegativeDim,
};

struct CorruptionCase {
    Corruption c;
    const char* name;
    std::vector<std::string> substrings;  // the error message must contain each
};
// Readable (and stable) parameter names in test listings.
void PrintTo(const CorruptionCase& c, std::ostream* os) {
    *os << c.name;
}

// A valid file with one tensor whose data ends exactly at the end of the file.
std::vector<uint8_t> valid_bytes() {
    GgufWriter w;
    w.set("general.architecture", gguf_str("llama"));
    w.add_tensor("a.weight", {8}, GgmlType::F32, std::vector<float>(8, 1.0f));  // 32 bytes
    return w.to_bytes();
}

std::vector<uint8_t> make_corrupt(Corruption c) {
    GgufBytes g;
    switch (c) {
        case Corruption::WrongMagic: {
            auto b = valid_bytes();
            b[0] = 'X';
            return b;
        }
        case Corruption::VersionOne:
        case Corruption::VersionFour: {
            auto b = valid_bytes();
            b[4] = c == Corruption::VersionOne ? 1 : 4;
            return b;
        }
        case Corruption::TruncatedHeader:  // an f32 value cut after 2 of its 4 bytes
            g.header(3, 0, 1).str("key").put<uint32_t>(6).put<uint16_t>(0);
            return g.b;
        case Corruption::EmptyFile: return {};
        case Corruption::TruncatedTensorData: {
            auto b = valid_bytes();
            b.resize(b.size() - 4);
            return b;
        }
        case Corruption::BadAlignment: {
            GgufWriter w;
            w.set("general.alignment", gguf_u32(24));
            return w.to_bytes();
        }
        case Corruption::AlignmentWrongType: {
            GgufWriter w;
            w.set("general.alignment", gguf_u64(32));
            return w.to_bytes();
        }
        case Corruption::TensorOffsetPastEnd:
            g.header(3, 1, 0).tensor("w", {8}, 0, 64).pad_to(32).zeros(32);
            return g.b;
        case Corruption::TensorOffsetMisaligned:
            g.header(3, 1, 0).tensor("w", {8}, 0, 4).pad_to(32).zeros(64);
            return g.b;
        case Corruption::StringLengthPastEnd:
            g.header(3, 0, 1).put<uint64_t>(1000).zeros(20);
            return g.b;
        case Corruption::AbsurdArrayCount:
            g.header(3, 0, 1)
                .str("arr")
                .put<uint32_t>(9)
                .put<uint32_t>(5)
                .put<uint64_t>(1ull << 60)
                .zeros(16);
            return g.b;
        case Corruption::AbsurdKeyCount: g.header(3, 0, 1ull << 62).zeros(64); return g.b;
        case Corruption::AbsurdTensorCount: g.header(3, 1ull << 62, 0).zeros(64); return g.b;
        case Corruption::TooManyDims:
            g.header(3, 1, 0).tensor("w", {1, 1, 1, 1, 8}, 0, 0).pad_to(32).zeros(32);
            return g.b;
        case Corruption::ZeroDims:
            g.header(3, 1, 0).tensor("w", {}, 0, 0).pad_to(32).zeros(32);
            return g.b;
        case Corruption::UnknownTensorType:
            g.header(3, 1, 0).tensor("w", {8}, 200, 0).pad_to(32).zeros(32);
            return g.b;
        case Corruption::UnknownValueType:
            g.header(3, 0, 1).str("k").put<uint32_t>(13).put<uint32_t>(0);
            return g.b;
        case Corruption::DuplicateKey: g.header(3, 0, 2).kv_u32("k", 1).kv_u32("k", 2); return g.b;
        case Corruption::DuplicateTensor:
            g.header(3, 2, 0).tensor("w", {8}, 0, 0).tensor("w", {8}, 0, 32).pad_to(32).zeros(64);
            return g.b;
        case Corruption::BlockSizeMismatch:
            g.header(3, 1, 0).tensor("w", {33}, 2, 0).pad_to(32).zeros(64);
            return g.b;
        case Corruption::DimsOverflow:
            g.header(3, 1, 0)
                .tensor("w", {1ull << 32, 1ull << 32, 1ull << 32}, 0, 0)
                .pad_to(32)
                .zeros(32);
            return g.b;
        case Corruption::NegativeDim:
            g.header(3, 1, 0).tensor("w", {~0ull}, 0, 0).pad_to(32).zeros(32);
            return g.b;
        case Corruption::OverlappingTensors:
            g.header(3, 2, 0).tensor("w", {16}, 0, 0).tensor("v", {8}, 0, 32).pad_to(32).zeros(96);
            return g.b;
        case Corruption::BadBool:
            g.header(3, 0, 1).str("flag").put<uint32_t>(7).put<uint8_t>(2);
            return g.b;
        case Corruption::NestedTooDeep:
            g.header(3, 0, 1).str("deep").put<uint32_t>(9);
            for (int d = 0; d < 20; ++d) g.put<uint32_t>(9).put<uint64_t>(1);
            g.put<uint32_t>(0).put<uint64_t>(0);
            return g.b;
    }
    return {};
}

class GgufCorruption : public ::testing::TestWithParam<CorruptionCase> {};

}  // namespace

TEST_P(GgufCorruption, ThrowsFormatErrorNamingFileAndField) {
    const auto& p = GetParam();
    const auto bytes = make_corrupt(p.c);
    try {
        parse(bytes, "bad.gguf");
        FAIL() << "expected FormatError for " << p.name;
    } catch (const FormatError& e) {
        EXPECT_THAT(e.what(), HasSubstr("formats: bad.gguf: ")) << e.what();
        for (const auto& s : p.substrings) EXPECT_THAT(e.what(), HasSubstr(s)) << p.name;
    }
}

INSTANTIATE_TEST_SUITE_P(
    All, GgufCorruption,
    ::testing::Values(
        CorruptionCase{Corruption::WrongMagic,
                       "WrongMagic",
                       {"bad magic", "expected 'GGUF'", "got 58 47 55 46"}},
        CorruptionCase{Corruption::VersionOne,
                       "VersionOne",
                       {"unsupported GGUF version", "expected 2 or 3, got 1", "hint"}},
        CorruptionCase{
            Corruption::VersionFour, "VersionFour", {"unsupported GGUF version", "got 4"}},
        CorruptionCase{Corruption::TruncatedHeader,
                       "TruncatedHeader",
                       {"truncated header", "metadata key 'key' needs 4 bytes at offset 39",
                        "got 2 bytes left"}},
        CorruptionCase{Corruption::EmptyFile,
                       "EmptyFile",
                       {"truncated header", "magic needs 4 bytes", "got 0 bytes left"}},
        CorruptionCase{
            Corruption::TruncatedTensorData,
            "TruncatedTensorData",
            {"tensor 'a.weight' data [0, 32)", "data section of 28 bytes", "incomplete download"}},
        CorruptionCase{Corruption::BadAlignment,
                       "BadAlignment",
                       {"general.alignment", "expected a power of two, got 24"}},
        CorruptionCase{Corruption::AlignmentWrongType,
                       "AlignmentWrongType",
                       {"general.alignment", "expected type u32, got u64"}},
        CorruptionCase{Corruption::TensorOffsetPastEnd,
                       "TensorOffsetPastEnd",
                       {"tensor 'w' data [64, 96)", "data section of 32 bytes"}},
        CorruptionCase{Corruption::TensorOffsetMisaligned,
                       "TensorOffsetMisaligned",
                       {"tensor 'w' offset", "multiple of the alignment 32, got 4"}},
        CorruptionCase{Corruption::StringLengthPastEnd,
                       "StringLengthPastEnd",
                       {"metadata key #0 length", "expected <= 20", "got 1000"}},
        CorruptionCase{Corruption::AbsurdArrayCount,
                       "AbsurdArrayCount",
                       {"metadata key 'arr' array count", "got 1152921504606846976"}},
        CorruptionCase{Corruption::AbsurdKeyCount,
                       "AbsurdKeyCount",
                       {"metadata key count", "got 4611686018427387904"}},
        CorruptionCase{Corruption::AbsurdTensorCount,
                       "AbsurdTensorCount",
                       {"tensor count", "got 4611686018427387904"}},
        CorruptionCase{
            Corruption::TooManyDims, "TooManyDims", {"tensor 'w' n_dims", "expected 1..4, got 5"}},
        CorruptionCase{Corruption::ZeroDims, "ZeroDims", {"tensor 'w' n_dims", "got 0"}},
        CorruptionCase{Corruption::UnknownTensorType,
                       "UnknownTensorType",
                       {"tensor 'w' type", "known ggml type", "got 200"}},
        CorruptionCase{Corruption::UnknownValueType,
                       "UnknownValueType",
                       {"metadata key 'k' value type", "expected 0..12, got 13"}},
        CorruptionCase{Corruption::DuplicateKey, "DuplicateKey", {"metadata key 'k'", "duplicate"}},
        CorruptionCase{Corruption::DuplicateTensor, "DuplicateTensor", {"tensor 'w'", "duplicate"}},
        CorruptionCase{Corruption::BlockSizeMismatch,
                       "BlockSizeMismatch",
                       {"tensor 'w'", "Q4_0", "multiple of the block size 32, got 33"}},
        CorruptionCase{Corruption::DimsOverflow, "DimsOverflow", {"tensor 'w'", "overflows"}},
        CorruptionCase{Corruption::NegativeDim,
                       "NegativeDim",
                       {"tensor 'w' ne[0]", "got 18446744073709551615"}},
        CorruptionCase{Corruption::OverlappingTensors,
                       "OverlappingTensors",
                       {"tensor 'v'", "overlap", "'w' ending at 64"}},
        CorruptionCase{Corruption::BadBool,
                       "BadBool",
                       {"metadata key 'flag'", "expected a bool (0 or 1), got 2"}},
        CorruptionCase{Corruption::NestedTooDeep,
                       "NestedTooDeep",
                       {"metadata key 'deep'", "nested at most 8"}}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(GgufCorruptionFile, MissingAndDirectory_IoError) {
    EXPECT_THROW(GgufFile::open("/nonexistent/x.gguf"), IoError);
    EXPECT_THROW(GgufFile::open(palu::test::make_temp_dir("gguf_dir")), IoError);
}

TEST(GgufCorruptionFile, EveryTruncation_ThrowsFormatError) {
    // No prefix of a valid file may crash or be accepted (except the complete file).
    GgufWriter w = writer_with_all_value_types(3);
    w.add_tensor("x", {32}, GgmlType::Q4_1, random_values(32, 1));
    const auto bytes = w.to_bytes();
    const auto full = parse(bytes);
    // The file may end right after the tensor's data (the padding after it is optional).
    const uint64_t min_size = full->data_offset() + full->tensor_infos()[0].offset + 20;
    for (size_t n = 0; n < bytes.size(); ++n) {
        std::vector<uint8_t> cut(bytes.begin(), bytes.begin() + n);
        if (n < min_size)
            EXPECT_THROW(parse(cut), FormatError) << "prefix of " << n << " bytes";
        else
            EXPECT_NO_THROW(parse(cut)) << "prefix of " << n << " bytes";
    }
}

// ---- llama metadata, names, RoPE permutation, open_gguf_model -----------------------------------

namespace {

struct TinyLlama {
    int64_t d_model = 64, n_layers = 2, n_heads = 4, n_kv_heads = 2, d_head = 16, d_ff = 96,
            n_vocab = 40;
    bool tied = true;
    bool qkv_bias = false;
    GgmlType weight_type = GgmlType::F32;
};

// convert_hf_to_gguf.py's permute(): w.reshape(n_head, 2, rows/n_head/2, cols).swapaxes(1, 2)
// .reshape(rows, cols), written as the 4-D index map it is.
std::vector<float> llama_cpp_permute(const std::vector<float>& w, int64_t rows, int64_t cols,
                                     int64_t n_head) {
    const int64_t half = rows / n_head / 2;
    std::vector<float> out(w.size());
    int64_t dst_row = 0;
    for (int64_t h = 0; h < n_head; ++h)                  // axis 0
        for (int64_t i = 0; i < half; ++i)                // axis 1 after the swap (was axis 2)
            for (int64_t j = 0; j < 2; ++j, ++dst_row) {  // axis 2 after the swap (was axis 1)
                const int64_t src_row = (h * 2 + j) * half + i;
                std::copy(w.begin() + src_row * cols, w.begin() + (src_row + 1) * cols,
                          out.begin() + dst_row * cols);
            }
    return out;
}

// Writes a tiny llama GGUF; returns the HF tensors (name -> [shape, values]) it encodes.
std::map<std::string, std::pair<std::vector<int64_t>, std::vector<float>>> write_tiny_llama(
    GgufWriter& w, const TinyLlama& c, uint32_t seed) {
    w.set("general.architecture", gguf_str("llama"));
    w.set("llama.embedding_length", gguf_u32(uint32_t(c.d_model)));
    w.set("llama.block_count", gguf_u32(uint32_t(c.n_layers)));
    w.set("llama.attention.head_count", gguf_u32(uint32_t(c.n_heads)));
    w.set("llama.attention.head_count_kv", gguf_u32(uint32_t(c.n_kv_heads)));
    w.set("llama.feed_forward_length", gguf_u32(uint32_t(c.d_ff)));
    w.set("llama.attention.layer_norm_rms_epsilon", gguf_f32(1e-5f));
    w.set("llama.rope.freq_base", gguf_f32(50000.0f));
    w.set("llama.rope.dimension_count", gguf_u32(uint32_t(c.d_head)));
    w.set("llama.context_length", gguf_u32(2048));
    std::vector<std::string> tokens;
    for (int64_t t = 0; t < c.n_vocab; ++t) tokens.push_back("t" + std::to_string(t));
    w.set("tokenizer.ggml.tokens", gguf_str_array(tokens));
    w.set("tokenizer.ggml.bos_token_id", gguf_u32(1));
    w.set("tokenizer.ggml.eos_token_id", gguf_u32(2));

    std::map<std::string, std::pair<std::vector<int64_t>, std::vector<float>>> hf;
    uint32_t s = seed;
    auto add = [&](const std::string& gguf_name, const std::string& hf_name,
                   std::vector<int64_t> hf_shape, int64_t permute_heads, GgmlType type) {
        int64_t n = 1;
        for (auto d : hf_shape) n *= d;
        auto v = random_values(size_t(n), s++, 0.1f);
        std::vector<float> stored = v;
        if (permute_heads > 0)
            stored = llama_cpp_permute(v, hf_shape[0], hf_shape.size() > 1 ? hf_shape[1] : 1,
                                       permute_heads);
        w.add_tensor(gguf_name, std::vector<int64_t>(hf_shape.rbegin(), hf_shape.rend()), type,
                     stored);
        // What the reader must give back: the HF values after the storage type's rounding.
        if (type != GgmlType::F32) {
            GgufWriter one;
            one.add_tensor("x", std::vector<int64_t>(hf_shape.rbegin(), hf_shape.rend()), type,
                           stored);
            auto g = parse(one.to_bytes());
            auto deq = g->dequantize(g->tensor_infos()[0]);
            v = std::vector<float>(deq.size());
            if (permute_heads > 0)
                unpermute_rope_rows(deq.data(), v.data(), hf_shape[0],
                                    hf_shape.size() > 1 ? hf_shape[1] : 1, permute_heads);
            else
                v = deq;
        }
        hf[hf_name] = {hf_shape, v};
    };
    const GgmlType wt = c.weight_type;
    add("token_embd.weight", "model.embed_tokens.weight", {c.n_vocab, c.d_model}, 0, wt);
    add("output_norm.weight", "model.norm.weight", {c.d_model}, 0, GgmlType::F32);
    if (!c.tied) add("output.weight", "lm_head.weight", {c.n_vocab, c.d_model}, 0, wt);
    for (int64_t l = 0; l < c.n_layers; ++l) {
        const std::string g = "blk." + std::to_string(l) + ".";
        const std::string h = "model.layers." + std::to_string(l) + ".";
        add(g + "attn_norm.weight", h + "input_layernorm.weight", {c.d_model}, 0, GgmlType::F32);
        add(g + "attn_q.weight", h + "self_attn.q_proj.weight", {c.n_heads * c.d_head, c.d_model},
            c.n_heads, wt);
        add(g + "attn_k.weight", h + "self_attn.k_proj.weight",
            {c.n_kv_heads * c.d_head, c.d_model}, c.n_kv_heads, wt);
        add(g + "attn_v.weight", h + "self_attn.v_proj.weight",
            {c.n_kv_heads * c.d_head, c.d_model}, 0, wt);
        if (c.qkv_bias) {
            add(g + "attn_q.bias", h + "self_attn.q_proj.bias", {c.n_heads * c.d_head}, c.n_heads,
                GgmlType::F32);
            add(g + "attn_k.bias", h + "self_attn.k_proj.bias", {c.n_kv_heads * c.d_head},
                c.n_kv_heads, GgmlType::F32);
            add(g + "attn_v.bias", h + "self_attn.v_proj.bias", {c.n_kv_heads * c.d_head}, 0,
                GgmlType::F32);
        }
        add(g + "attn_output.weight", h + "self_attn.o_proj.weight",
            {c.d_model, c.n_heads * c.d_head}, 0, wt);
        add(g + "ffn_norm.weight", h + "post_attention_layernorm.weight", {c.d_model}, 0,
            GgmlType::F32);
        add(g + "ffn_gate.weight", h + "mlp.gate_proj.weight", {c.d_ff, c.d_model}, 0, wt);
        add(g + "ffn_up.weight", h + "mlp.up_proj.weight", {c.d_ff, c.d_model}, 0, wt);
        add(g + "ffn_down.weight", h + "mlp.down_proj.weight", {c.d_model, c.d_ff}, 0, wt);
    }
    return hf;
}

std::unique_ptr<WeightSource> open_tiny(const GgufWriter& w) {
    auto bytes = w.to_bytes();
    return open_gguf_model(GgufFile::open_memory(bytes.data(), bytes.size(), "tiny.gguf"));
}

}  // namespace

TEST(GgufNames, GgufToHf) {
    EXPECT_EQ(gguf_to_hf_name("token_embd.weight"), "model.embed_tokens.weight");
    EXPECT_EQ(gguf_to_hf_name("output_norm.weight"), "model.norm.weight");
    EXPECT_EQ(gguf_to_hf_name("output.weight"), "lm_head.weight");
    EXPECT_EQ(gguf_to_hf_name("blk.0.attn_norm.weight"), "model.layers.0.input_layernorm.weight");
    EXPECT_EQ(gguf_to_hf_name("blk.12.attn_q.weight"), "model.layers.12.self_attn.q_proj.weight");
    EXPECT_EQ(gguf_to_hf_name("blk.3.attn_k.bias"), "model.layers.3.self_attn.k_proj.bias");
    EXPECT_EQ(gguf_to_hf_name("blk.3.attn_v.weight"), "model.layers.3.self_attn.v_proj.weight");
    EXPECT_EQ(gguf_to_hf_name("blk.3.attn_output.weight"),
              "model.layers.3.self_attn.o_proj.weight");
    EXPECT_EQ(gguf_to_hf_name("blk.29.ffn_norm.weight"),
              "model.layers.29.post_attention_layernorm.weight");
    EXPECT_EQ(gguf_to_hf_name("blk.1.ffn_gate.weight"), "model.layers.1.mlp.gate_proj.weight");
    EXPECT_EQ(gguf_to_hf_name("blk.1.ffn_up.weight"), "model.layers.1.mlp.up_proj.weight");
    EXPECT_EQ(gguf_to_hf_name("blk.1.ffn_down.weight"), "model.layers.1.mlp.down_proj.weight");
    for (const char* bad :
         {"rope_freqs.weight", "blk.x.attn_q.weight", "blk..attn_q.weight", "blk.01.attn_q.weight",
          "blk.1.attn_q", "blk.1.attn_qq.weight", "token_embd", "output.weight.x", "blk.1", ""})
        EXPECT_FALSE(gguf_to_hf_name(bad).has_value()) << bad;
}

TEST(GgufRopePermutation, UnpermuteInvertsLlamaCppPermute) {
    const int64_t n_heads = 3, d_head = 8, cols = 5, rows = n_heads * d_head;
    std::vector<float> hf(size_t(rows * cols));
    for (size_t i = 0; i < hf.size(); ++i) hf[i] = float(i);
    const auto stored = llama_cpp_permute(hf, rows, cols, n_heads);
    // Row 1 of head 0 in llama.cpp order is HF row d_head/2 (the first "rotate-half" partner).
    EXPECT_EQ(stored[1 * cols], hf[(d_head / 2) * cols]);
    std::vector<float> back(hf.size()), again(hf.size());
    unpermute_rope_rows(stored.data(), back.data(), rows, cols, n_heads);
    EXPECT_EQ(back, hf);
    permute_rope_rows(hf.data(), again.data(), rows, cols, n_heads);
    EXPECT_EQ(again, stored);
    EXPECT_THROW(unpermute_rope_rows(stored.data(), back.data(), rows, cols, 5), ShapeError);
}

TEST(GgufModel, TinyLlama_F32_WeightsComeBackInHfConvention) {
    for (bool tied : {true, false}) {
        TinyLlama c;
        c.tied = tied;
        c.qkv_bias = !tied;
        GgufWriter w;
        const auto hf = write_tiny_llama(w, c, 42);
        auto src = open_tiny(w);
        EXPECT_EQ(src->format_name(), "gguf");
        EXPECT_EQ(src->path(), "tiny.gguf");
        const auto infos = src->tensors();
        ASSERT_EQ(infos.size(), hf.size());
        size_t k = 0;
        for (const auto& [name, sv] : hf) {  // std::map: sorted like tensors()
            SCOPED_TRACE(name);
            EXPECT_EQ(infos[k].name, name);
            EXPECT_EQ(infos[k].shape, sv.first);
            EXPECT_EQ(infos[k].storage_type, "F32");
            ++k;
            ASSERT_TRUE(src->has_tensor(name));
            const Tensor t = src->load_f32(name);
            EXPECT_EQ(t.shape(), sv.first);
            EXPECT_EQ(t.vec(), sv.second);  // bit-identical, q/k un-permuted
        }
        EXPECT_EQ(src->has_tensor("lm_head.weight"), !tied);
        EXPECT_EQ(src->config().tie_word_embeddings, tied);
        EXPECT_EQ(src->config().qkv_bias, !tied);
        EXPECT_THROW(src->load_f32("model.layers.9.mlp.up_proj.weight"), FormatError);
    }
}

TEST(GgufModel, OpenModelDispatchesOnMagic) {
    TinyLlama c;
    GgufWriter w;
    write_tiny_llama(w, c, 5);
    const auto dir = palu::test::make_temp_dir("gguf_dispatch");
    w.write(dir / "tiny.gguf");
    w.write(dir / "tiny.bin");  // GGUF magic wins over the .bin extension
    for (const char* name : {"tiny.gguf", "tiny.bin"}) {
        auto src = open_model(dir / name);
        EXPECT_EQ(src->format_name(), "gguf") << name;
        EXPECT_EQ(src->config().d_model, 64) << name;
    }
}

TEST(GgufModel, TinyLlama_Q8_0_StorageTypeAndValues) {
    TinyLlama c;
    c.weight_type = GgmlType::Q8_0;
    GgufWriter w;
    const auto hf = write_tiny_llama(w, c, 7);
    auto src = open_tiny(w);
    for (const auto& info : src->tensors()) {
        const bool is_norm = info.name.find("norm") != std::string::npos;
        EXPECT_EQ(info.storage_type, is_norm ? "F32" : "Q8_0") << info.name;
        EXPECT_EQ(src->load_f32(info.name).vec(), hf.at(info.name).second) << info.name;
    }
}

TEST(GgufModelConfig, FromLlamaMetadata) {
    TinyLlama c;
    GgufWriter w;
    write_tiny_llama(w, c, 1);
    auto f = parse(w.to_bytes());
    const ModelConfig m = gguf_model_config(*f);
    EXPECT_EQ(m.architecture, "llama");
    EXPECT_EQ(m.d_model, 64);
    EXPECT_EQ(m.n_layers, 2);
    EXPECT_EQ(m.n_heads, 4);
    EXPECT_EQ(m.n_kv_heads, 2);
    EXPECT_EQ(m.d_head, 16);
    EXPECT_EQ(m.d_ff, 96);
    EXPECT_EQ(m.n_vocab, 40);  // from the token list (no llama.vocab_size)
    EXPECT_EQ(m.max_position_embeddings, 2048);
    EXPECT_EQ(m.rms_norm_eps, double(1e-5f));
    EXPECT_EQ(m.rope_theta, 50000.0);
    EXPECT_EQ(m.rope_scaling.type, "none");
    EXPECT_TRUE(m.tie_word_embeddings);
    EXPECT_EQ(m.bos_token_id, 1);
    EXPECT_EQ(m.eos_token_ids, (std::vector<int64_t>{2}));

    w.set("llama.vocab_size", gguf_u32(40));
    w.set("llama.rope.scaling.type", gguf_str("linear"));
    w.set("llama.rope.scaling.factor", gguf_f32(4.0f));
    const ModelConfig m2 = gguf_model_config(*parse(w.to_bytes()));
    EXPECT_EQ(m2.rope_scaling.type, "linear");
    EXPECT_EQ(m2.rope_scaling.factor, 4.0);
}

TEST(GgufModelConfig, Errors_NameKeyAndFile) {
    auto expect_error = [](GgufWriter w, const std::vector<std::string>& subs) {
        try {
            gguf_model_config(*parse(w.to_bytes(), "cfg.gguf"));
            FAIL() << "expected FormatError";
        } catch (const FormatError& e) {
            EXPECT_THAT(e.what(), HasSubstr("cfg.gguf"));
            for (const auto& s : subs) EXPECT_THAT(e.what(), HasSubstr(s));
        }
    };
    TinyLlama c;
    {
        GgufWriter w;
        write_tiny_llama(w, c, 1);
        w.set("general.architecture", gguf_str("qwen2"));
        expect_error(w, {"general.architecture", "expected 'llama', got 'qwen2'"});
    }
    {
        GgufWriter w;
        write_tiny_llama(w, c, 1);
        w.set("llama.rope.scaling.type", gguf_str("yarn"));
        expect_error(w, {"llama.rope.scaling.type", "got 'yarn'", "not supported"});
    }
    {
        GgufWriter w;
        write_tiny_llama(w, c, 1);
        w.add_tensor("rope_freqs.weight", {8}, GgmlType::F32, std::vector<float>(8, 1.0f));
        expect_error(w, {"rope_freqs.weight", "not supported"});
    }
    {
        GgufWriter w;  // no architecture key at all
        expect_error(w, {"general.architecture", "no such key"});
    }
    {
        GgufWriter w;
        w.set("general.architecture", gguf_str("llama"));
        w.set("llama.embedding_length", gguf_u32(64));
        expect_error(w, {"llama.block_count", "no such key"});
    }
    {
        GgufWriter w;
        write_tiny_llama(w, c, 1);
        w.set("llama.attention.head_count", gguf_str("four"));
        expect_error(w, {"llama.attention.head_count", "expected an integer, got str"});
    }
}

TEST(GgufModel, QkShapeMismatch_FormatError) {
    TinyLlama c;
    GgufWriter w;
    write_tiny_llama(w, c, 1);
    w.set("llama.attention.head_count_kv", gguf_u32(4));  // k has 2 heads' rows
    try {
        open_tiny(w);
        FAIL();
    } catch (const FormatError& e) {
        EXPECT_THAT(e.what(), HasSubstr("'blk.0.attn_k.weight' has wrong shape"));
        EXPECT_THAT(e.what(), HasSubstr("expected 64 rows"));
    }
}

// ---- the real SmolLM2-135M-Instruct Q4_1 file (scripts/get-smollm2.sh) --------------------------

TEST(GgufSmolLM2, OpenGgufModel_Config) {
    PALU_REQUIRE_SMOLLM2(path);
    auto src = open_gguf_model(path);
    const ModelConfig& c = src->config();
    EXPECT_EQ(src->format_name(), "gguf");
    EXPECT_EQ(c.architecture, "llama");
    EXPECT_EQ(c.d_model, 576);
    EXPECT_EQ(c.n_layers, 30);
    EXPECT_EQ(c.n_heads, 9);
    EXPECT_EQ(c.n_kv_heads, 3);
    EXPECT_EQ(c.d_head, 64);
    EXPECT_EQ(c.d_ff, 1536);
    EXPECT_EQ(c.n_vocab, 49152);
    EXPECT_EQ(c.rope_theta, 100000.0);
    EXPECT_EQ(c.max_position_embeddings, 8192);
    EXPECT_TRUE(c.tie_word_embeddings);
    EXPECT_FALSE(c.qkv_bias);
    EXPECT_EQ(c.bos_token_id, 1);
    EXPECT_EQ(c.eos_token_ids, (std::vector<int64_t>{2}));
    EXPECT_NEAR(c.rms_norm_eps, 1e-5, 1e-12);

    const auto infos = src->tensors();
    EXPECT_EQ(infos.size(), 2u + 30u * 9u);
    EXPECT_FALSE(src->has_tensor("lm_head.weight"));
    const Tensor emb = src->load_f32("model.embed_tokens.weight");
    EXPECT_EQ(emb.shape(), (std::vector<int64_t>{49152, 576}));
    const Tensor k = src->load_f32("model.layers.0.self_attn.k_proj.weight");
    EXPECT_EQ(k.shape(), (std::vector<int64_t>{192, 576}));
    for (const auto& info : infos)
        if (info.name == "model.layers.0.self_attn.q_proj.weight") {
            EXPECT_EQ(info.shape, (std::vector<int64_t>{576, 576}));
            EXPECT_EQ(info.storage_type, "Q4_1");
        }
    // The un-permuted k rows are the stored rows reordered, nothing else.
    auto f = GgufFile::open(path);
    const auto raw = f->dequantize(*f->find_tensor("blk.0.attn_k.weight"));
    for (int64_t r = 0; r < 192; ++r) {
        const int64_t h = r / 64, hr = r % 64;
        const int64_t g = h * 64 + (hr < 32 ? 2 * hr : 2 * (hr - 32) + 1);
        ASSERT_EQ(std::memcmp(k.data() + r * 576, raw.data() + g * 576, 576 * 4), 0) << r;
    }
}

namespace {

const char* value_type_py_name(GgufValueType t) {
    switch (t) {
        case GgufValueType::U8: return "UINT8";
        case GgufValueType::I8: return "INT8";
        case GgufValueType::U16: return "UINT16";
        case GgufValueType::I16: return "INT16";
        case GgufValueType::U32: return "UINT32";
        case GgufValueType::I32: return "INT32";
        case GgufValueType::F32: return "FLOAT32";
        case GgufValueType::BOOL: return "BOOL";
        case GgufValueType::STRING: return "STRING";
        case GgufValueType::ARRAY: return "ARRAY";
        case GgufValueType::U64: return "UINT64";
        case GgufValueType::I64: return "INT64";
        case GgufValueType::F64: return "FLOAT64";
    }
    return "?";
}

bool is_float(GgufValueType t) {
    return t == GgufValueType::F32 || t == GgufValueType::F64;
}
bool is_signed(GgufValueType t) {
    return t == GgufValueType::I8 || t == GgufValueType::I16 || t == GgufValueType::I32 ||
           t == GgufValueType::I64;
}

// Compares one scalar value with its JSON form (numbers exactly, strings byte for byte).
void expect_scalar_eq(const std::string& key, const GgufValue& v, const nlohmann::json& j) {
    if (v.type == GgufValueType::STRING) {
        EXPECT_EQ(v.s, j.get<std::string>()) << key;
    } else if (v.type == GgufValueType::BOOL) {
        EXPECT_EQ(v.u != 0, j.get<bool>()) << key;
    } else if (is_float(v.type)) {
        EXPECT_EQ(v.f, j.get<double>()) << key;  // f32 widened exactly on both sides
    } else if (is_signed(v.type)) {
        EXPECT_EQ(v.i, j.get<int64_t>()) << key;
    } else {
        EXPECT_EQ(v.u, j.get<uint64_t>()) << key;
    }
}

// tests/reference/gguf_reference.py canonical_bytes(): strings u64 length + bytes, integers and
// bools i64, floats f64, all little-endian.
std::vector<uint8_t> canonical_bytes(const GgufValue& arr) {
    std::vector<uint8_t> out;
    auto put = [&](const void* p, size_t n) {
        const auto* b = static_cast<const uint8_t*>(p);
        out.insert(out.end(), b, b + n);
    };
    for (const auto& e : arr.array) {
        if (e.type == GgufValueType::STRING) {
            const uint64_t n = e.s.size();
            put(&n, 8);
            put(e.s.data(), e.s.size());
        } else if (is_float(e.type)) {
            put(&e.f, 8);
        } else {
            const int64_t x = is_signed(e.type) ? e.i : int64_t(e.u);
            put(&x, 8);
        }
    }
    return out;
}

}  // namespace

TEST(GgufReference, SmolLM2_MatchesGgufPy) {
    PALU_REQUIRE_SMOLLM2(path);
    std::ifstream jf(palu::test::source_root() / "tests/reference/smollm2_q4_1_gguf.json");
    ASSERT_TRUE(jf.good());
    const auto ref = nlohmann::json::parse(jf);
    auto f = GgufFile::open(path);

    EXPECT_EQ(f->version(), ref.at("header").at("version").get<uint32_t>());
    EXPECT_EQ(f->alignment(), ref.at("alignment").get<uint64_t>());
    EXPECT_EQ(f->data_offset(), ref.at("data_offset").get<uint64_t>());

    // Metadata: every key, in file order, with type and value.
    const auto& md = ref.at("metadata");
    ASSERT_EQ(f->keys().size(), md.size());
    EXPECT_EQ(md.size(), ref.at("header").at("kv_count").get<size_t>());
    for (size_t k = 0; k < md.size(); ++k) {
        const auto& e = md[k];
        const std::string key = e.at("key");
        SCOPED_TRACE(key);
        ASSERT_EQ(f->keys()[k], key);
        const GgufValue& v = *f->find(key);
        EXPECT_EQ(value_type_py_name(v.type), e.at("type").get<std::string>());
        if (v.type == GgufValueType::ARRAY) {
            EXPECT_EQ(value_type_py_name(v.array_type), e.at("array_type").get<std::string>());
            ASSERT_EQ(v.array.size(), e.at("length").get<size_t>());
            if (e.contains("values")) {
                for (size_t i = 0; i < v.array.size(); ++i)
                    expect_scalar_eq(key, v.array[i], e.at("values")[i]);
            } else {
                expect_scalar_eq(key, v.array.front(), e.at("first"));
                expect_scalar_eq(key, v.array.back(), e.at("last"));
                const auto cb = canonical_bytes(v);
                EXPECT_EQ(sha256_hex(std::string_view(reinterpret_cast<const char*>(cb.data()),
                                                      cb.size())),
                          e.at("sha256").get<std::string>());
            }
        } else if (e.contains("sha256")) {
            EXPECT_EQ(v.s.size(), e.at("length").get<size_t>());
            EXPECT_EQ(sha256_hex(v.s), e.at("sha256").get<std::string>());
        } else {
            expect_scalar_eq(key, v, e.at("value"));
        }
    }

    // Tensors: names, dims, types, offsets, sizes, and bit-exact dequantized values.
    const auto& ts = ref.at("tensors");
    ASSERT_EQ(f->tensor_infos().size(), ts.size());
    std::map<std::string, int> n_checked_by_type;
    for (size_t k = 0; k < ts.size(); ++k) {
        const auto& e = ts[k];
        const GgufTensorInfo& t = f->tensor_infos()[k];
        SCOPED_TRACE(t.name);
        ASSERT_EQ(t.name, e.at("name").get<std::string>());
        EXPECT_EQ(t.ne, e.at("ne").get<std::vector<int64_t>>());
        EXPECT_EQ(std::string(ggml_type_name(t.type)), e.at("type").get<std::string>());
        EXPECT_EQ(t.offset, e.at("offset").get<uint64_t>());
        EXPECT_EQ(t.n_bytes, e.at("n_bytes").get<uint64_t>());
        const auto y = f->dequantize(t);
        EXPECT_EQ(
            sha256_hex(std::string_view(reinterpret_cast<const char*>(y.data()), y.size() * 4)),
            e.at("f32_sha256").get<std::string>());
        ++n_checked_by_type[ggml_type_name(t.type)];
    }
    // The file holds F32 norms, a Q8_0 embedding and Q4_1 projections.
    EXPECT_EQ(n_checked_by_type,
              (std::map<std::string, int>{{"F32", 61}, {"Q4_1", 210}, {"Q8_0", 1}}));
}

// ---- fuzz seed corpus (tests/fuzz/corpus/gguf) --------------------------------------------------

namespace {

// Small, valid GGUF files covering every value type, every dequantizable tensor type, both
// versions and a complete tiny llama model. Deterministic (fixed seeds).
std::map<std::string, std::vector<uint8_t>> fuzz_seeds() {
    std::map<std::string, std::vector<uint8_t>> seeds;
    seeds["metadata_v3.gguf"] = writer_with_all_value_types(3).to_bytes();
    seeds["metadata_v2.gguf"] = writer_with_all_value_types(2).to_bytes();
    {
        GgufWriter w;
        w.set_alignment(64);
        const auto v = random_values(64, 11);
        for (auto t : {GgmlType::F32, GgmlType::F16, GgmlType::BF16, GgmlType::Q8_0, GgmlType::Q4_0,
                       GgmlType::Q4_1})
            w.add_tensor(std::string("t.") + ggml_type_name(t), {32, 2}, t, v);
        seeds["tensors_writer_types.gguf"] = w.to_bytes();
    }
    {
        // Other types from raw bytes (one block each; scale fields are whatever the bytes say).
        GgufWriter w;
        std::mt19937 rng(5);
        for (auto t : {GgmlType::Q5_0, GgmlType::Q5_1, GgmlType::Q4_K, GgmlType::Q5_K,
                       GgmlType::Q6_K, GgmlType::Q2_K}) {
            std::vector<uint8_t> b(ggml_type_size(t));
            for (auto& x : b) x = uint8_t(rng() & 0x3F);  // small halves, finite values
            w.add_tensor_raw(std::string("t.") + ggml_type_name(t), {ggml_block_size(t)}, t, b);
        }
        seeds["tensors_raw_types.gguf"] = w.to_bytes();
    }
    {
        TinyLlama c;
        c.d_model = 32, c.n_layers = 1, c.n_heads = 2, c.n_kv_heads = 1, c.d_head = 16;
        c.d_ff = 32, c.n_vocab = 8, c.weight_type = GgmlType::Q4_0;
        GgufWriter w;
        write_tiny_llama(w, c, 3);
        seeds["tiny_llama_q4_0.gguf"] = w.to_bytes();
    }
    return seeds;
}

}  // namespace

// The committed seeds are valid GGUF files; PALU_UPDATE_FUZZ_CORPUS=1 rewrites them.
TEST(GgufFuzzCorpus, SeedsAreCurrentAndParse) {
    const auto dir = palu::test::source_root() / "tests/fuzz/corpus/gguf";
    const char* update = std::getenv("PALU_UPDATE_FUZZ_CORPUS");
    for (const auto& [name, bytes] : fuzz_seeds()) {
        SCOPED_TRACE(name);
        EXPECT_LT(bytes.size(), 16384u);
        auto f = parse(bytes, name);
        for (const auto& t : f->tensor_infos())
            if (ggml_type_dequantizable(t.type)) f->dequantize(t);
        if (update && std::string(update) == "1") {
            std::ofstream(dir / name, std::ios::binary)
                .write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
            continue;
        }
        std::ifstream in(dir / name, std::ios::binary);
        ASSERT_TRUE(in.good()) << "missing seed " << (dir / name)
                               << "; run with PALU_UPDATE_FUZZ_CORPUS=1";
        // The committed seed parses (it may differ in bytes from today's output where another
        // standard library draws other random numbers).
        std::vector<uint8_t> committed((std::istreambuf_iterator<char>(in)), {});
        EXPECT_NO_THROW(parse(committed, name));
    }
    const auto tiny = fuzz_seeds().at("tiny_llama_q4_0.gguf");
    auto src = open_gguf_model(GgufFile::open_memory(tiny.data(), tiny.size(), "tiny"));
    EXPECT_EQ(src->config().d_model, 32);
}
