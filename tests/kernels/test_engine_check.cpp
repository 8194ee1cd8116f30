// palu kernels tests: the latent decode kernel against the CPU engine's own latent attention on a
// small in-memory compressed model (engine_check.h). GPU-free tests check the CPU half: the kernel
// problem built from the engine cache (layout conversion, rank padding, quantized codes) gives the
// engine's attention output through the double reference, and problems survive a save/load. Device
// tests (skip without a GPU) run the kernel on those problems against the engine.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "engine_check.h"
#include "palu/compress/decompose.h"
#include "palu/core/dtype.h"
#include "palu/core/error.h"
#include "palu/core/format.h"
#include "synthetic_model.h"

using namespace palu;
using namespace palu::cuda;
using namespace palu::cuda::testing;

namespace {

// Replaces every k_proj / v_proj of `dense` by plain-SVD low-rank factors, head groups of `s` KV
// heads, rank ranks[g % ranks.size()] for group g (uneven ranks exercise the kernel-side padding).
// Factors are rounded to f16, as a checkpoint written with --factor-dtype f16 stores them.
float f16_round(float x) {
    return f16_to_f32(f32_to_f16(x));
}

test::MemoryWeightSource compress_model(const test::MemoryWeightSource& dense, int64_t s,
                                        const std::vector<int64_t>& ranks_cycle) {
    test::MemoryWeightSource m = dense;
    const ModelConfig& c = dense.cfg;
    for (int64_t l = 0; l < c.n_layers; ++l) {
        for (const char* proj : {"k_proj", "v_proj"}) {
            const std::string p =
                strfmt("model.layers.%lld.self_attn.%s", static_cast<long long>(l), proj);
            const Tensor w = dense.load_f32(p + ".weight");
            const RowMatrixXf wm = Eigen::Map<const RowMatrixXf>(w.data(), w.dim(0), w.dim(1));
            std::vector<int64_t> ranks;
            for (int64_t g = 0; g < c.n_kv_heads / s; ++g)
                ranks.push_back(ranks_cycle[size_t(g) % ranks_cycle.size()]);
            const compress::LowRankKV kv = compress::decompose_projection(
                wm, {}, ranks, c.d_head, s, compress::DecomposeMethod::Plain, nullptr, p);
            m.tensors_by_name.erase(p + ".weight");
            Tensor vt({kv.vt.rows(), kv.vt.cols()});
            std::transform(kv.vt.data(), kv.vt.data() + kv.vt.size(), vt.data(), f16_round);
            m.tensors_by_name[p + ".VT.weight"] = vt;
            for (int64_t g = 0; g < kv.n_groups(); ++g) {
                const RowMatrixXf& u = kv.u[size_t(g)];
                Tensor ut({u.rows(), u.cols()});
                std::transform(u.data(), u.data() + u.size(), ut.data(), f16_round);
                m.tensors_by_name[strfmt("%s.U.%lld.weight", p.c_str(),
                                         static_cast<long long>(g))] = ut;
            }
        }
    }
    return m;
}

// GQA (8 query heads over 4 KV heads), d_head 64 (a kernel head size), 2 layers, Llama-3 rope.
test::MemoryWeightSource small_compressed_model(int64_t s, const std::vector<int64_t>& ranks) {
    test::SynthSpec spec;
    spec.n_layers = 2;
    spec.d_model = 128;
    spec.n_heads = 8;
    spec.n_kv_heads = 4;
    spec.d_head = 64;
    spec.d_ff = 160;
    spec.rope_theta = 500000.0;
    spec.rope_scaling.type = "llama3";
    spec.rope_scaling.factor = 8.0;
    spec.rope_scaling.original_max_position_embeddings = 64;  // scaling active at these lengths
    return compress_model(test::make_synthetic_model(spec), s, ranks);
}

struct EngineCase {
    const char* name;
    int64_t s;
    std::vector<int64_t> ranks;
    int bits;
    LatentDType dtype;
};

void PrintTo(const EngineCase& c, std::ostream* os) {
    *os << c.name;
}

EngineCheckOptions options_for(const EngineCase& c) {
    EngineCheckOptions o;
    o.latent_bits = c.bits;
    o.dtype = c.dtype;
    o.n_batch = 2;
    o.n_tokens = 150;  // capacity 160: a ragged last tile
    o.seed = 11;
    return o;
}

class EngineCheck : public ::testing::TestWithParam<EngineCase> {};

// GPU-free: the double reference on the kernel's inputs (q and U rounded to f16/bf16, the engine's
// stored latents) reproduces the engine's attention output within the kernel tolerance, so the
// problem is the engine's (layout, padding and codes right); the rest is the kernel's own error.
TEST_P(EngineCheck, ProblemFromEngineCache_ReferenceMatchesEngine) {
    const EngineCase& c = GetParam();
    const test::MemoryWeightSource src = small_compressed_model(c.s, c.ranks);
    model::Transformer engine(src);
    EngineCheckOptions o = options_for(c);
    o.run_device = false;
    o.prefill = true;
    const std::vector<LayerCheck> res = check_against_engine(engine, o);
    ASSERT_EQ(res.size(), 2u);
    for (const LayerCheck& r : res) {
        EXPECT_LE(r.err_ref_engine, engine_tolerance(c.dtype))
            << "layer " << r.layer << " " << r.shape.describe();
        EXPECT_LE(r.err_prefill_ref_engine, engine_tolerance(c.dtype))
            << "prefill, layer " << r.layer;
        EXPECT_GE(r.err_prefill_ref_engine, 0.0);
        EXPECT_EQ(r.shape.r_k % 32, 0);
        EXPECT_EQ(r.err_kernel_engine, -1.0);  // not run
        std::printf("  layer %lld %s: ref vs engine %.2e, prefill %.2e\n",
                    static_cast<long long>(r.layer), r.ranks.c_str(), r.err_ref_engine,
                    r.err_prefill_ref_engine);
    }
}

// Decode kernel and prefill path (every position) against the engine.
TEST_P(EngineCheck, KernelAndPrefillMatchEngine) {
    std::string why;
    if (!cuda_device_available(&why)) GTEST_SKIP() << "no CUDA device (" << why << ")";
    const EngineCase& c = GetParam();
    const test::MemoryWeightSource src = small_compressed_model(c.s, c.ranks);
    model::Transformer engine(src);
    EngineCheckOptions o = options_for(c);
    o.prefill = true;
    const std::vector<LayerCheck> res = check_against_engine(engine, o);
    for (const LayerCheck& r : res) {
        const double tol = engine_tolerance(c.dtype);
        const std::string what =
            strfmt("layer %lld %s", static_cast<long long>(r.layer), r.shape.describe().c_str());
        EXPECT_LE(r.err_kernel_ref, tol) << what;
        EXPECT_LE(r.err_kernel_engine, engine_bound(c.dtype, r.err_ref_engine)) << what;
        EXPECT_LE(r.err_prefill_ref, tol) << "prefill, " << what;
        EXPECT_LE(r.err_prefill_engine, engine_bound(c.dtype, r.err_prefill_ref_engine))
            << "prefill, " << what;
        EXPECT_GE(r.err_prefill_engine, 0.0);
        EXPECT_TRUE(passes(r, true)) << what;
        std::printf(
            "  %s: decode kernel-ref %.2e ref-engine %.2e kernel-engine %.2e; prefill %.2e %.2e "
            "%.2e\n",
            what.c_str(), r.err_kernel_ref, r.err_ref_engine, r.err_kernel_engine,
            r.err_prefill_ref, r.err_prefill_ref_engine, r.err_prefill_engine);
    }
}

INSTANTIATE_TEST_SUITE_P(
    Formats, EngineCheck,
    ::testing::Values(EngineCase{"s1_f16_uneven_ranks", 1, {24, 40, 32, 16}, 16, LatentDType::F16},
                      EngineCase{"s2_f16", 2, {64, 96}, 16, LatentDType::F16},
                      EngineCase{"s1_q4_f16", 1, {32, 48}, 4, LatentDType::F16},
                      EngineCase{"s2_q3_f16", 2, {64, 80}, 3, LatentDType::F16},
                      EngineCase{"s1_q2_f16", 1, {32}, 2, LatentDType::F16},
                      EngineCase{"s1_q4_bf16", 1, {32, 16}, 4, LatentDType::BF16}),
    [](const ::testing::TestParamInfo<EngineCase>& i) { return std::string(i.param.name); });

TEST(EngineProblems, SaveLoad_RoundTrips) {
    const test::MemoryWeightSource src = small_compressed_model(1, {24, 40});
    model::Transformer engine(src);
    EngineCheckOptions o;
    o.latent_bits = 3;
    o.n_tokens = 40;
    o.layers = {1};
    o.prefill = true;
    const std::vector<EngineProblem> a = engine_problems(engine, o);
    ASSERT_EQ(a.size(), 1u);
    const std::string path =
        (std::filesystem::temp_directory_path() /
         strfmt("palu_engine_problems_%d.safetensors", static_cast<int>(::getpid())))
            .string();
    save_engine_problems(path, a, {{"checkpoint", "memory"}});
    std::map<std::string, std::string> meta;
    const std::vector<EngineProblem> b = load_engine_problems(path, &meta);
    std::filesystem::remove(path);
    ASSERT_EQ(b.size(), 1u);
    EXPECT_EQ(meta.at("checkpoint"), "memory");
    EXPECT_EQ(b[0].check.layer, 1);
    EXPECT_EQ(b[0].check.ranks, a[0].check.ranks);
    EXPECT_EQ(b[0].problem.shape.describe(), a[0].problem.shape.describe());
    EXPECT_EQ(b[0].problem.q, a[0].problem.q);
    EXPECT_EQ(b[0].problem.k_data, a[0].problem.k_data);
    EXPECT_EQ(b[0].problem.v_zeros, a[0].problem.v_zeros);
    EXPECT_EQ(b[0].problem.k_up, a[0].problem.k_up);
    EXPECT_EQ(b[0].engine_out, a[0].engine_out);
    EXPECT_EQ(b[0].q_seq, a[0].q_seq);
    EXPECT_EQ(b[0].engine_out_seq, a[0].engine_out_seq);
    EXPECT_EQ(a[0].q_seq.size(), size_t(40 * 8 * 64));
}

TEST(EngineProblems, UnsupportedInputs_Throw) {
    test::SynthSpec spec;
    spec.d_head = 64;
    spec.d_model = 128;
    const test::MemoryWeightSource dense = test::make_synthetic_model(spec);
    model::Transformer dense_engine(dense);
    EXPECT_THROW(engine_problems(dense_engine, EngineCheckOptions{}), UsageError);
    const test::MemoryWeightSource src = small_compressed_model(1, {32});
    model::Transformer engine(src);
    EngineCheckOptions o;
    o.n_tokens = 8;
    o.latent_bits = 8;  // the engine has it, the kernel does not
    EXPECT_THROW(engine_problems(engine, o), UsageError);
    o.latent_bits = 16;
    o.dtype = LatentDType::BF16;  // f16 latents cannot be read as bf16
    EXPECT_THROW(engine_problems(engine, o), UsageError);
    o.dtype = LatentDType::F16;
    o.tokens = {1, 2, 3};  // not n_batch · n_tokens
    EXPECT_THROW(engine_problems(engine, o), UsageError);
}

}  // namespace
