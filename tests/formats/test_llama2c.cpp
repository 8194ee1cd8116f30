// palu formats tests: llama2.c legacy checkpoints -> WeightSource (HF names, layout, rotate-half
// RoPE rows), header/size validation, and the real stories260K.bin.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <tuple>
#include <vector>

#include "llama2c_fixture.h"
#include "palu/core/error.h"
#include "palu/formats/llama2c.h"
#include "palu/formats/model_loader.h"
#include "test_data.h"

using namespace palu;
using namespace palu::formats;

namespace {

std::vector<float> slice(const std::vector<float>& v, int64_t begin, int64_t n) {
    return std::vector<float>(v.begin() + begin, v.begin() + begin + n);
}

// llama2.c run.c RoPE: pairs (2m, 2m+1) of each head rotate by pos * theta^(-2m/d_head).
void rope_interleaved(std::vector<float>& x, int64_t d_head, int pos) {
    for (size_t i = 0; i < x.size(); i += 2) {
        int64_t m = int64_t(i % size_t(d_head)) / 2;
        double a = pos * std::pow(10000.0, -2.0 * double(m) / double(d_head));
        double c = std::cos(a), s = std::sin(a);
        double v0 = x[i], v1 = x[i + 1];
        x[i] = float(v0 * c - v1 * s);
        x[i + 1] = float(v0 * s + v1 * c);
    }
}

// HF transformers rotate_half RoPE: (i, i + d_head/2) rotate by pos * theta^(-2i/d_head).
void rope_rotate_half(std::vector<float>& x, int64_t d_head, int pos) {
    const int64_t half = d_head / 2;
    for (size_t h0 = 0; h0 < x.size(); h0 += size_t(d_head))
        for (int64_t i = 0; i < half; ++i) {
            double a = pos * std::pow(10000.0, -2.0 * double(i) / double(d_head));
            double c = std::cos(a), s = std::sin(a);
            double v0 = x[h0 + i], v1 = x[h0 + i + half];
            x[h0 + i] = float(v0 * c - v1 * s);
            x[h0 + i + half] = float(v1 * c + v0 * s);
        }
}

std::vector<float> matvec(const float* w, int64_t n_out, int64_t n_in,
                          const std::vector<float>& x) {
    std::vector<float> y(size_t(n_out), 0.0f);
    for (int64_t r = 0; r < n_out; ++r) {
        double acc = 0;
        for (int64_t c = 0; c < n_in; ++c) acc += double(w[r * n_in + c]) * x[size_t(c)];
        y[size_t(r)] = float(acc);
    }
    return y;
}

}  // namespace

TEST(Llama2c, SyntheticTied_HfNamesShapesAndValues) {
    auto fx = test::make_llama2c_fixture(test::tiny_llama2c_header(true));
    auto m = Llama2cModel::from_bytes(fx.bytes, "tiny.bin");
    const ModelConfig& c = m->config();
    EXPECT_EQ(c.architecture, "llama");
    EXPECT_EQ(c.d_model, 16);
    EXPECT_EQ(c.d_ff, 24);
    EXPECT_EQ(c.n_layers, 2);
    EXPECT_EQ(c.n_heads, 4);
    EXPECT_EQ(c.n_kv_heads, 2);
    EXPECT_EQ(c.d_head, 4);
    EXPECT_EQ(c.n_vocab, 32);
    EXPECT_EQ(c.max_position_embeddings, 8);
    EXPECT_TRUE(c.tie_word_embeddings);
    EXPECT_EQ(c.rope_theta, 10000.0);
    EXPECT_EQ(c.rms_norm_eps, 1e-5);
    EXPECT_EQ(c.bos_token_id, 1);
    EXPECT_EQ(c.eos_token_ids, std::vector<int64_t>{2});
    EXPECT_EQ(m->format_name(), "llama2c");

    auto infos = m->tensors();
    ASSERT_EQ(infos.size(), size_t(1 + 2 * 9 + 1));
    for (size_t i = 1; i < infos.size(); ++i) EXPECT_LT(infos[i - 1].name, infos[i].name);
    EXPECT_FALSE(m->has_tensor("lm_head.weight"));
    for (const auto& ti : infos) EXPECT_EQ(ti.storage_type, "F32") << ti.name;

    auto expect_tensor = [&](const std::string& name, std::vector<int64_t> shape,
                             const std::vector<float>& want) {
        ASSERT_TRUE(m->has_tensor(name)) << name;
        Tensor t = m->load_f32(name);
        EXPECT_EQ(t.shape(), shape) << name;
        EXPECT_EQ(t.vec(), want) << name;
    };
    const auto& s = fx.sections;
    expect_tensor("model.embed_tokens.weight", {32, 16}, s.at("token_embedding"));
    expect_tensor("model.norm.weight", {16}, s.at("rms_final"));
    for (int l = 0; l < 2; ++l) {
        std::string p = "model.layers." + std::to_string(l) + ".";
        expect_tensor(p + "input_layernorm.weight", {16}, slice(s.at("rms_att"), l * 16, 16));
        expect_tensor(p + "post_attention_layernorm.weight", {16},
                      slice(s.at("rms_ffn"), l * 16, 16));
        expect_tensor(p + "self_attn.v_proj.weight", {8, 16}, slice(s.at("wv"), l * 128, 128));
        expect_tensor(p + "self_attn.o_proj.weight", {16, 16}, slice(s.at("wo"), l * 256, 256));
        expect_tensor(p + "mlp.gate_proj.weight", {24, 16}, slice(s.at("w1"), l * 384, 384));
        expect_tensor(p + "mlp.down_proj.weight", {16, 24}, slice(s.at("w2"), l * 384, 384));
        expect_tensor(p + "mlp.up_proj.weight", {24, 16}, slice(s.at("w3"), l * 384, 384));
        EXPECT_EQ(m->load_f32(p + "self_attn.q_proj.weight").shape(),
                  (std::vector<int64_t>{16, 16}));
        EXPECT_EQ(m->load_f32(p + "self_attn.k_proj.weight").shape(),
                  (std::vector<int64_t>{8, 16}));
    }
}

