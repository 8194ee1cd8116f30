// palu-eval ppl and palu-inspect on the MLA (DeepSeek-V3) fixture tests/reference/mla_tiny,
// without the CLI: a finite perplexity, and the MLA cache's bytes per token in both reports.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <fstream>
#include <vector>

#include "palu/pipeline/eval.h"
#include "palu/pipeline/inspect.h"
#include "test_data.h"

namespace palu::pipeline {
namespace {

std::string mla_fixture() {
    return (palu::test::source_root() / "tests" / "reference" / "mla_tiny").string();
}

// 2 layers · (kv_lora_rank 16 + qk_rope 8) · 4 bytes.
constexpr int64_t kMlaBytesPerToken = 2 * (16 + 8) * 4;

TEST(MlaEval, RunEvalPpl_FiniteAndMlaBytes) {
    const auto tokens = std::filesystem::path(::testing::TempDir()) / "mla_tokens.i32";
    {
        std::vector<int32_t> ids;
        for (int32_t i = 0; i < 64; ++i) ids.push_back((i * 37 + 5) % 96);
        std::ofstream out(tokens, std::ios::binary);
        out.write(reinterpret_cast<const char*>(ids.data()),
                  static_cast<std::streamsize>(ids.size() * sizeof(int32_t)));
    }
    EvalPplParams p;
    p.model_path = mla_fixture();
    p.eval.tokens_path = tokens.string();
    p.eval.seqlen = 16;
    const EvalPplResult r = run_eval_ppl(p);
    EXPECT_TRUE(std::isfinite(r.ppl));
    EXPECT_GT(r.ppl, 1.0);
    EXPECT_EQ(r.kv_bytes_per_token, kMlaBytesPerToken);
}

TEST(MlaEval, Inspect_ReportsMlaCacheBytes) {
    InspectParams p;
    p.model_path = mla_fixture();
    const InspectResult r = run_inspect(p);
    ASSERT_TRUE(r.config.is_mla());
    EXPECT_EQ(r.kv_bytes_per_token, kMlaBytesPerToken);
}

}  // namespace
}  // namespace palu::pipeline
