// palu pipeline tests: the compressed checkpoint writer (layout, config keys, byte-exact copies,
// factor dtypes, atomic directory, refusals), config_json_for round trips, the dense export and
// the tokenizer that travels with both (checkpoint.h, docs/checkpoint.md).
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "palu/calib/tokenizer.h"
#include "palu/compress/decompose.h"
#include "palu/core/error.h"
#include "palu/core/format.h"
#include "palu/formats/gguf.h"
#include "palu/formats/gguf_writer.h"
#include "palu/formats/hf_config.h"
#include "palu/formats/hf_model.h"
#include "palu/formats/model_loader.h"
#include "palu/formats/palu_checkpoint.h"
#include "palu/formats/safetensors.h"
#include "palu/pipeline/export.h"
#include "palu/pipeline/write.h"
#include "test_data.h"
#include "tiny_model.h"

namespace palu::test {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using pipeline::CompressedLayer;

// Palu blocks that tell runs apart (by their source path) or set one field.
formats::PaluBlock run_block(int run) {
    formats::PaluBlock b;
    b.source_model.path = "run " + std::to_string(run);
    return b;
}
formats::PaluBlock group_block(int64_t s) {
    formats::PaluBlock b;
    b.group_size = s;
    return b;
}
formats::PaluBlock block_with_version(int v) {
    formats::PaluBlock b;
    b.format_version = v;
    return b;
}

std::string kv_prefix(int64_t l, char which) {
    return strfmt("model.layers.%lld.self_attn.%c_proj", static_cast<long long>(l), which);
}

// Plain-SVD factors of every k_proj / v_proj at `rank` per group of `group_size` KV heads.
std::vector<CompressedLayer> make_factors(const WeightSource& src, int64_t group_size,
                                          int64_t rank) {
    const ModelConfig& c = src.config();
    std::vector<CompressedLayer> layers(static_cast<size_t>(c.n_layers));
    const std::vector<int64_t> ranks(static_cast<size_t>(c.n_kv_heads / group_size), rank);
    for (int64_t l = 0; l < c.n_layers; ++l) {
        for (char which : {'k', 'v'}) {
            const std::string p = kv_prefix(l, which);
            const Tensor w = src.load_f32(p + ".weight");  // [n_kv·d_head, d_model]
            RowMatrixXf wm = Eigen::Map<const RowMatrixXf>(w.data(), w.dim(0), w.dim(1));
            Tensor b;
            if (src.has_tensor(p + ".bias")) b = src.load_f32(p + ".bias");
            auto kv = compress::decompose_projection(wm, b.span(), ranks, c.d_head, group_size,
                                                     compress::DecomposeMethod::Plain, nullptr, p);
            (which == 'k' ? layers[l].k : layers[l].v) = std::move(kv);
        }
    }
    return layers;
}

void expect_same_config(const ModelConfig& a, const ModelConfig& b) {
    EXPECT_EQ(a.architecture, b.architecture);
    EXPECT_EQ(a.d_model, b.d_model);
    EXPECT_EQ(a.n_layers, b.n_layers);
    EXPECT_EQ(a.n_heads, b.n_heads);
    EXPECT_EQ(a.n_kv_heads, b.n_kv_heads);
    EXPECT_EQ(a.d_head, b.d_head);
    EXPECT_EQ(a.d_ff, b.d_ff);
    EXPECT_EQ(a.n_vocab, b.n_vocab);
    EXPECT_EQ(a.max_position_embeddings, b.max_position_embeddings);
    EXPECT_EQ(a.rms_norm_eps, b.rms_norm_eps);
    EXPECT_EQ(a.rope_theta, b.rope_theta);
    EXPECT_EQ(a.rope_scaling.type, b.rope_scaling.type);
    EXPECT_EQ(a.rope_scaling.factor, b.rope_scaling.factor);
    EXPECT_EQ(a.rope_scaling.low_freq_factor, b.rope_scaling.low_freq_factor);
    EXPECT_EQ(a.rope_scaling.high_freq_factor, b.rope_scaling.high_freq_factor);
    EXPECT_EQ(a.rope_scaling.original_max_position_embeddings,
              b.rope_scaling.original_max_position_embeddings);
    EXPECT_EQ(a.tie_word_embeddings, b.tie_word_embeddings);
    EXPECT_EQ(a.qkv_bias, b.qkv_bias);
    EXPECT_EQ(a.o_bias, b.o_bias);
    EXPECT_EQ(a.mlp_bias, b.mlp_bias);
    EXPECT_EQ(a.bos_token_id, b.bos_token_id);
    EXPECT_EQ(a.eos_token_ids, b.eos_token_ids);
}

std::string read_file(const fs::path& p) {
    std::ifstream f(p, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

// Every entry of `dir` (names), for "nothing left behind" checks.
std::vector<std::string> listing(const fs::path& dir) {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename().string());
    std::sort(out.begin(), out.end());
    return out;
}

// Every tensor of `src_ckpt` (except dense k/v) is in `out` with the same dtype, shape and bytes.
void expect_copied_bit_identical(const formats::SafetensorsCheckpoint& src,
                                 const formats::SafetensorsCheckpoint& out, size_t* n_checked) {
    for (const auto& e : src.tensors()) {
        const std::string& n = e.info->name;
        if (n.find(".self_attn.k_proj.") != std::string::npos ||
            n.find(".self_attn.v_proj.") != std::string::npos)
            continue;
        const auto* o = out.find(n);
        ASSERT_NE(o, nullptr) << n;
        EXPECT_EQ(o->info->dtype, e.info->dtype) << n;
        EXPECT_EQ(o->info->shape, e.info->shape) << n;
        const auto a = e.file->bytes(*e.info);
        const auto b = o->file->bytes(*o->info);
        ASSERT_EQ(a.size(), b.size()) << n;
        EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size()), 0) << n;
        ++*n_checked;
    }
}

