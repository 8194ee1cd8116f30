// palu pipeline tests: palu-compress end to end on a generated tiny Llama, with no shared data
// (hermetic; a few seconds). run_compress calibrates on a token file, searches ranks (Fisher
// uniform), decomposes with the whitened SVD, writes the checkpoint and report.json, and evaluates
// the original and the compressed model on a second token file. Checked: the output loads, the
// report's sizes, ratios and ranks agree with the checkpoint and the measured latent cache, and a
// separate palu-eval run reproduces the report's perplexity. The reference parity on stories260K
// is in test_compress.cpp (shared data).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "palu/core/error.h"
#include "palu/core/format.h"
#include "palu/formats/model_loader.h"
#include "palu/formats/palu_checkpoint.h"
#include "palu/model/weights.h"
#include "palu/pipeline/compress.h"
#include "palu/pipeline/eval.h"
#include "test_data.h"
#include "tiny_model.h"

namespace palu::test {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

constexpr int64_t kVocab = 96;
constexpr int64_t kEvalSeqlen = 32;
constexpr int kThreads = 1;  // the report's and the re-run's evaluation use the same thread count

// A seeded token stream with structure: a first-order Markov chain in which each token has 4
// likely successors (80%) and otherwise jumps uniformly, so windows repeat n-grams and the
// hidden states span every direction of d_model (non-degenerate Gram matrices) without being
// white noise.
std::vector<int32_t> markov_tokens(int64_t n, uint32_t seed) {
    std::mt19937 rng(seed);
    std::uniform_int_distribution<int32_t> any(0, static_cast<int32_t>(kVocab - 1));
    std::uniform_int_distribution<int> pick(0, 3);
    std::uniform_real_distribution<double> u(0.0, 1.0);
    std::vector<std::vector<int32_t>> next(static_cast<size_t>(kVocab));
    for (auto& s : next)
        for (int i = 0; i < 4; ++i) s.push_back(any(rng));
    std::vector<int32_t> out(static_cast<size_t>(n));
    int32_t t = any(rng);
    for (auto& v : out) {
        v = t;
        t = u(rng) < 0.8 ? next[static_cast<size_t>(t)][static_cast<size_t>(pick(rng))] : any(rng);
    }
    return out;
}

void write_i32(const fs::path& path, const std::vector<int32_t>& ids) {
    std::ofstream f(path, std::ios::binary);
    f.write(reinterpret_cast<const char*>(ids.data()),
            static_cast<std::streamsize>(ids.size() * sizeof(int32_t)));
    ASSERT_TRUE(f.good()) << path;
}

// The tiny model and the two token files, written once for the suite.
class CompressE2e : public ::testing::Test {
   protected:
    static void SetUpTestSuite() {
        root_ = new fs::path(make_temp_dir("compress_e2e"));
        TinyConfig tc;  // 2 layers, d_model 64, 4 heads / 2 KV heads, d_head 16, vocab 96, f32
        tc.n_vocab = kVocab;
        write_tiny_checkpoint(model_dir(), tc);
        write_i32(calib_tokens(), markov_tokens(2048, 11));
        write_i32(eval_tokens(), markov_tokens(8 * kEvalSeqlen, 12));  // 8 windows
    }
    static void TearDownTestSuite() {
        fs::remove_all(*root_);
        delete root_;
        root_ = nullptr;
    }
    static fs::path model_dir() { return *root_ / "tiny"; }
    static fs::path calib_tokens() { return *root_ / "calib.i32"; }
    static fs::path eval_tokens() { return *root_ / "eval.i32"; }
    static fs::path out_dir(const std::string& name) { return *root_ / name; }

