// palu pipeline tests: palu-compress --layout mla end to end on generated tiny Llamas (hermetic).
// Checked: with one KV head the rewrite is exact before the latent norm (the ablation's RoPE-only
// and full-rank rows equal the original perplexity), the linearised norm stays within its bound;
// a GQA conversion writes a DeepSeek-V3 checkpoint that palu's engine runs with the figures of the
// report, the cache it measures is (kv_lora_rank + rope)·4 bytes per layer; every bad request is
// refused before any work and leaves nothing on disk.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <vector>

#include "palu/core/error.h"
#include "palu/formats/model_loader.h"
#include "palu/pipeline/eval.h"
#include "palu/pipeline/mla.h"
#include "test_data.h"
#include "tiny_model.h"

namespace palu::test {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

constexpr int64_t kVocab = 96;
constexpr int64_t kSeq = 32;

void write_tokens(const fs::path& path, int64_t n, uint32_t seed) {
    std::mt19937 rng(seed);
    std::uniform_int_distribution<int32_t> any(0, kVocab - 1);
    std::vector<int32_t> ids(static_cast<size_t>(n));
    for (auto& v : ids) v = any(rng);
    std::ofstream f(path, std::ios::binary);
    f.write(reinterpret_cast<const char*>(ids.data()),
            static_cast<std::streamsize>(ids.size() * sizeof(int32_t)));
}

class MlaCompress : public ::testing::Test {
   protected:
    void SetUp() override {
        root_ = make_temp_dir("mla_compress");
        write_tokens(root_ / "calib.i32", 2048, 21);
        write_tokens(root_ / "eval.i32", 8 * kSeq, 22);
    }
    void TearDown() override { fs::remove_all(root_); }