// The f32 values of a stored tensor equal `m` exactly.
void expect_tensor_equals(const WeightSource& s, const std::string& name, const float* m,
                          int64_t n) {
    const Tensor t = s.load_f32(name);
    ASSERT_EQ(t.numel(), n) << name;
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(t.data()[i], m[i]) << name << " element " << i;
}

double rel_frobenius(const RowMatrixXf& a, const RowMatrixXf& ref) {
    return (a.cast<double>() - ref.cast<double>()).norm() / ref.cast<double>().norm();
}

RowMatrixXf load_matrix(const WeightSource& s, const std::string& name) {
    const Tensor t = s.load_f32(name);
    return Eigen::Map<const RowMatrixXf>(t.data(), t.dim(0), t.numel() / t.dim(0));
}

// Removes a test's temporary directory at scope exit (the SmolLM2 outputs are ~1 GB).
struct RemoveAtExit {
    fs::path path;
    ~RemoveAtExit() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
};

const char* kSample = "Once upon a time, there was a little girl named Lily. She liked cats!";

// ---------------------------------------------------------------- config_json_for

TEST(ConfigJsonFor, RoundTripsStories260K_Data) {
    PALU_REQUIRE_DATA(bin, "models/stories260K/stories260K.bin");
    auto src = formats::open_model(bin);
    const json j = formats::hf_config_json(src->config(), "float32");
    expect_same_config(formats::parse_hf_config(j, "generated").model, src->config());
    EXPECT_EQ(j["model_type"], "llama");
    EXPECT_EQ(j["architectures"], json::array({"LlamaForCausalLM"}));
    EXPECT_EQ(j["attention_bias"], false);
    EXPECT_EQ(j["hidden_act"], "silu");
    EXPECT_EQ(j["torch_dtype"], "float32");
    EXPECT_TRUE(j["rope_scaling"].is_null());
    for (const char* k :
         {"hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
          "num_key_value_heads", "head_dim", "vocab_size", "max_position_embeddings",
          "rms_norm_eps", "rope_theta", "tie_word_embeddings", "bos_token_id", "eos_token_id"})
        EXPECT_TRUE(j.contains(k)) << k;
}

TEST(ConfigJsonFor, RoundTripsQwen2WithBiasesAndLlama3Rope) {
    ModelConfig c;
    c.architecture = "qwen2";
    c.d_model = 896;
    c.n_layers = 24;
    c.n_heads = 14;
    c.n_kv_heads = 2;
    c.d_head = 64;
    c.d_ff = 4864;
    c.n_vocab = 151936;
    c.max_position_embeddings = 32768;
    c.rms_norm_eps = 1e-6;
    c.rope_theta = 1000000.0;
    c.rope_scaling.type = "llama3";
    c.rope_scaling.factor = 8.0;
    c.rope_scaling.low_freq_factor = 1.0;
    c.rope_scaling.high_freq_factor = 4.0;
    c.rope_scaling.original_max_position_embeddings = 8192;
    c.tie_word_embeddings = true;
    c.qkv_bias = true;
    c.bos_token_id = 151643;
    c.eos_token_ids = {151645, 151643};
    c.validate("test");
    const json j = formats::hf_config_json(c, "bfloat16");
    expect_same_config(formats::parse_hf_config(std::string_view(j.dump()), "generated").model, c);
    EXPECT_EQ(j["architectures"], json::array({"Qwen2ForCausalLM"}));
    EXPECT_EQ(j["rope_scaling"]["rope_type"], "llama3");
    EXPECT_EQ(j["eos_token_id"], json::array({151645, 151643}));
    EXPECT_EQ(j["torch_dtype"], "bfloat16");
    EXPECT_FALSE(j.contains("attention_bias"));  // implied by qwen2

    c.architecture = "mistral";
    c.qkv_bias = false;
    c.rope_scaling = RopeScaling{};
    c.rope_scaling.type = "linear";
    c.rope_scaling.factor = 2.0;
    c.bos_token_id = -1;
    c.eos_token_ids = {};
    const json m = formats::hf_config_json(c, "float16");
    EXPECT_EQ(m["architectures"], json::array({"MistralForCausalLM"}));
    expect_same_config(formats::parse_hf_config(m, "generated").model, c);
}

TEST(ConfigJsonFor, UnrepresentableBiases_UsageError) {
    ModelConfig c;
    c.architecture = "llama";
    c.d_model = 64, c.n_layers = 1, c.n_heads = 4, c.n_kv_heads = 2, c.d_head = 16;
    c.d_ff = 128, c.n_vocab = 32;
    c.qkv_bias = true;  // attention_bias would also give an o_proj bias
    try {
        formats::hf_config_json(c, "float32");
        FAIL() << "expected UsageError";
    } catch (const UsageError& e) {
        EXPECT_NE(std::string(e.what()).find("qkv_bias=1, o_bias=0"), std::string::npos)
            << e.what();
    }
}

