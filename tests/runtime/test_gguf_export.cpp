// palu-export --to gguf (pipeline::export_gguf), hermetic: the deepseek2 metadata of a dense MLA
// model, tensor names / shapes / values (attn_k_b and attn_v_b put back together give kv_b_proj
// exactly), the llama2.c and tokenizer.gguf vocabularies, F16 storage, and bad input (one typed
// error, nothing left on disk). Read back with palu's GGUF reader.
#include <gtest/gtest.h>

#include <cmath>

#include "mla_fixture.h"
#include "palu/calib/tokenizer.h"
#include "palu/core/error.h"
#include "palu/formats/gguf.h"
#include "palu/formats/gguf_writer.h"
#include "palu/formats/model_loader.h"
#include "palu/pipeline/export.h"
#include "test_data.h"
#include "tiny_model.h"

namespace palu::pipeline {
namespace {

namespace fs = std::filesystem;
using formats::GgmlType;
using formats::GgufFile;

const std::vector<std::string> kPieces = {" t", "he", " a", " s", " the", "ed", " to"};

// An MLA checkpoint with a llama2.c tok<n_vocab>.bin (n_vocab = 259 + pieces, padded to 300).
fs::path make_mla_dir(const std::string& tag, const test::TinyMlaConfig& t = {}) {
    const fs::path dir = test::make_temp_dir(tag) / "mla";
    test::write_tiny_mla_checkpoint(dir, t);
    test::write_llama2c_tokenizer(dir / ("tok" + std::to_string(t.n_vocab) + ".bin"), kPieces);
    return dir;
}

std::vector<std::string> dir_entries(const fs::path& dir) {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename().string());
    std::sort(out.begin(), out.end());
    return out;
}

template <typename F>
std::string error_of(F&& f) {
    try {
        f();
    } catch (const UsageError& e) {
        return e.what();
    }
    return "(no UsageError)";
}

TEST(GgufExport, Metadata_Deepseek2DenseKeys) {
    const test::TinyMlaConfig t;
    const fs::path dir = make_mla_dir("gguf_meta", t);
    const fs::path out = dir.parent_path() / "model.gguf";
    const GgufExportResult r = export_gguf(*formats::open_model(dir.string()), out);
    EXPECT_EQ(r.n_tokens, 259 + static_cast<int64_t>(kPieces.size()));
    auto g = GgufFile::open(out);
    EXPECT_EQ(g->get_string("general.architecture"), "deepseek2");
    EXPECT_EQ(g->get_int("general.file_type"), 0);
    const std::string a = "deepseek2.";
    EXPECT_EQ(g->get_int(a + "block_count"), t.n_layers);
    EXPECT_EQ(g->get_int(a + "context_length"), 1024);
    EXPECT_EQ(g->get_int(a + "embedding_length"), t.d_model);
    EXPECT_EQ(g->get_int(a + "feed_forward_length"), t.d_ff);
    EXPECT_EQ(g->get_int(a + "attention.head_count"), t.n_heads);
    EXPECT_EQ(g->get_int(a + "attention.head_count_kv"), 1);
    EXPECT_DOUBLE_EQ(g->get_float(a + "rope.freq_base"), 10000.0);
    EXPECT_NEAR(g->get_float(a + "attention.layer_norm_rms_epsilon"), 1e-6, 1e-12);
    EXPECT_EQ(g->get_int(a + "vocab_size"), t.n_vocab);
    EXPECT_EQ(g->get_int(a + "attention.q_lora_rank"), 0);
    EXPECT_EQ(g->get_int(a + "attention.kv_lora_rank"), t.kv_lora_rank);
    EXPECT_EQ(g->get_int(a + "attention.key_length"), t.kv_lora_rank + t.qk_rope);
    EXPECT_EQ(g->get_int(a + "attention.value_length"), t.kv_lora_rank);
    EXPECT_EQ(g->get_int(a + "attention.key_length_mla"), t.qk_nope + t.qk_rope);
    EXPECT_EQ(g->get_int(a + "attention.value_length_mla"), t.v_head);
    EXPECT_EQ(g->get_int(a + "rope.dimension_count"), t.qk_rope);
    EXPECT_EQ(g->get_int(a + "leading_dense_block_count"), t.n_layers);
    EXPECT_EQ(g->get_int(a + "expert_feed_forward_length"), t.d_ff);
    EXPECT_EQ(g->get_int(a + "expert_shared_count"), 0);
    EXPECT_EQ(g->find(a + "expert_count"), nullptr);
}

TEST(GgufExport, Tensors_NamesShapesValuesAndKvBSplit) {
    const test::TinyMlaConfig t;
    const fs::path dir = make_mla_dir("gguf_tensors", t);
    const fs::path out = dir.parent_path() / "model.gguf";
    auto src = formats::open_model(dir.string());
    const GgufExportResult r = export_gguf(*src, out);
    auto g = GgufFile::open(out);
    const int64_t n_h = t.n_heads, r_kv = t.kv_lora_rank, d = t.d_model;
    const int64_t nope = t.qk_nope, rope = t.qk_rope, dv = t.v_head, dqk = nope + rope;
    std::vector<std::pair<std::string, std::vector<int64_t>>> want = {
        {"token_embd.weight", {d, t.n_vocab}},
        {"output_norm.weight", {d}},
        {"output.weight", {d, t.n_vocab}}};
    for (int l = 0; l < t.n_layers; ++l) {
        const std::string b = "blk." + std::to_string(l) + ".";
        want.push_back({b + "attn_norm.weight", {d}});
        want.push_back({b + "attn_q.weight", {d, n_h * dqk}});
        want.push_back({b + "attn_kv_a_mqa.weight", {d, r_kv + rope}});
        want.push_back({b + "attn_kv_a_norm.weight", {r_kv}});
        want.push_back({b + "attn_k_b.weight", {nope, r_kv, n_h}});
        want.push_back({b + "attn_v_b.weight", {r_kv, dv, n_h}});
        want.push_back({b + "attn_output.weight", {n_h * dv, d}});
        want.push_back({b + "ffn_norm.weight", {d}});
        want.push_back({b + "ffn_gate.weight", {d, t.d_ff}});
        want.push_back({b + "ffn_up.weight", {d, t.d_ff}});
        want.push_back({b + "ffn_down.weight", {t.d_ff, d}});
    }
    ASSERT_EQ(g->tensor_infos().size(), want.size());
    EXPECT_EQ(r.n_tensors, static_cast<int64_t>(want.size()));
    for (const auto& [name, ne] : want) {
        const auto* info = g->find_tensor(name);
        ASSERT_NE(info, nullptr) << name;
        EXPECT_EQ(info->ne, ne) << name;
        EXPECT_EQ(info->type, GgmlType::F32) << name;
    }
    // Copied tensors: the HF bytes unchanged (rope_interleave true: no permutation).
    auto same = [&](const std::string& gguf_name, const std::string& hf_name) {
        const std::vector<float> got = g->dequantize(*g->find_tensor(gguf_name));
        const Tensor hf = src->load_f32(hf_name);
        ASSERT_EQ(static_cast<int64_t>(got.size()), hf.numel()) << gguf_name;
        EXPECT_EQ(0, std::memcmp(got.data(), hf.data(), got.size() * sizeof(float))) << gguf_name;
    };
    same("token_embd.weight", "model.embed_tokens.weight");
    same("output.weight", "lm_head.weight");
    same("blk.1.attn_q.weight", "model.layers.1.self_attn.q_proj.weight");
    same("blk.1.attn_kv_a_mqa.weight", "model.layers.1.self_attn.kv_a_proj_with_mqa.weight");
    same("blk.0.ffn_down.weight", "model.layers.0.mlp.down_proj.weight");
    // kv_b_proj [H·(nope + v), r] back from k_b ne [nope, r, H] (element (i, j, h) at
    // (h·r + j)·nope + i) and v_b ne [r, v, H] (element (j, i, h) at (h·v + i)·r + j).
    for (int l = 0; l < t.n_layers; ++l) {
        const std::string b = "blk." + std::to_string(l) + ".";
        const auto k_b = g->dequantize(*g->find_tensor(b + "attn_k_b.weight"));
        const auto v_b = g->dequantize(*g->find_tensor(b + "attn_v_b.weight"));
        const Tensor kv_b =
            src->load_f32("model.layers." + std::to_string(l) + ".self_attn.kv_b_proj.weight");
        int64_t n_diff = 0;
        for (int64_t h = 0; h < n_h; ++h)
            for (int64_t j = 0; j < r_kv; ++j) {
                for (int64_t i = 0; i < nope; ++i)
                    n_diff += k_b[(h * r_kv + j) * nope + i] !=
                              kv_b.data()[(h * (nope + dv) + i) * r_kv + j];
                for (int64_t i = 0; i < dv; ++i)
                    n_diff += v_b[(h * dv + i) * r_kv + j] !=
                              kv_b.data()[(h * (nope + dv) + nope + i) * r_kv + j];
            }
        EXPECT_EQ(n_diff, 0) << "layer " << l;
    }
}

TEST(GgufExport, Llama2cVocab_SentencePieceSpelling) {
    const fs::path dir = make_mla_dir("gguf_vocab");
    const fs::path out = dir.parent_path() / "model.gguf";
    export_gguf(*formats::open_model(dir.string()), out);
    auto g = GgufFile::open(out);
    EXPECT_EQ(g->get_string("tokenizer.ggml.model"), "llama");
    const auto tokens = g->get_string_array("tokenizer.ggml.tokens");
    const auto types = g->get_int_array("tokenizer.ggml.token_type");
    const auto scores = g->get_float_array("tokenizer.ggml.scores");
    ASSERT_EQ(tokens.size(), 300u);  // 266 pieces padded to vocab_size
    ASSERT_EQ(types.size(), 300u);
    ASSERT_EQ(scores.size(), 300u);
    EXPECT_EQ(tokens[0], "<unk>");
    EXPECT_EQ(types[0], 2);
    EXPECT_EQ(tokens[1], "<s>");
    EXPECT_EQ(types[1], 3);
    EXPECT_EQ(tokens[2], "</s>");
    EXPECT_EQ(types[2], 3);
    EXPECT_EQ(tokens[3], "<0x00>");
    EXPECT_EQ(types[3], 6);
    EXPECT_EQ(tokens[258], "<0xFF>");
    EXPECT_EQ(types[258], 6);
    EXPECT_EQ(tokens[259], "\xE2\x96\x81t");  // " t" spelled "▁t"
    EXPECT_EQ(types[259], 1);
    EXPECT_FLOAT_EQ(scores[260], -2.0f);
    EXPECT_EQ(tokens[263], "\xE2\x96\x81the");
    EXPECT_EQ(tokens[299], "[PAD299]");
    EXPECT_EQ(types[299], 5);
    EXPECT_EQ(g->get_int("tokenizer.ggml.bos_token_id"), 1);
    EXPECT_EQ(g->get_int("tokenizer.ggml.eos_token_id"), 2);
    EXPECT_EQ(g->get_int("tokenizer.ggml.unknown_token_id"), 0);
}

TEST(GgufExport, TokenizerGguf_KeysCopied) {
    const test::TinyMlaConfig t;
    const fs::path dir = test::make_temp_dir("gguf_tokgguf") / "mla";
    test::write_tiny_mla_checkpoint(dir, t);
    formats::GgufWriter w;
    std::vector<std::string> toks;
    for (int i = 0; i < t.n_vocab; ++i) toks.push_back("t" + std::to_string(i));
    w.set("general.architecture", formats::gguf_str("llama"));
    w.set("tokenizer.ggml.model", formats::gguf_str("gpt2"));
    w.set("tokenizer.ggml.pre", formats::gguf_str("smollm"));
    w.set("tokenizer.ggml.tokens", formats::gguf_str_array(toks));
    w.set("tokenizer.ggml.merges", formats::gguf_str_array({"t 1", "t 2"}));
    w.set("tokenizer.ggml.bos_token_id", formats::gguf_u32(5));
    w.write(dir / "tokenizer.gguf");
    const fs::path out = dir.parent_path() / "model.gguf";
    export_gguf(*formats::open_model(dir.string()), out);
    auto g = GgufFile::open(out);
    EXPECT_EQ(g->get_string("general.architecture"), "deepseek2");
    EXPECT_EQ(g->get_string("tokenizer.ggml.model"), "gpt2");
    EXPECT_EQ(g->get_string("tokenizer.ggml.pre"), "smollm");
    EXPECT_EQ(g->get_string_array("tokenizer.ggml.tokens"), toks);
    EXPECT_EQ(g->get_string_array("tokenizer.ggml.merges").size(), 2u);
    EXPECT_EQ(g->get_int("tokenizer.ggml.bos_token_id"), 5);
}

TEST(GgufExport, SentencePieceModel_PiecesTypesIds_Data) {
    PALU_REQUIRE_DATA(sp_model, "models/tok105/tok105.model");
    test::TinyMlaConfig t;
    t.n_vocab = 105;
    const fs::path dir = test::make_temp_dir("gguf_spm") / "mla";
    test::write_tiny_mla_checkpoint(dir, t);
    fs::copy_file(sp_model, dir / "tokenizer.model");
    const fs::path out = dir.parent_path() / "model.gguf";
    const GgufExportResult r = export_gguf(*formats::open_model(dir.string()), out);
    EXPECT_EQ(r.n_tokens, 105);
    const calib::SentencePieceVocab sp = calib::read_sentencepiece_vocab(sp_model);
    auto g = GgufFile::open(out);
    EXPECT_EQ(g->get_string("tokenizer.ggml.model"), "llama");
    EXPECT_EQ(g->get_string_array("tokenizer.ggml.tokens"), sp.pieces);
    const auto types = g->get_int_array("tokenizer.ggml.token_type");
    ASSERT_EQ(types.size(), sp.types.size());
    for (size_t i = 0; i < types.size(); ++i) EXPECT_EQ(types[i], sp.types[i]) << i;
    EXPECT_EQ(types[static_cast<size_t>(sp.unk_id)], 2);
    EXPECT_EQ(g->get_int("tokenizer.ggml.bos_token_id"), sp.bos_id);
    EXPECT_EQ(g->get_int("tokenizer.ggml.eos_token_id"), sp.eos_id);
}

TEST(GgufExport, TiedAndF16_NoOutputTensorHalfWeights) {
    test::TinyMlaConfig t;
    t.tie_word_embeddings = true;
    const fs::path dir = make_mla_dir("gguf_tied", t);
    const fs::path out = dir.parent_path() / "model.gguf";
    GgufExportOptions o;
    o.dtype = DType::F16;
    export_gguf(*formats::open_model(dir.string()), out, o);
    auto g = GgufFile::open(out);
    EXPECT_EQ(g->find_tensor("output.weight"), nullptr);  // llama.cpp falls back to token_embd
    EXPECT_EQ(g->get_int("general.file_type"), 1);
    EXPECT_EQ(g->find_tensor("token_embd.weight")->type, GgmlType::F16);
    EXPECT_EQ(g->find_tensor("blk.0.attn_k_b.weight")->type, GgmlType::F16);
    EXPECT_EQ(g->find_tensor("blk.0.attn_kv_a_norm.weight")->type, GgmlType::F32);
    EXPECT_EQ(g->find_tensor("output_norm.weight")->type, GgmlType::F32);
}

TEST(GgufExport, RotateHalfRope_InterleavedOnExport) {
    test::TinyMlaConfig t;
    t.rope_interleave = false;
    const fs::path dir = make_mla_dir("gguf_rope", t);
    const fs::path out = dir.parent_path() / "model.gguf";
    auto src = formats::open_model(dir.string());
    export_gguf(*src, out);
    auto g = GgufFile::open(out);
    const auto kv_a = g->dequantize(*g->find_tensor("blk.0.attn_kv_a_mqa.weight"));
    const Tensor hf = src->load_f32("model.layers.0.self_attn.kv_a_proj_with_mqa.weight");
    const int64_t d = t.d_model, r = t.kv_lora_rank, half = t.qk_rope / 2;
    for (int64_t i = 0; i < half; ++i)
        for (int64_t c = 0; c < d; ++c) {
            // rotate-half row i -> pair row 2i, row half + i -> 2i + 1 (latent rows unchanged)
            ASSERT_EQ(kv_a[(r + 2 * i) * d + c], hf.data()[(r + i) * d + c]);
            ASSERT_EQ(kv_a[(r + 2 * i + 1) * d + c], hf.data()[(r + half + i) * d + c]);
        }
    EXPECT_EQ(0, std::memcmp(kv_a.data(), hf.data(), static_cast<size_t>(r * d) * 4));
}

TEST(GgufExport, BadInput_OneErrorNothingOnDisk) {
    const fs::path root = test::make_temp_dir("gguf_bad");
    const fs::path out = root / "out" / "model.gguf";
    fs::create_directories(out.parent_path());
    // A dense Llama checkpoint.
    test::write_tiny_checkpoint(root / "dense");
    EXPECT_NE(error_of([&] { export_gguf(*formats::open_model((root / "dense").string()), out); })
                  .find("--to gguf needs an MLA checkpoint; make one with palu-compress --layout "
                        "mla"),
              std::string::npos);
    // No tokenizer.
    test::write_tiny_mla_checkpoint(root / "notok");
    EXPECT_NE(error_of([&] {
                  export_gguf(*formats::open_model((root / "notok").string()), out);
              }).find("has no tokenizer"),
              std::string::npos);
    // tokenizer.json only: not converted (yet).
    test::write_tiny_mla_checkpoint(root / "hftok");
    std::ofstream(root / "hftok" / "tokenizer.json") << "{}";
    EXPECT_NE(error_of([&] {
                  export_gguf(*formats::open_model((root / "hftok").string()), out);
              }).find("cannot convert tokenizer.json"),
              std::string::npos);
    // Unsupported dtype.
    const fs::path mla = make_mla_dir("gguf_bad_mla");
    GgufExportOptions i8;
    i8.dtype = DType::I8;
    EXPECT_NE(error_of([&] {
                  export_gguf(*formats::open_model(mla.string()), out, i8);
              }).find("--dtype I8 is not supported by --to gguf"),
              std::string::npos);
    EXPECT_TRUE(dir_entries(out.parent_path()).empty());
    // An existing file is kept without --overwrite, replaced with it.
    std::ofstream(out) << "keep";
    EXPECT_NE(error_of([&] {
                  export_gguf(*formats::open_model(mla.string()), out);
              }).find("already exists"),
              std::string::npos);
    EXPECT_EQ(fs::file_size(out), 4u);
    GgufExportOptions ow;
    ow.overwrite = true;
    export_gguf(*formats::open_model(mla.string()), out, ow);
    EXPECT_GT(fs::file_size(out), 4u);
    EXPECT_EQ(dir_entries(out.parent_path()), std::vector<std::string>{"model.gguf"});
}

}  // namespace
}  // namespace palu::pipeline