    fs::path model(int64_t n_kv, bool bias = false) {
        TinyConfig tc;
        tc.n_vocab = kVocab;
        tc.n_kv_heads = n_kv;
        tc.qkv_bias = bias;
        const fs::path dir = root_ / ("tiny_kv" + std::to_string(n_kv) + (bias ? "_bias" : ""));
        if (!fs::exists(dir)) write_tiny_checkpoint(dir, tc);
        return dir;
    }
    pipeline::MlaCompressParams params(const fs::path& m, const std::string& out) {
        pipeline::MlaCompressParams p;
        p.model_path = m.string();
        p.out_dir = (root_ / out).string();
        p.calib.tokens_path = (root_ / "calib.i32").string();
        p.calib.n_samples = 8;
        p.calib.seqlen = kSeq;
        p.eval.emplace().tokens_path = (root_ / "eval.i32").string();
        p.eval->seqlen = kSeq;
        p.run.n_threads = 1;
        p.run.progress = false;
        return p;
    }
    fs::path root_;
};

TEST_F(MlaCompress, OneKvHead_ExactBeforeTheNorm) {
    // 4 heads / 1 KV head, d_head 16: K+V = 32 dims per layer, all kept, rope = the whole head.
    pipeline::MlaCompressParams p = params(model(1), "mqa");
    p.mla.kv_lora_rank = 32;
    p.mla.ablation = true;
    const pipeline::MlaCompressResult r = pipeline::run_compress_mla(p);
    ASSERT_EQ(r.ablation.size(), 6u);
    const double orig = r.ablation[0].ppl;
    // RoPE decoupling is exact with one KV head; a full-rank latent is exact without the norm
    // (f64 factors rounded to f32 weights: ~1e-6 relative).
    EXPECT_NEAR(r.ablation[1].ppl / orig, 1.0, 1e-5) << r.ablation[1].name;
    EXPECT_NEAR(r.ablation[2].ppl / orig, 1.0, 1e-5) << r.ablation[2].name;
    // The linearised norm is within its bound (≤ 0.5 % per latent on the calibration tokens).
    EXPECT_NEAR(r.ablation[5].ppl / orig, 1.0, 5e-3) << r.ablation[5].name;
    for (const auto& l : r.layers) EXPECT_NEAR(l.rope_kept_energy, 1.0, 1e-9);
}

TEST_F(MlaCompress, Gqa_WritesADeepSeekCheckpointTheEngineRuns) {
    pipeline::MlaCompressParams p = params(model(2), "gqa");
    p.rank.ratio = 0.5;  // 64 K+V dims per layer -> 32 = 16 rope + 16 latent
    p.rank_given = true;
    p.mla.norm_fit = pipeline::LatentNormFit::Linearize;
    const pipeline::MlaCompressResult r = pipeline::run_compress_mla(p);
    EXPECT_EQ(r.geometry.rope_dim, 16);
    EXPECT_EQ(r.geometry.kv_lora_rank, 16);
    EXPECT_EQ(r.geometry.kv_bytes_per_token, 2 * 2 * 32);
    EXPECT_EQ(r.geometry.original_kv_bytes, 2 * 2 * 64);

    const auto ckpt = formats::open_model(p.out_dir);
    const ModelConfig& c = ckpt->config();
    ASSERT_TRUE(c.is_mla());
    EXPECT_EQ(c.mla->kv_lora_rank, 16);
    EXPECT_EQ(c.mla->qk_rope_head_dim, 16);
    EXPECT_EQ(c.mla->qk_nope_head_dim, 16);
    EXPECT_EQ(c.n_kv_heads, c.n_heads);
    EXPECT_DOUBLE_EQ(c.rms_norm_eps, 1e-6);  // linearised: every runtime's latent-norm eps

    std::ifstream f(fs::path(p.out_dir) / "config.json");
    const json cfg = json::parse(f);
    EXPECT_EQ(cfg["model_type"], "deepseek_v3");
    EXPECT_EQ(cfg["first_k_dense_replace"], 2);
    EXPECT_EQ(cfg["palu"]["layout"], "mla");
    EXPECT_EQ(cfg["palu"]["mla"]["latent_norm_fit"], "linearize");
    EXPECT_TRUE(fs::exists(fs::path(p.out_dir) / "report.json"));

    // The written checkpoint scores what the report says (same windows, one thread).
    pipeline::EvalPplParams ep;
    ep.model_path = p.out_dir;
    ep.eval = *p.eval;
    ep.run = p.run;
    const pipeline::EvalPplResult e = pipeline::run_eval_ppl(ep);
    ASSERT_TRUE(r.ppl_mla.has_value());
    EXPECT_NEAR(e.ppl, r.ppl_mla->ppl, 1e-9 * e.ppl);
    EXPECT_EQ(e.kv_bytes_per_token, 2 * (16 + 16) * 4);  // f32 engine cache
    EXPECT_GT(e.ppl, 1.0);
}

TEST_F(MlaCompress, BadRequestsLeaveNothingOnDisk) {
    auto refused = [&](pipeline::MlaCompressParams p, const std::string& what) {
        EXPECT_THROW(pipeline::run_compress_mla(p), UsageError) << what;
        EXPECT_FALSE(fs::exists(p.out_dir)) << what;
    };
    pipeline::MlaCompressParams p = params(model(2), "bad");
    p.mla.kv_lora_rank = 8;
    auto q = p;
    q.mla.rope_dim = 18;  // larger than the head (16)
    refused(q, "rope > head");
    q = p;
    q.mla.rope_dim = 7;
    refused(q, "odd rope");
    q = p;
    q.mla.rope_dim = 12;  // fold needs a divisor
    refused(q, "fold divisor");
    q = p;
    q.mla.kv_lora_rank = 0;
    q.rank.ratio = 0.2;  // round(0.2·64) = 13 dims < rope 16
    q.rank_given = true;
    refused(q, "budget below the rope part");
    q = p;
    q.mla.target = pipeline::MlaTarget::Vllm;  // 8 + 16 is neither 576 nor 320
    refused(q, "vllm geometry");
    q = p;
    q.mla.kv_lora_rank = 200;  // above min(64, d_model 64)
    refused(q, "rank above the layer");
    q = p;
    q.model_path = model(2, /*bias=*/true).string();
    refused(q, "q/k/v biases");
    q = p;
    q.calib.tokens_path.clear();
    refused(q, "no calibration");
    q = p;
    q.mla.norm_fit = pipeline::LatentNormFit::Linearize;
    q.dtype = DType::F16;
    refused(q, "linearize in f16");
    q = p;
    q.mla.ablation = true;
    q.eval.reset();
    refused(q, "ablation without an evaluation text");
}

}  // namespace
}  // namespace palu::test