TEST(ConfigJsonFor, RoundTripsSmolLM2Gguf_Data) {
    PALU_REQUIRE_SMOLLM2(gguf);
    auto src = formats::open_model(gguf);
    const json j = formats::hf_config_json(src->config(), "float32");
    expect_same_config(formats::parse_hf_config(j, "generated").model, src->config());
}

// ---------------------------------------------------------------- writer on stories260K

TEST(Checkpoint, Stories260K_LayoutConfigCopiesFactorsTokenizer_Data) {
    PALU_REQUIRE_DATA(hf_dir, "models/stories260K/hf");
    auto src = formats::open_model(hf_dir);
    const auto layers = make_factors(*src, 2, 8);
    const fs::path root = make_temp_dir("ckpt_stories");
    RemoveAtExit cleanup{root};
    const fs::path out = root / "stories-palu";
    formats::PaluBlock block;
    block.group_size = 2;
    block.decompose.method = "plain";
    pipeline::write_compressed_checkpoint(*src, layers, block, out);

    EXPECT_EQ(listing(out),
              (std::vector<std::string>{"config.json", "model.safetensors", "tok512.bin"}));
    EXPECT_EQ(listing(root), std::vector<std::string>{"stories-palu"});  // no staging left

    // config.json: the source's keys, the reference's palu keys, the palu block.
    const auto cfg = formats::read_hf_config(out / "config.json");
    EXPECT_TRUE(cfg.palu_compressed);
    EXPECT_EQ(cfg.model_type, "palullama");
    EXPECT_EQ(cfg.raw["architectures"], json::array({"PaluLlamaForCausalLM"}));
    expect_same_config(cfg.model, src->config());
    EXPECT_EQ(cfg.raw["palu"]["format_version"], 1);
    EXPECT_EQ(cfg.raw["palu"]["group_size"], 2);
    EXPECT_EQ(cfg.raw["palu"]["decompose"]["method"], "plain");
    EXPECT_EQ(cfg.raw["mlp_bias"], false);  // a source-only key, kept verbatim
    const json& hw = cfg.raw["head_wise_ranks"];
    EXPECT_EQ(hw.size(), 10u);
    for (int64_t l = 0; l < 5; ++l) {
        EXPECT_EQ(hw[kv_prefix(l, 'k')].get<std::vector<int64_t>>(), layers[l].k.ranks);
        EXPECT_EQ(hw[kv_prefix(l, 'v')].get<std::vector<int64_t>>(), layers[l].v.ranks);
    }
    // format_version is the first key of the palu block in the file.
    const std::string text = read_file(out / "config.json");
    const size_t palu_at = text.find("\"palu\": {");
    ASSERT_NE(palu_at, std::string::npos);
    EXPECT_LT(text.find("format_version", palu_at), text.find("group_size", palu_at));

    // Tensors: copies bit-identical, no dense k/v, factors exactly the f32 factors.
    const auto in_ckpt = formats::SafetensorsCheckpoint::open(hf_dir);
    const auto out_ckpt = formats::SafetensorsCheckpoint::open(out);
    size_t n_checked = 0;
    expect_copied_bit_identical(in_ckpt, out_ckpt, &n_checked);
    EXPECT_EQ(n_checked, 2u + 1u + 5u * 7u);  // embed, norm, lm_head + 7 per layer
    EXPECT_EQ(out_ckpt.metadata().at("format"), "pt");
    auto out_src = formats::open_model(out);
    EXPECT_TRUE(formats::is_palu_checkpoint(*out_src));
    EXPECT_FALSE(formats::is_palu_checkpoint(*src));
    for (int64_t l = 0; l < 5; ++l) {
        for (char which : {'k', 'v'}) {
            const auto& kv = which == 'k' ? layers[l].k : layers[l].v;
            const std::string p = kv_prefix(l, which);
            EXPECT_FALSE(out_src->has_tensor(p + ".weight"));
            EXPECT_EQ(out_ckpt.at(p + ".VT.weight").info->dtype, DType::F32);
            EXPECT_EQ(out_ckpt.at(p + ".VT.weight").info->shape, (std::vector<int64_t>{16, 64}));
            expect_tensor_equals(*out_src, p + ".VT.weight", kv.vt.data(), kv.vt.size());
            for (int64_t g = 0; g < 2; ++g) {
                const std::string u = strfmt("%s.U.%lld.weight", p.c_str(), (long long)g);
                EXPECT_EQ(out_ckpt.at(u).info->shape, (std::vector<int64_t>{16, 8}));
                expect_tensor_equals(*out_src, u, kv.u[g].data(), kv.u[g].size());
            }
            EXPECT_FALSE(out_src->has_tensor(p + ".U.0.bias"));
        }
    }

    // The tokenizer travels with it: found in the output, same ids as the source's.
    auto tok_src = calib::find_tokenizer_for_model(hf_dir, 512);
    auto tok_out = calib::find_tokenizer_for_model(out, 512);
    EXPECT_EQ(tok_out->kind(), "llama2c");
    EXPECT_EQ(tok_out->encode(kSample, true), tok_src->encode(kSample, true));

    // Dense export: k/v re-multiplied, everything else unchanged, an ordinary model again.
    const fs::path dense = root / "dense";
    auto compressed = formats::open_model(out);
    pipeline::export_dense(*compressed, dense);
    EXPECT_EQ(listing(dense),
              (std::vector<std::string>{"config.json", "model.safetensors", "tok512.bin"}));
    auto dsrc = formats::open_model(dense);
    EXPECT_FALSE(formats::is_palu_checkpoint(*dsrc));
    const auto dcfg = formats::read_hf_config(dense / "config.json");
    EXPECT_FALSE(dcfg.palu_compressed);
    EXPECT_EQ(dcfg.model_type, "llama");
    EXPECT_EQ(dcfg.raw["architectures"], json::array({"LlamaForCausalLM"}));
    EXPECT_FALSE(dcfg.raw.contains("head_wise_ranks"));
    EXPECT_EQ(dcfg.raw["palu"]["exported"], "dense");
    EXPECT_EQ(dcfg.raw["palu"]["format_version"], 1);
    expect_same_config(dsrc->config(), src->config());
    const auto dense_ckpt = formats::SafetensorsCheckpoint::open(dense);
    n_checked = 0;
    expect_copied_bit_identical(in_ckpt, dense_ckpt, &n_checked);
    EXPECT_EQ(n_checked, 2u + 1u + 5u * 7u);
    for (int64_t l = 0; l < 5; ++l) {
        for (char which : {'k', 'v'}) {
            const auto& kv = which == 'k' ? layers[l].k : layers[l].v;
            const std::string p = kv_prefix(l, which);
            EXPECT_EQ(dense_ckpt.at(p + ".weight").info->dtype, DType::F32);
            const RowMatrixXf w = load_matrix(*dsrc, p + ".weight");
            EXPECT_LE(rel_frobenius(w, kv.reconstruct()), 1e-6) << p;
            EXPECT_FALSE(dsrc->has_tensor(p + ".bias"));
        }
    }
    auto tok_dense = calib::find_tokenizer_for_model(dense, 512);
    EXPECT_EQ(tok_dense->encode(kSample, true), tok_src->encode(kSample, true));

    // Exporting something that is not compressed is refused.
    try {
        pipeline::export_dense(*src, root / "dense2");
        FAIL() << "expected UsageError";
    } catch (const UsageError& e) {
        EXPECT_NE(std::string(e.what()).find("not a compressed palu checkpoint"), std::string::npos)
            << e.what();
    }
    EXPECT_FALSE(fs::exists(root / "dense2"));
}