TEST(Llama2c, SyntheticUntied_ExposesLmHead) {
    auto fx = test::make_llama2c_fixture(test::tiny_llama2c_header(false));
    auto m = Llama2cModel::from_bytes(fx.bytes, "untied.bin");
    EXPECT_FALSE(m->config().tie_word_embeddings);
    EXPECT_EQ(m->config().n_vocab, 32);
    ASSERT_TRUE(m->has_tensor("lm_head.weight"));
    Tensor t = m->load_f32("lm_head.weight");
    EXPECT_EQ(t.shape(), (std::vector<int64_t>{32, 16}));
    EXPECT_EQ(t.vec(), fx.sections.at("wcls"));
    EXPECT_EQ(m->tensors().size(), size_t(1 + 2 * 9 + 2));
}

TEST(Llama2c, QkRows_AreRotateHalfPermutationOfInterleaved) {
    auto h = test::tiny_llama2c_header(true);
    auto fx = test::make_llama2c_fixture(h);
    auto m = Llama2cModel::from_bytes(fx.bytes, "tiny.bin");
    const int64_t dim = 16, d_head = 4, half = 2;
    for (int l = 0; l < 2; ++l) {
        for (auto [proj, sec, n_heads] :
             {std::tuple{"q_proj", "wq", int64_t(4)}, std::tuple{"k_proj", "wk", int64_t(2)}}) {
            Tensor t =
                m->load_f32("model.layers." + std::to_string(l) + ".self_attn." + proj + ".weight");
            const auto& orig = fx.sections.at(sec);
            const int64_t layer_off = l * n_heads * d_head * dim;
            for (int64_t hd = 0; hd < n_heads; ++hd)
                for (int64_t i = 0; i < half; ++i)
                    for (int64_t j = 0; j < 2; ++j)
                        for (int64_t c = 0; c < dim; ++c)
                            ASSERT_EQ(t.data()[(hd * d_head + j * half + i) * dim + c],
                                      orig[size_t(layer_off + (hd * d_head + 2 * i + j) * dim + c)])
                                << proj << " layer " << l << " head " << hd << " i " << i;
        }
    }
}