   private:
    static fs::path* root_;
};
fs::path* CompressE2e::root_ = nullptr;

// Every setting of the runs in one place (CompressParams is being reorganised; adapt only here):
// Fisher-uniform rank search at `ratio`, whitened SVD, 8 × 32 calibration windows, evaluation on
// every 32-token window of the evaluation file, one thread, no progress output.
pipeline::CompressParams e2e_params(const fs::path& model, const fs::path& calib,
                                    const fs::path& eval, const fs::path& out, double ratio) {
    pipeline::CompressParams p;
    p.model_path = model.string();
    p.out_dir = out.string();
    p.rank.ratio = ratio;
    p.rank.method = compress::RankSearchMethod::FisherUniform;
    p.decompose.method = compress::DecomposeMethod::Whitened;
    p.calib.tokens_path = calib.string();
    p.calib.n_samples = 8;
    p.calib.seqlen = 32;
    p.eval.emplace().tokens_path = eval.string();
    p.eval->seqlen = kEvalSeqlen;
    p.run.n_threads = kThreads;
    p.run.progress = false;
    return p;
}

json read_json(const fs::path& path) {
    std::ifstream f(path);
    EXPECT_TRUE(f.good()) << path;
    return json::parse(f);
}

TEST_F(CompressE2e, HalfRatio_CheckpointReportAndEvalAgree) {
    const fs::path out = out_dir("ratio_0.5");
    const json returned =
        pipeline::run_compress(e2e_params(model_dir(), calib_tokens(), eval_tokens(), out, 0.5))
            .to_json();

    // report.json on disk is the report run_compress returned.
    ASSERT_TRUE(fs::exists(out / "report.json"));
    const json r = read_json(out / "report.json");
    EXPECT_EQ(r, returned);

    // The output is a loadable compressed checkpoint of the same architecture.
    const auto src = formats::open_model(model_dir());
    const auto ckpt = formats::open_model(out);
    EXPECT_TRUE(formats::is_palu_checkpoint(*ckpt));
    EXPECT_EQ(ckpt->config().n_layers, 2);
    EXPECT_EQ(ckpt->config().d_model, src->config().d_model);
    EXPECT_EQ(ckpt->config().n_kv_heads, src->config().n_kv_heads);

    // Perplexities: finite and above 1 (for a random model compression may even lower it, so no
    // order between them is asserted).
    ASSERT_TRUE(r["eval"].is_object());
    const double ppl_original = r["eval"]["ppl_original"].get<double>();
    const double ppl_compressed = r["eval"]["ppl_compressed"].get<double>();
    EXPECT_TRUE(std::isfinite(ppl_original) && ppl_original > 1.0) << ppl_original;
    EXPECT_TRUE(std::isfinite(ppl_compressed) && ppl_compressed > 1.0) << ppl_compressed;
    EXPECT_EQ(r["eval"]["n_windows"].get<int64_t>(), 8);

    // KV bytes per token: the latent cache the engine allocated (f16 latents, 2 bytes per kept
    // dim of all layers, K and V) is what the report computed from the ranks.
    const json& palu = r["palu"];
    const int64_t kept = palu["rank_search"]["kept_dims"].get<int64_t>();
    const int64_t full = palu["rank_search"]["full_dims"].get<int64_t>();
    EXPECT_EQ(full, 2 * 2 * 2 * 16);  // layers × (K, V) × KV heads × d_head
    EXPECT_EQ(r["eval"]["kv_cache_bytes_per_token_measured"].get<int64_t>(),
              palu["kv_bytes_per_token"]["compressed"].get<int64_t>());
    EXPECT_EQ(palu["kv_bytes_per_token"]["compressed"].get<int64_t>(), 2 * kept);
    EXPECT_EQ(r["eval"]["kv_cache_latent_bits"].get<int>(), 16);

    // Achieved ratio: within one rank multiple (of the total kept dims) of the target.
    const int64_t multiple = palu["rank_search"]["rank_multiple"].get<int64_t>();
    const double achieved = palu["rank_search"]["achieved_ratio"].get<double>();
    EXPECT_DOUBLE_EQ(achieved, static_cast<double>(kept) / static_cast<double>(full));
    EXPECT_LE(std::abs(achieved - 0.5), static_cast<double>(multiple) / static_cast<double>(full))
        << "kept " << kept << " of " << full << ", rank multiple " << multiple;
    EXPECT_LT(kept, full);  // compression is not trivial

    // Ranks: the report's per-layer ranks are the checkpoint's head_wise_ranks and the factor
    // shapes (VT [Σ r_g, d_model], U.g [group_size · d_head, r_g]).
    const json cfg = read_json(out / "config.json");
    const int64_t group_size = palu["group_size"].get<int64_t>();
    int64_t n_kept_ckpt = 0;
    ASSERT_EQ(r["layers"].size(), 2u);
    for (int64_t l = 0; l < 2; ++l)
        for (const char* which : {"k", "v"}) {
            const std::string proj =
                strfmt("model.layers.%lld.self_attn.%s_proj", static_cast<long long>(l), which);
            const auto ranks =
                r["layers"][static_cast<size_t>(l)][which]["ranks"].get<std::vector<int64_t>>();
            EXPECT_EQ(
                ranks,
                r["ranks"]["layers"][static_cast<size_t>(l)][which].get<std::vector<int64_t>>())
                << proj;
            EXPECT_EQ(cfg["head_wise_ranks"][proj].get<std::vector<int64_t>>(), ranks) << proj;
            const int64_t sum = std::accumulate(ranks.begin(), ranks.end(), int64_t{0});
            n_kept_ckpt += sum;
            EXPECT_EQ(ckpt->load_f32(proj + ".VT.weight").shape(), (std::vector<int64_t>{sum, 64}))
                << proj;
            for (size_t g = 0; g < ranks.size(); ++g)
                EXPECT_EQ(ckpt->load_f32(strfmt("%s.U.%zu.weight", proj.c_str(), g)).shape(),
                          (std::vector<int64_t>{group_size * 16, ranks[g]}))
                    << proj << " group " << g;
        }
    EXPECT_EQ(n_kept_ckpt, kept);

    // palu-eval on the written checkpoint with the same tokens and threads: the same code path
    // (run_eval_ppl) as the report's evaluation, so the same perplexity to rounding of the sum.
    pipeline::EvalPplParams e;
    e.model_path = out.string();
    e.eval.tokens_path = eval_tokens().string();
    e.eval.seqlen = kEvalSeqlen;
    e.run.n_threads = kThreads;
    e.run.progress = false;
    const pipeline::EvalPplResult again = pipeline::run_eval_ppl(e);
    EXPECT_EQ(again.n_windows, 8);
    EXPECT_NEAR(again.ppl / ppl_compressed, 1.0, 1e-9) << again.ppl << " vs " << ppl_compressed;
    EXPECT_EQ(again.kv_bytes_per_token,
              r["eval"]["kv_cache_bytes_per_token_measured"].get<int64_t>());
}

// At ratio 1 every latent dimension is kept: the whitened SVD W·S = U Σ Vᵀ at full rank gives
// factors with U · (Σ Vᵀ S⁻¹) = W exactly in exact arithmetic, so the compressed model is the
// original up to the rounding of the f32 factors and of the f16 latent cache (the dense model's
// cache is f32); the perplexity moves by that rounding only: measured +1.4e-5 relative, bound 1e-4.
TEST_F(CompressE2e, FullRankWhitened_PerplexityUnchanged) {
    const fs::path out = out_dir("ratio_1");
    const json r =
        pipeline::run_compress(e2e_params(model_dir(), calib_tokens(), eval_tokens(), out, 1.0))
            .to_json();
    EXPECT_EQ(r["palu"]["rank_search"]["kept_dims"].get<int64_t>(),
              r["palu"]["rank_search"]["full_dims"].get<int64_t>());
    const double ppl_original = r["eval"]["ppl_original"].get<double>();
    const double ppl_compressed = r["eval"]["ppl_compressed"].get<double>();
    std::printf("full rank: ppl original %.9f, compressed %.9f (%+.3g relative)\n", ppl_original,
                ppl_compressed, ppl_compressed / ppl_original - 1.0);
    EXPECT_NEAR(ppl_compressed / ppl_original, 1.0, 1e-4);
}

TEST_F(CompressE2e, RatioAboveOne_UsageErrorNothingWritten) {
    const fs::path out = out_dir("ratio_1.5");
    try {
        pipeline::run_compress(e2e_params(model_dir(), calib_tokens(), eval_tokens(), out, 1.5));
        ADD_FAILURE() << "no error";
    } catch (const UsageError& e) {
        EXPECT_NE(std::string(e.what()).find("--ratio must be in (0, 1], got 1.5"),
                  std::string::npos)
            << e.what();
    }
    EXPECT_FALSE(fs::exists(out));
}

// One palu-compress --eval run opens the model once (calibration, rank search, decomposition,
// writing and both evaluations share that WeightSource) and, without --stats, keeps the
// calibration statistics in memory: no HDF5 file appears anywhere beside the output.
TEST_F(CompressE2e, OneRun_OpensModelOnce_NoStatsFileWithoutStats) {
    const fs::path out = out_dir("open_once");
    auto h5_files = [&] {
        std::vector<std::string> found;
        for (const auto& e : fs::recursive_directory_iterator(out.parent_path()))
            if (e.path().extension() == ".h5") found.push_back(e.path().string());
        return found;
    };
    const std::vector<std::string> before_h5 = h5_files();
    const int64_t opens = formats::open_model_count();
    const pipeline::CompressResult r =
        pipeline::run_compress(e2e_params(model_dir(), calib_tokens(), eval_tokens(), out, 0.5));
    EXPECT_EQ(formats::open_model_count() - opens, 1);
    ASSERT_TRUE(r.eval.has_value());
    EXPECT_EQ(h5_files(), before_h5);
    EXPECT_TRUE(r.palu.calibration.has_value());
    EXPECT_TRUE(r.palu.calibration->stats_path.empty());

    // With --stats the same run keeps them, and a second run reuses the file (still one open).
    pipeline::CompressParams p =
        e2e_params(model_dir(), calib_tokens(), eval_tokens(), out_dir("with_stats"), 0.5);
    p.calib.stats_path = (out.parent_path() / "kept.calib.h5").string();
    const pipeline::CompressResult first = pipeline::run_compress(p);
    ASSERT_TRUE(fs::exists(p.calib.stats_path));
    EXPECT_FALSE(first.palu.calibration->stats_reused);
    p.out_dir = out_dir("with_stats_again").string();
    const int64_t opens2 = formats::open_model_count();
    const pipeline::CompressResult second = pipeline::run_compress(p);
    EXPECT_EQ(formats::open_model_count() - opens2, 1);
    EXPECT_TRUE(second.palu.calibration->stats_reused);
    // Same statistics, same ranks and perplexity as the in-memory run.
    EXPECT_EQ(second.plan.k_ranks, r.plan.k_ranks);
    EXPECT_EQ(second.plan.v_ranks, r.plan.v_ranks);
    EXPECT_NEAR(second.eval->compressed.ppl, r.eval->compressed.ppl, 1e-9 * r.eval->compressed.ppl);
}

}  // namespace
}  // namespace palu::test