TEST(Checkpoint, Stories260KLlama2cBin_F32CopiesAndGeneratedConfig_Data) {
    PALU_REQUIRE_DATA(bin, "models/stories260K/stories260K.bin");
    auto src = formats::open_model(bin);
    const auto layers = make_factors(*src, 4, 12);
    const fs::path out = make_temp_dir("ckpt_l2c") / "out";
    RemoveAtExit cleanup{out.parent_path()};
    pipeline::write_compressed_checkpoint(*src, layers, formats::PaluBlock{}, out);
    EXPECT_EQ(listing(out),
              (std::vector<std::string>{"config.json", "model.safetensors", "tok512.bin"}));
    const auto cfg = formats::read_hf_config(out / "config.json");
    EXPECT_EQ(cfg.model_type, "palullama");
    EXPECT_EQ(cfg.raw["torch_dtype"], "float32");
    expect_same_config(cfg.model, src->config());
    auto o = formats::open_model(out);
    for (const auto& t : src->tensors()) {
        if (t.name.find("k_proj") != std::string::npos ||
            t.name.find("v_proj") != std::string::npos)
            continue;
        const Tensor a = src->load_f32(t.name);
        expect_tensor_equals(*o, t.name, a.data(), a.numel());
    }
    EXPECT_EQ(o->config().n_layers, 5);
}

// ---------------------------------------------------------------- tiny synthetic model, biases