TEST(Llama2c, AttentionScores_SameUnderBothRopeConventions) {
    // q.k after llama2.c's interleaved RoPE on the stored rows equals q.k after HF's rotate-half
    // RoPE on the exposed rows, for every query head and its GQA key head.
    auto fx = test::make_llama2c_fixture(test::tiny_llama2c_header(true), 11);
    auto m = Llama2cModel::from_bytes(fx.bytes, "tiny.bin");
    const int64_t dim = 16, d_head = 4, n_heads = 4, n_kv = 2;
    std::vector<float> x(dim);
    for (int64_t i = 0; i < dim; ++i) x[size_t(i)] = float(std::sin(0.7 * double(i) + 0.3));
    Tensor wq_hf = m->load_f32("model.layers.1.self_attn.q_proj.weight");
    Tensor wk_hf = m->load_f32("model.layers.1.self_attn.k_proj.weight");
    const float* wq_l2c = fx.sections.at("wq").data() + dim * dim;
    const float* wk_l2c = fx.sections.at("wk").data() + n_kv * d_head * dim;
    for (auto [pq, pk] : {std::pair{5, 2}, std::pair{7, 0}, std::pair{3, 3}}) {
        auto q1 = matvec(wq_l2c, dim, dim, x), k1 = matvec(wk_l2c, n_kv * d_head, dim, x);
        auto q2 = matvec(wq_hf.data(), dim, dim, x),
             k2 = matvec(wk_hf.data(), n_kv * d_head, dim, x);
        rope_interleaved(q1, d_head, pq);
        rope_interleaved(k1, d_head, pk);
        rope_rotate_half(q2, d_head, pq);
        rope_rotate_half(k2, d_head, pk);
        for (int64_t hq = 0; hq < n_heads; ++hq) {
            int64_t hk = hq / (n_heads / n_kv);
            double s1 = 0, s2 = 0;
            for (int64_t d = 0; d < d_head; ++d) {
                s1 += double(q1[size_t(hq * d_head + d)]) * k1[size_t(hk * d_head + d)];
                s2 += double(q2[size_t(hq * d_head + d)]) * k2[size_t(hk * d_head + d)];
            }
            EXPECT_NEAR(s1, s2, 1e-5 * (1 + std::abs(s1))) << "head " << hq << " pos " << pq;
        }
    }
}

TEST(Llama2c, PermutationInverse_RoundTrips) {
    const int64_t n_heads = 3, d_head = 6, n_in = 5;
    std::vector<float> a(size_t(n_heads * d_head * n_in)), b(a.size()), c(a.size());
    for (size_t i = 0; i < a.size(); ++i) a[i] = float(i);
    llama2c_rows_to_rotate_half(a.data(), b.data(), n_heads, d_head, n_in);
    EXPECT_NE(a, b);
    rotate_half_rows_to_llama2c(b.data(), c.data(), n_heads, d_head, n_in);
    EXPECT_EQ(a, c);
}

TEST(Llama2c, OpenFromFile_EqualsFromBytes) {
    auto dir = test::make_temp_dir("llama2c");
    auto fx = test::make_llama2c_fixture(test::tiny_llama2c_header(false), 3);
    test::write_bytes(dir / "m.bin", fx.bytes);
    auto a = open_llama2c_model(dir / "m.bin");
    auto b = Llama2cModel::from_bytes(fx.bytes, "m.bin");
    EXPECT_EQ(a->path(), (dir / "m.bin").string());
    ASSERT_EQ(a->tensors().size(), b->tensors().size());
    for (const auto& ti : a->tensors())
        EXPECT_EQ(a->load_f32(ti.name).vec(), b->load_f32(ti.name).vec());
}

TEST(Llama2c, MissingFileAndTensor_Errors) {
    auto dir = test::make_temp_dir("llama2c");
    EXPECT_THROW(open_llama2c_model(dir / "nope.bin"), IoError);
    auto fx = test::make_llama2c_fixture(test::tiny_llama2c_header(true));
    auto m = Llama2cModel::from_bytes(fx.bytes, "tiny.bin");
    try {
        m->load_f32("lm_head.weight");
        FAIL() << "expected FormatError";
    } catch (const FormatError& e) {
        EXPECT_NE(std::string(e.what()).find("lm_head.weight"), std::string::npos) << e.what();
    }
}

// ---- corruption suite -------------------------------------------------------------------------

struct Llama2cCorruptionCase {
    std::string label;
    std::function<void(std::vector<uint8_t>&)> corrupt;
    std::vector<std::string> must_contain;
};

void set_field(std::vector<uint8_t>& b, int field, int32_t v) {
    std::memcpy(b.data() + 4 * field, &v, 4);
}

class Llama2cCorruption : public ::testing::TestWithParam<Llama2cCorruptionCase> {};

