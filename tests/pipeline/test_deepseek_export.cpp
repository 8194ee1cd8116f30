// palu pipeline tests: `palu-export --to deepseek` (export.h export_deepseek) on the MLA fixture
// tests/reference/mla_tiny and on generated MLA checkpoints: the config keys of
// runtimes-and-peers.md §C.1, tensor names / shapes / dtypes, the palu-eval round trip, the
// refusals (nothing left on disk), the vLLM geometry check, and transformers' perplexity of the
// export recorded by tests/reference/deepseek_export_hf_check.py
// (tests/reference/mla_tiny_deepseek_export_hf_ppl.json).
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "palu/compress/decompose.h"
#include "palu/core/error.h"
#include "palu/core/format.h"
#include "palu/formats/hf_config.h"
#include "palu/formats/hf_model.h"
#include "palu/formats/model_loader.h"
#include "palu/formats/palu_checkpoint.h"
#include "palu/formats/safetensors.h"
#include "palu/linalg/matrix.h"
#include "palu/pipeline/eval.h"
#include "palu/pipeline/export.h"
#include "palu/pipeline/write.h"
#include "test_data.h"
#include "tiny_model.h"

namespace palu::test {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using pipeline::DeepseekExportOptions;
using pipeline::DeepseekRuntime;

fs::path mla_fixture() {
    return source_root() / "tests" / "reference" / "mla_tiny";
}

struct RemoveAtExit {
    fs::path path;
    ~RemoveAtExit() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
};

// Every entry of `dir` (names only, recursive), to assert that a refused export left nothing.
std::set<std::string> listing(const fs::path& dir) {
    std::set<std::string> out;
    for (const auto& e : fs::recursive_directory_iterator(dir))
        out.insert(fs::relative(e.path(), dir).string());
    return out;
}

json read_json(const fs::path& p) {
    std::ifstream f(p);
    EXPECT_TRUE(f.good()) << "cannot read " << p;
    return json::parse(f);
}

void write_ids(const fs::path& p, const std::vector<int32_t>& ids) {
    std::ofstream(p, std::ios::binary)
        .write(reinterpret_cast<const char*>(ids.data()),
               static_cast<std::streamsize>(ids.size() * sizeof(int32_t)));
}

pipeline::EvalPplResult eval_ppl(const fs::path& model, const fs::path& ids, int64_t seqlen) {
    pipeline::EvalPplParams e;
    e.model_path = model.string();
    e.eval.tokens_path = ids.string();
    e.eval.seqlen = seqlen;
    e.run.n_threads = 1;
    e.run.progress = false;
    return pipeline::run_eval_ppl(e);
}

// A random dense MLA checkpoint (one layer, one head) with the given latent geometry, written as
// palu writes MLA checkpoints: hf_config_json's DeepSeek-V3 config and the HF tensors.
enum class LmHead { Untied, Tied, TiedStoredEqual, TiedStoredDifferent };
void write_mla_checkpoint(const fs::path& dir, int64_t kv_lora_rank, int64_t rope,
                          LmHead head = LmHead::Untied) {
    const bool tied = head != LmHead::Untied;
    ModelConfig c;
    c.architecture = "deepseek_v3";
    c.d_model = 32;
    c.n_layers = 1;
    c.n_heads = 1;
    c.n_kv_heads = 1;
    c.d_ff = 48;
    c.n_vocab = 40;
    c.max_position_embeddings = 64;
    c.tie_word_embeddings = tied;
    MlaConfig m;
    m.kv_lora_rank = kv_lora_rank;
    m.qk_rope_head_dim = rope;
    m.qk_nope_head_dim = 8;
    m.v_head_dim = 8;
    c.d_head = m.qk_nope_head_dim + m.qk_rope_head_dim;
    c.mla = m;
    fs::create_directories(dir);
    formats::TensorWriteList list;
    std::mt19937 rng(7);
    std::normal_distribution<float> nd(0.0f, 0.1f);
    std::vector<float> embed;
    for (const auto& e : formats::expected_hf_tensors(c, !tied)) {
        int64_t n = 1;
        for (int64_t d : e.shape) n *= d;
        std::vector<float> v(static_cast<size_t>(n));
        for (float& x : v) x = nd(rng);
        if (e.name == "model.embed_tokens.weight") embed = v;
        list.add_f32(e.name, DType::BF16, e.shape, v.data(), v.size(), "test");
    }
    if (head == LmHead::TiedStoredEqual || head == LmHead::TiedStoredDifferent) {
        if (head == LmHead::TiedStoredDifferent) embed[3] += 0.5f;
        list.add_f32("lm_head.weight", DType::BF16, {c.n_vocab, c.d_model}, embed.data(),
                     embed.size(), "test");
    }
    formats::write_safetensors(dir, list.take());
    std::ofstream(dir / "config.json") << formats::hf_config_json(c, "bfloat16").dump(2);
}

// A palu-layout compressed checkpoint of a tiny Llama: plain-SVD factors, one KV head per group.
void write_palu_layout_checkpoint(const fs::path& src_dir, const fs::path& out) {
    write_tiny_checkpoint(src_dir);
    auto src = formats::open_model(src_dir);
    const ModelConfig& c = src->config();
    std::vector<pipeline::CompressedLayer> layers(static_cast<size_t>(c.n_layers));
    const std::vector<int64_t> ranks(static_cast<size_t>(c.n_kv_heads), 8);
    for (int64_t l = 0; l < c.n_layers; ++l) {
        for (char which : {'k', 'v'}) {
            const std::string p =
                strfmt("model.layers.%lld.self_attn.%c_proj", (long long)l, which);
            const Tensor w = src->load_f32(p + ".weight");  // [n_kv·d_head, d_model]
            RowMatrixXf wm = Eigen::Map<const RowMatrixXf>(w.data(), w.dim(0), w.dim(1));
            auto kv = compress::decompose_projection(wm, {}, ranks, c.d_head, 1,
                                                     compress::DecomposeMethod::Plain, nullptr, p);
            (which == 'k' ? layers[l].k : layers[l].v) = std::move(kv);
        }
    }
    formats::PaluBlock block;
    block.group_size = 1;
    pipeline::write_compressed_checkpoint(*src, layers, block, out);
}

// ---- config and tensors ------------------------------------------------------------------------

TEST(DeepseekExport, ConfigHasTheC1KeysInTheDenseForm) {
    const fs::path root = make_temp_dir("ds_config");
    RemoveAtExit cleanup{root};
    auto src = formats::open_model(mla_fixture());
    pipeline::export_deepseek(*src, root / "out");
    const json cfg = read_json(root / "out/config.json");
    EXPECT_EQ(cfg["architectures"], json::array({"DeepseekV3ForCausalLM"}));
    EXPECT_EQ(cfg["model_type"], "deepseek_v3");
    EXPECT_EQ(cfg["hidden_size"], 64);
    EXPECT_EQ(cfg["num_hidden_layers"], 2);
    EXPECT_EQ(cfg["num_attention_heads"], 4);
    EXPECT_EQ(cfg["num_key_value_heads"], 4);
    EXPECT_EQ(cfg["kv_lora_rank"], 16);
    EXPECT_TRUE(cfg.contains("q_lora_rank") && cfg["q_lora_rank"].is_null());
    EXPECT_EQ(cfg["qk_rope_head_dim"], 8);
    EXPECT_EQ(cfg["qk_nope_head_dim"], 16);
    EXPECT_EQ(cfg["v_head_dim"], 16);
    EXPECT_EQ(cfg["head_dim"], 8);  // = qk_rope_head_dim, as DeepseekV3Config writes it
    EXPECT_EQ(cfg["rope_theta"], 10000.0);
    EXPECT_EQ(cfg["rope_parameters"], json({{"rope_type", "default"}, {"rope_theta", 10000.0}}));
    EXPECT_TRUE(cfg["rope_scaling"].is_null());
    EXPECT_EQ(cfg["rms_norm_eps"], 1e-6);
    EXPECT_EQ(cfg["intermediate_size"], 128);
    EXPECT_EQ(cfg["hidden_act"], "silu");
    EXPECT_EQ(cfg["max_position_embeddings"], 128);
    EXPECT_EQ(cfg["vocab_size"], 96);
    EXPECT_EQ(cfg["tie_word_embeddings"], false);
    EXPECT_EQ(cfg["bos_token_id"], 0);
    EXPECT_EQ(cfg["eos_token_id"], 1);
    EXPECT_EQ(cfg["rope_interleave"], true);
    EXPECT_EQ(cfg["attention_bias"], false);
    EXPECT_EQ(cfg["torch_dtype"], "float32");
    EXPECT_EQ(cfg["dtype"], "float32");
    // Dense: every layer below first_k_dense_replace; integer expert counts (vLLM adds to them).
    EXPECT_EQ(cfg["first_k_dense_replace"], 2);
    EXPECT_EQ(cfg["n_routed_experts"], 1);
    EXPECT_EQ(cfg["n_shared_experts"], 0);
    EXPECT_EQ(cfg["num_experts_per_tok"], 1);
    EXPECT_EQ(cfg["moe_intermediate_size"], 128);
    EXPECT_EQ(cfg["moe_layer_freq"], 1);
    EXPECT_EQ(cfg["num_nextn_predict_layers"], 0);
    for (const char* k : {"n_group", "topk_group", "topk_method", "routed_scaling_factor",
                          "scoring_func", "norm_topk_prob"})
        EXPECT_TRUE(cfg.contains(k)) << k;
    EXPECT_EQ(cfg["palu"]["exported"], "deepseek");
    EXPECT_EQ(cfg["palu"]["exported_dtype"], "float32");
    EXPECT_EQ(cfg["palu"]["layout"], "mla");
    // palu reads it back as the same MLA model.
    const ModelConfig& a = src->config();
    const ModelConfig b = formats::read_hf_config(root / "out/config.json").model;
    ASSERT_TRUE(b.is_mla());
    EXPECT_EQ(b.mla->kv_lora_rank, a.mla->kv_lora_rank);
    EXPECT_EQ(b.mla->qk_rope_head_dim, a.mla->qk_rope_head_dim);
    EXPECT_EQ(b.d_head, a.d_head);
    EXPECT_EQ(b.n_kv_heads, a.n_kv_heads);
    EXPECT_EQ(b.rope_theta, a.rope_theta);
    EXPECT_TRUE(fs::exists(root / "out/generation_config.json"));
}

TEST(DeepseekExport, KeepsTheSourcePaluBlock) {
    const fs::path root = make_temp_dir("ds_block");
    RemoveAtExit cleanup{root};
    fs::copy(mla_fixture(), root / "src");
    json cfg = read_json(root / "src/config.json");
    cfg["palu"] = {{"format_version", 1}, {"layout", "mla"}, {"mla", {{"kv_lora_rank", 16}}}};
    std::ofstream(root / "src/config.json") << cfg.dump(2);
    auto src = formats::open_model(root / "src");
    pipeline::export_deepseek(*src, root / "out", {DType::F16});
    const json got = read_json(root / "out/config.json")["palu"];
    EXPECT_EQ(got["mla"]["kv_lora_rank"], 16);
    EXPECT_EQ(got["exported"], "deepseek");
    EXPECT_EQ(got["exported_dtype"], "float16");
}

TEST(DeepseekExport, TensorNamesShapesAndDtypes) {
    const fs::path root = make_temp_dir("ds_tensors");
    RemoveAtExit cleanup{root};
    auto src = formats::open_model(mla_fixture());
    const auto expected = formats::expected_hf_tensors(src->config(), true);
    for (DType dt : {DType::F32, DType::F16, DType::BF16}) {
        const fs::path out = root / dtype_name(dt);
        pipeline::export_deepseek(*src, out, {dt});
        const auto ckpt = formats::SafetensorsCheckpoint::open(out);
        ASSERT_EQ(ckpt.tensors().size(), expected.size()) << dtype_name(dt);
        for (size_t i = 0; i < expected.size(); ++i) {
            const auto& t = *ckpt.tensors()[i].info;
            EXPECT_EQ(t.name, expected[i].name);
            EXPECT_EQ(t.shape, expected[i].shape) << t.name;
            EXPECT_EQ(t.dtype, dt) << t.name;
        }
        EXPECT_EQ(read_json(out / "config.json")["torch_dtype"], formats::torch_dtype_name(dt));
        // Values: the source's rounded once to the storage type.
        const std::string name = "model.layers.1.self_attn.kv_b_proj.weight";
        const Tensor a = src->load_f32(name);
        const Tensor b = ckpt.load_f32(name);
        for (int64_t i = 0; i < a.numel(); ++i) {
            const float want = dt == DType::F16    ? f16_to_f32(f32_to_f16(a.data()[i]))
                               : dt == DType::BF16 ? bf16_to_f32(f32_to_bf16(a.data()[i]))
                                                   : a.data()[i];
            ASSERT_EQ(b.data()[i], want) << name << "[" << i << "] " << dtype_name(dt);
        }
    }
    // --dtype unset: the source's storage (the fixture is f32; a bf16 checkpoint stays bf16).
    write_mla_checkpoint(root / "bf16_src", 16, 8);
    auto bsrc = formats::open_model(root / "bf16_src");
    pipeline::export_deepseek(*bsrc, root / "bf16_out");
    const auto bc = formats::SafetensorsCheckpoint::open(root / "bf16_out");
    for (const auto& e : bc.tensors()) EXPECT_EQ(e.info->dtype, DType::BF16) << e.info->name;
}

// Tied: no lm_head (a stored copy equal to the embeddings is dropped); a stored lm_head that
// differs (palu's engine runs it, transformers would tie over it) makes the export untied.
TEST(DeepseekExport, TiedEmbeddings_LmHeadOnlyWhenUntied) {
    const fs::path root = make_temp_dir("ds_tied");
    RemoveAtExit cleanup{root};
    for (LmHead h : {LmHead::Tied, LmHead::TiedStoredEqual, LmHead::TiedStoredDifferent}) {
        const fs::path dir = root / std::to_string(static_cast<int>(h));
        write_mla_checkpoint(dir / "src", 16, 8, h);
        auto src = formats::open_model(dir / "src");
        pipeline::export_deepseek(*src, dir / "out");
        const auto ckpt = formats::SafetensorsCheckpoint::open(dir / "out");
        const bool untied = h == LmHead::TiedStoredDifferent;
        EXPECT_EQ(ckpt.find("lm_head.weight") != nullptr, untied) << static_cast<int>(h);
        EXPECT_EQ(read_json(dir / "out/config.json")["tie_word_embeddings"], !untied);
        if (untied) {
            std::vector<int32_t> ids;
            for (int32_t i = 0; i < 32; ++i) ids.push_back((i * 11 + 3) % 40);
            write_ids(dir / "ids.i32", ids);
            EXPECT_EQ(eval_ppl(dir / "src", dir / "ids.i32", 16).window_nll,
                      eval_ppl(dir / "out", dir / "ids.i32", 16).window_nll);
        }
    }
}

// ---- palu-eval round trip and transformers -----------------------------------------------------

TEST(DeepseekExport, F32RoundTrip_PaluEvalIdentical) {
    const fs::path root = make_temp_dir("ds_roundtrip");
    RemoveAtExit cleanup{root};
    auto src = formats::open_model(mla_fixture());
    pipeline::export_deepseek(*src, root / "out", {DType::F32});
    std::vector<int32_t> ids;
    for (int32_t i = 0; i < 96; ++i) ids.push_back((i * 37 + 5) % 96);
    write_ids(root / "ids.i32", ids);
    const auto a = eval_ppl(mla_fixture(), root / "ids.i32", 24);
    const auto b = eval_ppl(root / "out", root / "ids.i32", 24);
    ASSERT_EQ(a.window_nll.size(), 4u);
    EXPECT_EQ(a.window_nll, b.window_nll);  // same f32 bytes, same engine: bit-identical
    EXPECT_EQ(a.ppl, b.ppl);
    EXPECT_EQ(a.kv_bytes_per_token, b.kv_bytes_per_token);
}

// transformers 5.24 (CPU) ran the f32 export of mla_tiny in float64 and float32 over 8 windows of
// 32 random ids (tests/reference/deepseek_export_hf_check.py); palu-eval must match the float64
// window NLLs. Measured: 1.3e-7 nats worst window (palu f32 vs torch f64; torch's own f32 run is
// 1.3e-7 off as well): f32 rounding of 64-wide dot products and a 96-way softmax. Bound 2e-6 nats.
TEST(DeepseekExport, MatchesRecordedTransformersPpl) {
    const json ref =
        read_json(source_root() / "tests/reference/mla_tiny_deepseek_export_hf_ppl.json");
    ASSERT_TRUE(ref["problems"].empty()) << ref["problems"].dump();
    for (const auto& [name, run] : ref["runs"].items())
        for (const auto& [k, v] : run["loading_info"].items())
            EXPECT_TRUE(v.empty()) << name << " " << k << ": " << v.dump();
    const fs::path root = make_temp_dir("ds_hf");
    RemoveAtExit cleanup{root};
    auto src = formats::open_model(mla_fixture());
    pipeline::export_deepseek(*src, root / "out", {DType::F32});
    write_ids(root / "ids.i32", ref["ids"].get<std::vector<int32_t>>());
    const auto got = eval_ppl(root / "out", root / "ids.i32", ref["seqlen"].get<int64_t>());
    const auto want = ref["runs"]["float64"]["window_nll"].get<std::vector<double>>();
    ASSERT_EQ(got.window_nll.size(), want.size());
    double worst = 0;
    for (size_t i = 0; i < want.size(); ++i)
        worst = std::max(worst, std::abs(got.window_nll[i] - want[i]));
    const double hf_ppl = ref["runs"]["float64"]["ppl"].get<double>();
    std::printf("palu ppl %.9f, transformers f64 %.9f (rel %.2e), worst window %.2e nats\n",
                got.ppl, hf_ppl, got.ppl / hf_ppl - 1, worst);
    EXPECT_LE(worst, 2e-6);
    EXPECT_NEAR(got.ppl / hf_ppl, 1.0, 2e-6);
}

// ---- vLLM geometry -----------------------------------------------------------------------------

TEST(DeepseekExport, VllmGeometry) {
    auto geom = [](int64_t r, int64_t rope) {
        MlaConfig m;
        m.kv_lora_rank = r;
        m.qk_rope_head_dim = rope;
        return pipeline::vllm_accepts_mla_geometry(m);
    };
    EXPECT_TRUE(geom(512, 64));
    EXPECT_TRUE(geom(256, 64));
    EXPECT_TRUE(geom(448, 128));  // TransMLA's split, 576 in all
    EXPECT_FALSE(geom(16, 8));
    EXPECT_FALSE(geom(512, 128));

    const fs::path root = make_temp_dir("ds_vllm");
    RemoveAtExit cleanup{root};
    write_mla_checkpoint(root / "w320", 256, 64);
    auto ok = formats::open_model(root / "w320");
    DeepseekExportOptions o;
    o.target = DeepseekRuntime::Vllm;
    pipeline::export_deepseek(*ok, root / "out320", o);
    EXPECT_EQ(read_json(root / "out320/config.json")["kv_lora_rank"], 256);

    // The fixture's 16 + 8 is refused for vLLM before anything is written, written otherwise.
    auto tiny = formats::open_model(mla_fixture());
    const auto before = listing(root);
    try {
        pipeline::export_deepseek(*tiny, root / "out24", o);
        FAIL() << "expected UsageError";
    } catch (const UsageError& e) {
        const std::string msg = e.what();
        EXPECT_NE(msg.find("--target vllm: kv_lora_rank 16 + qk_rope_head_dim 8 = 24"),
                  std::string::npos)
            << msg;
        EXPECT_NE(msg.find("576 or 320"), std::string::npos) << msg;
    }
    EXPECT_EQ(listing(root), before);
    pipeline::export_deepseek(*tiny, root / "out24");
    EXPECT_TRUE(fs::exists(root / "out24/model.safetensors"));
}

// ---- refusals: one UsageError, nothing on disk
// ---------------------------------------------------

void expect_refused(const WeightSource& src, const fs::path& out, const DeepseekExportOptions& o,
                    const std::string& want) {
    const fs::path parent = out.parent_path();
    const auto before = listing(parent);
    try {
        pipeline::export_deepseek(src, out, o);
        FAIL() << "expected UsageError containing: " << want;
    } catch (const UsageError& e) {
        EXPECT_NE(std::string(e.what()).find(want), std::string::npos) << e.what();
    }
    EXPECT_EQ(listing(parent), before);
}

TEST(DeepseekExport, BadInput_UsageErrorNothingOnDisk) {
    const fs::path root = make_temp_dir("ds_bad");
    RemoveAtExit cleanup{root};
    const fs::path work = root / "work";
    fs::create_directories(work);
    const std::string needs_mla =
        "not an MLA checkpoint: --to deepseek needs an MLA checkpoint; hint: make one with "
        "palu-compress --layout mla";

    write_tiny_checkpoint(root / "llama");
    auto llama = formats::open_model(root / "llama");
    expect_refused(*llama, work / "a", {}, "is a plain llama model, " + needs_mla);

    write_palu_layout_checkpoint(root / "llama2", root / "palu");
    auto palu = formats::open_model(root / "palu");
    expect_refused(*palu, work / "b", {}, "is a palu-layout compressed checkpoint, " + needs_mla);

    auto mla = formats::open_model(mla_fixture());
    expect_refused(*mla, work / "c", {DType::I8},
                   "--dtype I8 is not supported: expected f32, f16 or bf16");

    // An existing non-empty --out: refused unless overwrite, its content untouched.
    fs::create_directories(work / "d");
    std::ofstream(work / "d/keep.txt") << "x";
    expect_refused(*mla, work / "d", {}, "exists and is not empty; hint: pass --overwrite");
    EXPECT_TRUE(fs::exists(work / "d/keep.txt"));
    DeepseekExportOptions ow;
    ow.overwrite = true;
    pipeline::export_deepseek(*mla, work / "d", ow);
    EXPECT_FALSE(fs::exists(work / "d/keep.txt"));
    EXPECT_TRUE(fs::exists(work / "d/config.json"));

    // rope dims not interleaved: runtimes assume interleaved pairs.
    fs::copy(mla_fixture(), root / "half");
    json cfg = read_json(root / "half/config.json");
    cfg["rope_interleave"] = false;
    std::ofstream(root / "half/config.json") << cfg.dump(2);
    auto half = formats::open_model(root / "half");
    expect_refused(*half, work / "e", {}, "rope_interleave is false");
}

TEST(DeepseekExport, RunExport_TargetsAndOptions) {
    EXPECT_EQ(pipeline::parse_export_target("deepseek"), pipeline::ExportTarget::Deepseek);
    EXPECT_EQ(pipeline::parse_export_target("mla"), pipeline::ExportTarget::Deepseek);
    EXPECT_THROW(pipeline::parse_export_target("onnx"), UsageError);
    EXPECT_EQ(pipeline::parse_deepseek_runtime("vllm"), DeepseekRuntime::Vllm);
    EXPECT_THROW(pipeline::parse_deepseek_runtime("sglang"), UsageError);
    const fs::path root = make_temp_dir("ds_run");
    RemoveAtExit cleanup{root};
    pipeline::ExportParams p;
    p.model_path = mla_fixture().string();
    p.to = pipeline::ExportTarget::Dense;
    p.out_path = (root / "out").string();
    p.deepseek.target = DeepseekRuntime::Vllm;
    EXPECT_THROW(pipeline::run_export(p), UsageError);  // --target with --to dense
    p.to = pipeline::ExportTarget::Deepseek;
    p.deepseek.target = DeepseekRuntime::Any;
    pipeline::run_export(p);
    EXPECT_TRUE(fs::exists(root / "out/model.safetensors"));
}

}  // namespace
}  // namespace palu::test