TEST(Checkpoint, TinyQwen2F16_BiasesAutoDtypeAndDenseExport) {
    const fs::path root = make_temp_dir("ckpt_tiny");
    RemoveAtExit cleanup{root};
    TinyConfig tc;
    tc.qkv_bias = true;
    tc.dtype = DType::F16;
    tc.n_layers = 3;
    const ModelConfig mc = write_tiny_checkpoint(root / "src", tc);
    auto src = formats::open_model(root / "src");
    const auto layers = make_factors(*src, 1, 9);  // 2 groups of one KV head, width 16
    pipeline::write_compressed_checkpoint(*src, layers, group_block(1), root / "out");

    const auto cfg = formats::read_hf_config(root / "out/config.json");
    EXPECT_EQ(cfg.model_type, "paluqwen2");
    EXPECT_EQ(cfg.raw["architectures"], json::array({"PaluQwenForCausalLM"}));
    expect_same_config(cfg.model, mc);
    const auto in_ckpt = formats::SafetensorsCheckpoint::open(root / "src");
    const auto out_ckpt = formats::SafetensorsCheckpoint::open(root / "out");
    size_t n_checked = 0;
    expect_copied_bit_identical(in_ckpt, out_ckpt, &n_checked);
    EXPECT_GT(n_checked, 0u);
    auto o = formats::open_model(root / "out");
    // "auto" factor dtype = the source k_proj's F16; values = the f32 factors rounded once.
    std::vector<CompressedLayer> rounded = layers;
    auto round_f16 = [](float* p, int64_t n) {
        for (int64_t i = 0; i < n; ++i) p[i] = f16_to_f32(f32_to_f16(p[i]));
    };
    for (int64_t l = 0; l < 3; ++l) {
        for (char which : {'k', 'v'}) {
            auto& kv = which == 'k' ? rounded[l].k : rounded[l].v;
            const std::string p = kv_prefix(l, which);
            EXPECT_EQ(out_ckpt.at(p + ".VT.weight").info->dtype, DType::F16);
            round_f16(kv.vt.data(), kv.vt.size());
            expect_tensor_equals(*o, p + ".VT.weight", kv.vt.data(), kv.vt.size());
            for (int64_t g = 0; g < 2; ++g) {
                const std::string u = strfmt("%s.U.%lld", p.c_str(), (long long)g);
                round_f16(kv.u[g].data(), kv.u[g].size());
                expect_tensor_equals(*o, u + ".weight", kv.u[g].data(), kv.u[g].size());
                EXPECT_EQ(out_ckpt.at(u + ".bias").info->dtype, DType::F16);
                EXPECT_EQ(out_ckpt.at(u + ".bias").info->shape, std::vector<int64_t>{16});
                round_f16(kv.bias[g].data(), static_cast<int64_t>(kv.bias[g].size()));
                expect_tensor_equals(*o, u + ".bias", kv.bias[g].data(),
                                     static_cast<int64_t>(kv.bias[g].size()));
            }
        }
    }

    // Dense export in f32 from the stored (f16) factors; bias = the group biases concatenated,
    // which for these Plain factors is the source bias itself.
    pipeline::export_dense(*o, root / "dense");
    auto d = formats::open_model(root / "dense");
    expect_same_config(d->config(), mc);
    EXPECT_EQ(formats::read_hf_config(root / "dense/config.json").model_type, "qwen2");
    for (int64_t l = 0; l < 3; ++l) {
        for (char which : {'k', 'v'}) {
            const auto& kv = which == 'k' ? rounded[l].k : rounded[l].v;
            const std::string p = kv_prefix(l, which);
            EXPECT_LE(rel_frobenius(load_matrix(*d, p + ".weight"), kv.reconstruct()), 1e-6) << p;
            const Tensor b = d->load_f32(p + ".bias");
            const Tensor b_src = src->load_f32(p + ".bias");
            ASSERT_EQ(b.numel(), 32);
            for (int64_t i = 0; i < 32; ++i) EXPECT_EQ(b.data()[i], b_src.data()[i]) << p << i;
        }
    }
    // --dtype bf16 stores k/v in bf16.
    pipeline::DenseExportOptions bf;
    bf.dtype = DType::BF16;
    pipeline::export_dense(*o, root / "dense_bf16", bf);
    EXPECT_EQ(formats::SafetensorsCheckpoint::open(root / "dense_bf16")
                  .at("model.layers.0.self_attn.k_proj.weight")
                  .info->dtype,
              DType::BF16);
    bf.dtype = DType::I8;
    EXPECT_THROW(pipeline::export_dense(*o, root / "dense_bad", bf), UsageError);
    EXPECT_FALSE(fs::exists(root / "dense_bad"));
}

TEST(Checkpoint, ShardedOutputAndExplicitFactorDtype) {
    const fs::path root = make_temp_dir("ckpt_shard");
    RemoveAtExit cleanup{root};
    write_tiny_checkpoint(root / "src", TinyConfig{});
    auto src = formats::open_model(root / "src");
    const auto layers = make_factors(*src, 2, 6);
    formats::PaluWriteOptions opt;
    opt.factor_dtype = DType::BF16;
    opt.max_shard_bytes = 16 * 1024;
    pipeline::write_compressed_checkpoint(*src, layers, formats::PaluBlock{}, root / "out", opt);
    EXPECT_TRUE(fs::exists(root / "out/model.safetensors.index.json"));
    const auto ck = formats::SafetensorsCheckpoint::open(root / "out");
    EXPECT_TRUE(ck.sharded());
    EXPECT_EQ(ck.at("model.layers.1.self_attn.v_proj.U.0.weight").info->dtype, DType::BF16);
    EXPECT_EQ(ck.at("model.layers.1.self_attn.q_proj.weight").info->dtype, DType::F32);
    auto o = formats::open_model(root / "out");
    pipeline::export_dense(*o, root / "dense");
    EXPECT_NO_THROW(formats::open_model(root / "dense"));
}

// ---------------------------------------------------------------- refusals and atomicity

struct TinyFixture {
    fs::path root;
    RemoveAtExit cleanup;
    std::unique_ptr<WeightSource> src;
    std::vector<CompressedLayer> layers;
    TinyFixture() {
        root = make_temp_dir("ckpt_fail");
        cleanup.path = root;
        write_tiny_checkpoint(root / "src", TinyConfig{});
        src = formats::open_model(root / "src");
        layers = make_factors(*src, 1, 4);
    }
};

template <typename E>
std::string error_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const E& e) {
        return e.what();
    }
    ADD_FAILURE() << "expected an exception";
    return {};
}

