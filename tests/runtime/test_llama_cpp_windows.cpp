// palu-eval ppl --llama-cpp-windows, hermetic: the scheme of llama.cpp's llama-perplexity
// (tools/perplexity/perplexity.cpp) recomputed here from full-window logits — chunk i =
// tokens[i·N, (i+1)·N) with its first token replaced by BOS, positions N/2 .. N−2 scored, the
// estimate exp(total NLL / total predictions) — against eval_ppl, which runs the first half of each
// chunk without logits and the second half against the cache.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include "mla_fixture.h"
#include "palu/core/error.h"
#include "palu/formats/model_loader.h"
#include "palu/model/transformer.h"
#include "palu/pipeline/eval.h"
#include "test_data.h"

namespace palu::pipeline {
namespace {

namespace fs = std::filesystem;

TEST(PplLlamaCppWindows, MatchesTheSchemeFromFullLogits) {
    const fs::path dir = test::make_temp_dir("llama_windows") / "mla";
    test::TinyMlaConfig t;
    t.n_vocab = 96;
    t.lm_head_std = 0.3;
    test::write_tiny_mla_checkpoint(dir, t);
    auto src = formats::open_model(dir.string());
    constexpr int64_t kN = 16, kTokens = 16 * 5 + 7;  // 5 full chunks and a partial one
    std::vector<int32_t> tokens(kTokens);
    for (int64_t i = 0; i < kTokens; ++i) tokens[i] = static_cast<int32_t>((i * 37 + 11) % 96);
    EvalOptions e;
    e.seqlen = kN;
    e.llama_cpp_windows = true;
    const EvalPplResult r = eval_ppl(*src, tokens, e);
    EXPECT_EQ(r.windows, "llama.cpp");
    ASSERT_EQ(r.n_windows, 5);

    model::Transformer engine(*src);
    const int32_t bos = static_cast<int32_t>(src->config().bos_token_id);
    ASSERT_EQ(bos, 1);
    double total = 0.0;
    int64_t count = 0;
    for (int64_t w = 0; w < 5; ++w) {
        std::vector<int32_t> win(tokens.begin() + w * kN, tokens.begin() + (w + 1) * kN);
        win[0] = bos;
        auto cache = engine.make_cache(1, kN);
        const Tensor logits = engine.forward(win.data(), 1, kN, *cache);  // [N, n_vocab]
        const double nll = model::mean_nll(logits.data() + (kN / 2) * t.n_vocab, t.n_vocab,
                                           win.data() + kN / 2 + 1, kN - kN / 2 - 1);
        EXPECT_NEAR(r.window_nll[static_cast<size_t>(w)], nll, 1e-5) << "chunk " << w;
        total += nll * static_cast<double>(kN - kN / 2 - 1);
        count += kN - kN / 2 - 1;
    }
    EXPECT_NEAR(r.nll, total / static_cast<double>(count), 1e-5);
    EXPECT_NEAR(r.ppl, std::exp(total / static_cast<double>(count)), 1e-4 * r.ppl);
    // The default scheme is another number (N − 1 predictions, no BOS replacement).
    EvalOptions d = e;
    d.llama_cpp_windows = false;
    EXPECT_GT(std::abs(eval_ppl(*src, tokens, d).nll - r.nll), 1e-4);
}

TEST(PplLlamaCppWindows, TooFewTokensRefusedAsLlamaPerplexity) {
    const fs::path dir = test::make_temp_dir("llama_windows_few") / "mla";
    test::TinyMlaConfig t;
    t.n_vocab = 96;
    test::write_tiny_mla_checkpoint(dir, t);
    auto src = formats::open_model(dir.string());
    const std::vector<int32_t> tokens(31, 5);  // llama-perplexity needs 2·N = 32
    EvalOptions e;
    e.seqlen = 16;
    e.llama_cpp_windows = true;
    try {
        eval_ppl(*src, tokens, e);
        FAIL() << "expected a UsageError";
    } catch (const UsageError& err) {
        EXPECT_NE(std::string(err.what()).find("needs at least 2·seqlen = 32"), std::string::npos)
            << err.what();
    }
}

}  // namespace
}  // namespace palu::pipeline