TEST_P(Llama2cCorruption, ThrowsFormatErrorNamingTheProblem) {
    auto fx = test::make_llama2c_fixture(test::tiny_llama2c_header(true));
    auto bytes = fx.bytes;
    GetParam().corrupt(bytes);
    // In memory and through a file: both validate before touching the tensor data.
    auto dir = test::make_temp_dir("llama2c_bad");
    test::write_bytes(dir / "bad.bin", bytes);
    for (int via_file = 0; via_file < 2; ++via_file) {
        try {
            if (via_file)
                open_llama2c_model(dir / "bad.bin");
            else
                Llama2cModel::from_bytes(bytes, "bad.bin");
            FAIL() << GetParam().label << ": expected FormatError";
        } catch (const FormatError& e) {
            std::string msg = e.what();
            EXPECT_NE(msg.find("bad.bin"), std::string::npos) << msg;
            for (const auto& s : GetParam().must_contain)
                EXPECT_NE(msg.find(s), std::string::npos) << "missing '" << s << "' in: " << msg;
        }
    }
}

// Tiny tied fixture: 28 + 4 * (512 + 32 + 512 + 256 + 256 + 512 + 32 + 3 * 768 + 16 + 16 + 16)
// = 17884 bytes; wq [2,16,16] occupies [2204, 4252), freq_cis_real [17756, 17820).
INSTANTIATE_TEST_SUITE_P(
    Llama2c, Llama2cCorruption,
    ::testing::Values(
        Llama2cCorruptionCase{
            "truncated_tail",
            [](auto& b) { b.resize(b.size() - 100); },
            {"truncated", "expected 17884 bytes, got 17784", "100 bytes missing",
             "'freq_cis_real' [8,2] at bytes [17756, 17820) is cut", "incomplete download"}},
        Llama2cCorruptionCase{
            "truncated_in_wq",
            [](auto& b) { b.resize(3000); },
            {"14884 bytes missing", "section 'wq' [2,16,16] at bytes [2204, 4252)"}},
        Llama2cCorruptionCase{"header_only",
                              [](auto& b) { b.resize(28); },
                              {"17856 bytes missing", "'token_embedding'"}},
        Llama2cCorruptionCase{"shorter_than_header",
                              [](auto& b) { b.resize(10); },
                              {"too small", "at least 28", "got 10"}},
        Llama2cCorruptionCase{"empty", [](auto& b) { b.clear(); }, {"too small", "got 0"}},
        Llama2cCorruptionCase{"trailing_bytes",
                              [](auto& b) { b.resize(b.size() + 12, 0); },
                              {"expected 17884 bytes, got 17896", "12 trailing bytes"}},
        Llama2cCorruptionCase{
            "zero_dim", [](auto& b) { set_field(b, 0, 0); }, {"field dim", "got 0"}},
        Llama2cCorruptionCase{
            "negative_layers", [](auto& b) { set_field(b, 2, -3); }, {"field n_layers", "got -3"}},
        Llama2cCorruptionCase{
            "zero_hidden", [](auto& b) { set_field(b, 1, 0); }, {"field hidden_dim", "got 0"}},
        Llama2cCorruptionCase{
            "zero_vocab", [](auto& b) { set_field(b, 5, 0); }, {"field |vocab_size|", "got 0"}},
        Llama2cCorruptionCase{"int_min_vocab",
                              [](auto& b) { set_field(b, 5, INT32_MIN); },
                              {"field |vocab_size|", "got 2147483648"}},
        Llama2cCorruptionCase{
            "negative_seq_len", [](auto& b) { set_field(b, 6, -1); }, {"field seq_len", "got -1"}},
        Llama2cCorruptionCase{"heads_not_dividing_dim",
                              [](auto& b) { set_field(b, 3, 3); },
                              {"dim=16 is not a multiple of n_heads=3"}},
        Llama2cCorruptionCase{"kv_heads_not_dividing_heads",
                              [](auto& b) { set_field(b, 4, 3); },
                              {"n_heads=4 is not a multiple of n_kv_heads=3"}},
        Llama2cCorruptionCase{"kv_heads_above_heads",
                              [](auto& b) { set_field(b, 4, 8); },
                              {"field n_kv_heads", "expected 1..4, got 8"}},
        Llama2cCorruptionCase{"odd_head_size",
                              [](auto& b) { set_field(b, 3, 16); },
                              {"head size dim/n_heads=1 must be even"}},
        Llama2cCorruptionCase{"huge_dim",
                              [](auto& b) { set_field(b, 0, 1 << 20); },
                              {"field dim", "expected 1..65536, got 1048576"}},
        Llama2cCorruptionCase{"huge_all",
                              [](auto& b) {
                                  set_field(b, 0, 65536);
                                  set_field(b, 1, 1 << 20);
                                  set_field(b, 2, 1024);
                                  set_field(b, 5, -(1 << 22));
                                  set_field(b, 6, 1 << 22);
                              },
                              {"truncated", "bytes missing", "dim=65536"}},
        Llama2cCorruptionCase{"huge_layers",
                              [](auto& b) { set_field(b, 2, 100000); },
                              {"field n_layers", "expected 1..1024, got 100000"}},
        Llama2cCorruptionCase{"v1_magic",
                              [](auto& b) {
                                  set_field(b, 0,
                                            0x616b3432);  // uint32 "ak42" as export.py writes it
                                  set_field(b, 1, 1);
                              },
                              {"export version 1", "legacy v0", "--version 0"}}),
    [](const auto& info) { return info.param.label; });