TEST(Checkpoint, BadFactors_UsageErrorNamingLayer_NothingWritten) {
    TinyFixture t;
    const fs::path out = t.root / "out";
    auto bad = t.layers;
    bad[1].v.u[0] = RowMatrixXf::Zero(16, 3);  // rank 4 declared
    std::string msg = error_of<UsageError>(
        [&] { pipeline::write_compressed_checkpoint(*t.src, bad, formats::PaluBlock{}, out); });
    EXPECT_NE(msg.find("layer 1 v_proj factors: U.0 has wrong shape; expected [16,4]"),
              std::string::npos)
        << msg;
    bad = t.layers;
    bad.pop_back();
    msg = error_of<UsageError>(
        [&] { pipeline::write_compressed_checkpoint(*t.src, bad, formats::PaluBlock{}, out); });
    EXPECT_NE(msg.find("expected factors for 2 layers (num_hidden_layers), got 1"),
              std::string::npos)
        << msg;
    bad = t.layers;
    bad[0].k.bias.assign(2, std::vector<float>(16, 0.f));  // source has no k bias
    msg = error_of<UsageError>(
        [&] { pipeline::write_compressed_checkpoint(*t.src, bad, formats::PaluBlock{}, out); });
    EXPECT_NE(msg.find("layer 0 k_proj factors: the source has no k_proj bias"), std::string::npos)
        << msg;
    EXPECT_THROW(
        pipeline::write_compressed_checkpoint(*t.src, t.layers, block_with_version(2), out),
        UsageError);
    formats::PaluWriteOptions o;
    o.factor_dtype = DType::I8;
    EXPECT_THROW(
        pipeline::write_compressed_checkpoint(*t.src, t.layers, formats::PaluBlock{}, out, o),
        UsageError);
    EXPECT_FALSE(fs::exists(out));
    EXPECT_EQ(listing(t.root), std::vector<std::string>{"src"});
}

TEST(Checkpoint, FailureMidWrite_OutDirUntouchedAndStagingRemoved) {
    TinyFixture t;
    const fs::path out = t.root / "out";
    auto bad = t.layers;
    bad[1].k.vt(2, 3) = std::nanf("");  // found while the tensors are being prepared
    const std::string msg = error_of<NumericalError>(
        [&] { pipeline::write_compressed_checkpoint(*t.src, bad, formats::PaluBlock{}, out); });
    EXPECT_NE(msg.find("model.layers.1.self_attn.k_proj.VT.weight"), std::string::npos) << msg;
    EXPECT_EQ(listing(t.root), std::vector<std::string>{"src"});

    // An existing checkpoint survives a failed --overwrite unchanged.
    pipeline::write_compressed_checkpoint(*t.src, t.layers, run_block(1), out);
    const std::string before = read_file(out / "config.json");
    const std::string before_w = read_file(out / "model.safetensors");
    formats::PaluWriteOptions ow;
    ow.overwrite = true;
    EXPECT_THROW(pipeline::write_compressed_checkpoint(*t.src, bad, run_block(2), out, ow),
                 NumericalError);
    EXPECT_EQ(read_file(out / "config.json"), before);
    EXPECT_EQ(read_file(out / "model.safetensors"), before_w);
    EXPECT_EQ(listing(t.root), (std::vector<std::string>{"out", "src"}));

    // f16 overflow of a factor is refused, not written as inf.
    auto big = t.layers;
    big[0].v.u[1](0, 0) = 1e6f;
    formats::PaluWriteOptions f16;
    f16.factor_dtype = DType::F16;
    const std::string m2 = error_of<NumericalError>([&] {
        pipeline::write_compressed_checkpoint(*t.src, big, formats::PaluBlock{}, t.root / "out16",
                                              f16);
    });
    EXPECT_NE(m2.find("overflows F16; hint: store it as f32"), std::string::npos) << m2;
    EXPECT_FALSE(fs::exists(t.root / "out16"));
}

TEST(Checkpoint, NonEmptyOutDir_RefusedUnlessOverwrite) {
    TinyFixture t;
    const fs::path out = t.root / "out";
    fs::create_directories(out);  // an empty directory is fine
    pipeline::write_compressed_checkpoint(*t.src, t.layers, run_block(1), out);
    const std::string msg = error_of<UsageError>(
        [&] { pipeline::write_compressed_checkpoint(*t.src, t.layers, run_block(2), out); });
    EXPECT_NE(msg.find("exists and is not empty; hint: pass --overwrite"), std::string::npos)
        << msg;
    EXPECT_EQ(formats::read_hf_config(out / "config.json").raw["palu"]["source_model"]["path"],
              "run 1");

    std::ofstream(out / "stale.txt") << "old";
    auto other = make_factors(*t.src, 2, 5);
    formats::PaluWriteOptions ow;
    ow.overwrite = true;
    pipeline::write_compressed_checkpoint(*t.src, other, run_block(2), out, ow);
    const auto cfg = formats::read_hf_config(out / "config.json");
    EXPECT_EQ(cfg.raw["palu"]["source_model"]["path"], "run 2");
    EXPECT_EQ(cfg.raw["head_wise_ranks"]["model.layers.0.self_attn.k_proj"], json::array({5}));
    EXPECT_FALSE(fs::exists(out / "stale.txt"));  // replaced, not merged
    EXPECT_EQ(listing(t.root), (std::vector<std::string>{"out", "src"}));

    // Writing over the source directory, or a directory holding it, is refused even with
    // --overwrite.
    EXPECT_THROW(pipeline::write_compressed_checkpoint(*t.src, t.layers, formats::PaluBlock{},
                                                       t.root / "src", ow),
                 UsageError);
    const std::string m2 = error_of<UsageError>([&] {
        pipeline::write_compressed_checkpoint(*t.src, t.layers, formats::PaluBlock{}, t.root, ow);
    });
    EXPECT_NE(m2.find("contains the source model"), std::string::npos) << m2;
    EXPECT_TRUE(fs::exists(t.root / "src/config.json"));
    // A compressed checkpoint is not compressed again.
    auto c = formats::open_model(out);
    EXPECT_THROW(
        pipeline::write_compressed_checkpoint(*c, t.layers, formats::PaluBlock{}, t.root / "again"),
        UsageError);
    // Dense export follows the same rules.
    pipeline::export_dense(*c, t.root / "dense");
    EXPECT_THROW(pipeline::export_dense(*c, t.root / "dense"), UsageError);
    pipeline::DenseExportOptions dow;
    dow.overwrite = true;
    EXPECT_NO_THROW(pipeline::export_dense(*c, t.root / "dense", dow));
}

TEST(Checkpoint, UnwritableDir_IoErrorWithHint) {
    TinyFixture t;
    std::ofstream(t.root / "a_file") << "x";
    std::string msg = error_of<IoError>([&] {
        pipeline::write_compressed_checkpoint(*t.src, t.layers, formats::PaluBlock{},
                                              t.root / "a_file/sub/out");
    });
    EXPECT_NE(msg.find("hint: choose another --out"), std::string::npos) << msg;
    msg = error_of<IoError>([&] {
        pipeline::write_compressed_checkpoint(*t.src, t.layers, formats::PaluBlock{},
                                              "/proc/palu-no-such/out");
    });
    EXPECT_NE(msg.find("hint: choose another --out"), std::string::npos) << msg;
    if (geteuid() != 0) {
        fs::create_directories(t.root / "ro");
        ::chmod((t.root / "ro").c_str(), 0555);
        msg = error_of<IoError>([&] {
            pipeline::write_compressed_checkpoint(*t.src, t.layers, formats::PaluBlock{},
                                                  t.root / "ro/out");
        });
        EXPECT_NE(msg.find("hint: choose another --out"), std::string::npos) << msg;
        ::chmod((t.root / "ro").c_str(), 0755);
    }
}

// ---------------------------------------------------------------- GGUF sources

// A one-layer llama GGUF (Q8_0 matrices, F32 norms) with a small byte-level BPE tokenizer in its
// metadata: printable ASCII, "Ġ" (space) and the merges "a b", "Ġ a".
fs::path write_tiny_gguf(const fs::path& path) {
    using namespace formats;
    const int64_t d = 32, n_heads = 4, n_kv = 2, d_head = 8, d_ff = 64;
    std::vector<std::string> tokens;
    for (char ch = 33; ch < 127; ++ch) tokens.emplace_back(1, ch);
    tokens.push_back("\xC4\xA0");  // Ġ
    tokens.push_back("ab");
    tokens.push_back(
        "\xC4\xA0"
        "a");
    const int64_t n_vocab = static_cast<int64_t>(tokens.size());
    GgufWriter w;
    w.set("general.architecture", gguf_str("llama"));
    w.set("general.name", gguf_str("tiny"));
    w.set("llama.embedding_length", gguf_u32(d));
    w.set("llama.block_count", gguf_u32(1));
    w.set("llama.attention.head_count", gguf_u32(n_heads));
    w.set("llama.attention.head_count_kv", gguf_u32(n_kv));
    w.set("llama.feed_forward_length", gguf_u32(d_ff));
    w.set("llama.attention.layer_norm_rms_epsilon", gguf_f32(1e-5f));
    w.set("llama.rope.freq_base", gguf_f32(10000.0f));
    w.set("llama.rope.dimension_count", gguf_u32(d_head));
    w.set("llama.context_length", gguf_u32(128));
    w.set("tokenizer.ggml.model", gguf_str("gpt2"));
    w.set("tokenizer.ggml.tokens", gguf_str_array(tokens));
    w.set("tokenizer.ggml.merges", gguf_str_array({"a b", "\xC4\xA0 a"}));
    w.set("tokenizer.ggml.bos_token_id", gguf_u32(0));
    w.set("tokenizer.ggml.eos_token_id", gguf_u32(1));
    std::mt19937 rng(7);
    std::normal_distribution<float> nd(0.0f, 0.2f);
    auto add = [&](const std::string& name, std::vector<int64_t> ne, GgmlType t) {
        int64_t n = 1;
        for (auto x : ne) n *= x;
        std::vector<float> v(static_cast<size_t>(n));
        for (auto& x : v) x = nd(rng);
        w.add_tensor(name, std::move(ne), t, v);
    };
    add("token_embd.weight", {d, n_vocab}, GgmlType::Q8_0);
    add("output_norm.weight", {d}, GgmlType::F32);
    add("blk.0.attn_norm.weight", {d}, GgmlType::F32);
    add("blk.0.attn_q.weight", {d, n_heads * d_head}, GgmlType::Q8_0);
    add("blk.0.attn_k.weight", {d, n_kv * d_head}, GgmlType::Q8_0);
    add("blk.0.attn_v.weight", {d, n_kv * d_head}, GgmlType::Q8_0);
    add("blk.0.attn_output.weight", {n_heads * d_head, d}, GgmlType::Q8_0);
    add("blk.0.ffn_norm.weight", {d}, GgmlType::F32);
    add("blk.0.ffn_gate.weight", {d, d_ff}, GgmlType::Q8_0);
    add("blk.0.ffn_up.weight", {d, d_ff}, GgmlType::Q8_0);
    add("blk.0.ffn_down.weight", {d_ff, d}, GgmlType::Q4_1);
    w.write(path);
    return path;
}