// ---- real data --------------------------------------------------------------------------------

TEST(Llama2c, Stories260K_OpensWithRightConfig_Data) {
    PALU_REQUIRE_DATA(bin, "models/stories260K/stories260K.bin");
    auto m = open_llama2c_model(bin);
    const ModelConfig& c = m->config();
    EXPECT_EQ(c.d_model, 64);
    EXPECT_EQ(c.d_ff, 172);
    EXPECT_EQ(c.n_layers, 5);
    EXPECT_EQ(c.n_heads, 8);
    EXPECT_EQ(c.n_kv_heads, 4);
    EXPECT_EQ(c.d_head, 8);
    EXPECT_EQ(c.n_vocab, 512);
    EXPECT_EQ(c.max_position_embeddings, 512);
    EXPECT_TRUE(c.tie_word_embeddings);
    EXPECT_EQ(m->tensors().size(), size_t(1 + 5 * 9 + 1));
    EXPECT_EQ(m->load_f32("model.layers.4.self_attn.k_proj.weight").shape(),
              (std::vector<int64_t>{32, 64}));
    // freq_cis_real row 1 is cos(theta^(-2i/d_head)) for theta = 10000: the file agrees with the
    // rope_theta we report.
    const auto& L = static_cast<const Llama2cModel&>(*m).layout();
    EXPECT_EQ(L.expected_file_size, uint64_t(1056540));
    std::ifstream f(bin, std::ios::binary);
    for (const auto& s : L.sections)
        if (s.name == "freq_cis_real") {
            std::vector<float> row(4);
            f.seekg(std::streamoff(s.offset + 4 * sizeof(float)));
            f.read(reinterpret_cast<char*>(row.data()), 16);
            for (int i = 0; i < 4; ++i)
                EXPECT_NEAR(row[size_t(i)], std::cos(std::pow(10000.0, -2.0 * i / 8.0)), 1e-6);
        }
}

// ---- fuzz seed corpus -------------------------------------------------------------------------

TEST(Llama2c, FuzzSeedCorpus_ParsesOrRegenerates) {
    // PALU_UPDATE_FUZZ_CORPUS=1 rewrites tests/fuzz/corpus/llama2c/ from the synthetic fixture;
    // otherwise every committed seed must still be a valid checkpoint.
    // The test binary is compiled with the source dir (test_support may not be, under ctest).
    auto dir = std::filesystem::path(PALU_SOURCE_DIR) / "tests" / "fuzz" / "corpus" / "llama2c";
    const char* upd = std::getenv("PALU_UPDATE_FUZZ_CORPUS");
    if (upd && std::string(upd) == "1") {
        std::filesystem::create_directories(dir);
        formats::Llama2cHeader tied{8, 12, 1, 2, 1, 16, 4}, untied{8, 12, 2, 4, 2, -16, 2};
        test::write_bytes(dir / "seed_tied.bin", test::make_llama2c_fixture(tied, 1).bytes);
        test::write_bytes(dir / "seed_untied_gqa.bin", test::make_llama2c_fixture(untied, 2).bytes);
    }
    ASSERT_TRUE(std::filesystem::is_directory(dir)) << dir;
    int n = 0;
    for (const auto& e : std::filesystem::directory_iterator(dir)) {
        EXPECT_NO_THROW(open_llama2c_model(e.path())) << e.path();
        ++n;
    }
    EXPECT_GE(n, 2);
}