TEST(Checkpoint, TinyGguf_F32CopiesGeneratedConfigAndTokenizerGguf) {
    const fs::path root = make_temp_dir("ckpt_gguf");
    RemoveAtExit cleanup{root};
    const fs::path gguf = write_tiny_gguf(root / "tiny.gguf");
    auto src = formats::open_model(gguf);
    const auto layers = make_factors(*src, 1, 5);
    pipeline::write_compressed_checkpoint(*src, layers, formats::PaluBlock{}, root / "out");
    EXPECT_EQ(listing(root / "out"),
              (std::vector<std::string>{"config.json", "model.safetensors", "tokenizer.gguf"}));
    const auto cfg = formats::read_hf_config(root / "out/config.json");
    EXPECT_EQ(cfg.model_type, "palullama");
    EXPECT_EQ(cfg.raw["torch_dtype"], "float32");
    expect_same_config(cfg.model, src->config());
    auto o = formats::open_model(root / "out");
    const auto ck = formats::SafetensorsCheckpoint::open(root / "out");
    size_t n = 0;
    for (const auto& t : src->tensors()) {
        if (t.name.find("k_proj") != std::string::npos ||
            t.name.find("v_proj") != std::string::npos)
            continue;
        EXPECT_EQ(ck.at(t.name).info->dtype, DType::F32)
            << t.name;  // dequantized, as the engine sees it
        const Tensor a = src->load_f32(t.name);
        expect_tensor_equals(*o, t.name, a.data(), a.numel());
        ++n;
    }
    EXPECT_EQ(n, 9u);  // embed, final norm, 7 per layer
    // "auto" factor dtype of a quantized source is F32.
    EXPECT_EQ(ck.at("model.layers.0.self_attn.k_proj.VT.weight").info->dtype, DType::F32);

    auto g = formats::GgufFile::open(root / "out/tokenizer.gguf");
    EXPECT_TRUE(g->tensor_infos().empty());
    EXPECT_EQ(g->keys(), (std::vector<std::string>{"general.architecture", "tokenizer.ggml.model",
                                                   "tokenizer.ggml.tokens", "tokenizer.ggml.merges",
                                                   "tokenizer.ggml.bos_token_id",
                                                   "tokenizer.ggml.eos_token_id"}));
    auto tok_src = calib::find_tokenizer_for_model(gguf, src->config().n_vocab);
    auto tok_out = calib::find_tokenizer_for_model(root / "out", src->config().n_vocab);
    EXPECT_EQ(tok_out->kind(), "bpe");
    const std::string text = "ab cab a!b";
    const auto ids = tok_src->encode(text, false);
    EXPECT_EQ(tok_out->encode(text, false), ids);
    EXPECT_NE(std::find(ids.begin(), ids.end(), 95), ids.end());  // the "ab" merge applied
    // ... and through the dense export.
    auto c = formats::open_model(root / "out");
    pipeline::export_dense(*c, root / "dense");
    auto tok_dense = calib::find_tokenizer_for_model(root / "dense", src->config().n_vocab);
    EXPECT_EQ(tok_dense->encode(text, false), ids);
}

// ---------------------------------------------------------------- SmolLM2 GGUF

TEST(Checkpoint, SmolLM2Gguf_F32CopiesAndTokenizerGguf_Slow) {
    PALU_REQUIRE_SMOLLM2(gguf);
    auto src = formats::open_model(gguf);
    const auto layers = make_factors(*src, 3, 48);  // J-LRD: one group of the 3 KV heads
    const fs::path root = make_temp_dir("ckpt_smol");
    RemoveAtExit cleanup{root};
    pipeline::write_compressed_checkpoint(*src, layers, group_block(3), root / "out");
    EXPECT_EQ(listing(root / "out"),
              (std::vector<std::string>{"config.json", "model.safetensors", "tokenizer.gguf"}));
    auto o = formats::open_model(root / "out");
    expect_same_config(o->config(), src->config());
    for (const char* n : {"model.embed_tokens.weight", "model.layers.0.self_attn.q_proj.weight",
                          "model.layers.29.mlp.down_proj.weight", "model.norm.weight"}) {
        const Tensor a = src->load_f32(n);
        expect_tensor_equals(*o, n, a.data(), a.numel());
    }
    // tokenizer.gguf: only metadata, no tensors; found for the checkpoint and equal to the GGUF's.
    auto g = formats::GgufFile::open(root / "out/tokenizer.gguf");
    EXPECT_TRUE(g->tensor_infos().empty());
    EXPECT_EQ(g->get_string("general.architecture"), "llama");
    for (const auto& k : g->keys())
        EXPECT_TRUE(k == "general.architecture" || k.rfind("tokenizer.", 0) == 0) << k;
    auto tok_src = calib::find_tokenizer_for_model(gguf, 49152);
    auto tok_out = calib::find_tokenizer_for_model(root / "out", 49152);
    const std::string text = "The quick brown fox, 1234 jumps!\n\n<|im_start|>user héllo";
    EXPECT_EQ(tok_out->encode(text, true), tok_src->encode(text, true));
    EXPECT_EQ(tok_out->bos_id(), tok_src->bos_id());
    EXPECT_EQ(tok_out->eos_id(), tok_src->eos_id());

    pipeline::export_dense(*o, root / "dense");
    EXPECT_TRUE(fs::exists(root / "dense/tokenizer.gguf"));
    auto tok_dense = calib::find_tokenizer_for_model(root / "dense", 49152);
    EXPECT_EQ(tok_dense->encode(text, true), tok_src->encode(text, true));
}

}  // namespace
}  // namespace palu::test
