// palu bench: CPU engine throughput — prefill tokens/s (seqlen 512, 2048) and decode tokens/s on
// SmolLM2-135M's architecture, with the achieved FLOP/s reported against this machine's measured
// sgemm ceiling (2048³ sgemm, same thread count, same run).
// Weights: $PALU_BENCH_MODEL (any path formats::open_model reads) when set, else seeded random
// weights of SmolLM2-135M's shapes (identical FLOPs and memory traffic).
// Threads: $PALU_BENCH_THREADS (default 2). Run with OPENBLAS_CORETYPE=SkylakeX for AVX-512
// kernels.
#include <benchmark/benchmark.h>
#include <cblas.h>

#include <cstdlib>
#include <memory>
#include <random>
#include <vector>

#include "palu/formats/model_loader.h"
#include "palu/model/blas.h"
#include "palu/model/random_weights.h"
#include "palu/model/transformer.h"

namespace {

int bench_threads() {
    const char* s = std::getenv("PALU_BENCH_THREADS");
    return s ? std::atoi(s) : 2;
}

struct Engine {
    std::unique_ptr<palu::WeightSource> src;
    std::unique_ptr<palu::model::Transformer> model;
};

Engine& engine() {
    static Engine e = [] {
        Engine x;
        const char* path = std::getenv("PALU_BENCH_MODEL");
        x.src = path ? palu::formats::open_model(path)
                     : palu::model::make_random_weights(palu::model::smollm2_135m_config(), 42);
        x.model = std::make_unique<palu::model::Transformer>(*x.src);
        x.model->set_threads(bench_threads());
        return x;
    }();
    return e;
}

// FLOPs of one forward of n new tokens after n_past cached ones (multiply-add = 2 FLOPs):
// projections + MLP + LM head: 2·n·(params of those matrices); attention: QKᵀ and PV over the
// causal keys each token sees, 2·2·d_head·n_heads per (query, key) pair.
double forward_flops(const palu::ModelConfig& c, int64_t n, int64_t n_past) {
    const double d = static_cast<double>(c.d_model);
    const double per_layer = d * static_cast<double>(c.d_q()) * 2 +
                             d * static_cast<double>(c.d_kv()) * 2 +
                             3.0 * d * static_cast<double>(c.d_ff);
    const double linear =
        2.0 * static_cast<double>(n) *
        (per_layer * static_cast<double>(c.n_layers) + d * static_cast<double>(c.n_vocab));
    double pairs = 0;
    for (int64_t t = 0; t < n; ++t) pairs += static_cast<double>(n_past + t + 1);
    const double attn =
        4.0 * static_cast<double>(c.d_head * c.n_heads) * pairs * static_cast<double>(c.n_layers);
    return linear + attn;
}

void BM_SgemmCeiling(benchmark::State& state) {
    const int n = static_cast<int>(state.range(0));
    palu::model::set_blas_threads(bench_threads());
    std::vector<float> a(static_cast<size_t>(n) * n), b(a.size()), c(a.size());
    std::mt19937 rng(1);
    std::uniform_real_distribution<float> u(-1, 1);
    for (auto* v : {&a, &b})
        for (float& x : *v) x = u(rng);
    for (auto _ : state)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a.data(), n, b.data(),
                    n, 0.0f, c.data(), n);
    state.counters["GFLOP/s"] =
        benchmark::Counter(2.0 * n * n * n * 1e-9 * static_cast<double>(state.iterations()),
                           benchmark::Counter::kIsRate);
    state.SetLabel(palu::model::blas_core_name() + ", " + std::to_string(bench_threads()) +
                   " threads");
}
BENCHMARK(BM_SgemmCeiling)->Arg(2048)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_Prefill(benchmark::State& state) {
    Engine& e = engine();
    const int64_t n = state.range(0);
    const auto& c = e.model->config();
    std::vector<int32_t> toks(static_cast<size_t>(n));
    std::mt19937 rng(2);
    for (auto& t : toks) t = static_cast<int32_t>(rng() % static_cast<uint32_t>(c.n_vocab));
    for (auto _ : state) {
        auto cache = e.model->make_cache(1, n);
        auto logits = e.model->forward(toks.data(), 1, n, *cache);
        benchmark::DoNotOptimize(logits.data());
    }
    const double iters = static_cast<double>(state.iterations());
    state.counters["tokens/s"] =
        benchmark::Counter(static_cast<double>(n) * iters, benchmark::Counter::kIsRate);
    state.counters["GFLOP/s"] =
        benchmark::Counter(forward_flops(c, n, 0) * 1e-9 * iters, benchmark::Counter::kIsRate);
}
BENCHMARK(BM_Prefill)
    ->Arg(512)
    ->Arg(2048)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->MinTime(5.0);

// Decode: one token at a time after a 512-token prompt (timed: the decode steps only).
void BM_Decode(benchmark::State& state) {
    Engine& e = engine();
    const int64_t n_prompt = 512, n_new = state.range(0);
    const auto& c = e.model->config();
    std::vector<int32_t> toks(static_cast<size_t>(n_prompt + n_new));
    std::mt19937 rng(3);
    for (auto& t : toks) t = static_cast<int32_t>(rng() % static_cast<uint32_t>(c.n_vocab));
    for (auto _ : state) {
        state.PauseTiming();
        auto cache = e.model->make_cache(1, n_prompt + n_new);
        e.model->forward(toks.data(), 1, n_prompt, *cache, true);
        state.ResumeTiming();
        for (int64_t i = 0; i < n_new; ++i) {
            auto l = e.model->forward(toks.data() + n_prompt + i, 1, 1, *cache);
            benchmark::DoNotOptimize(l.data());
        }
    }
    const double iters = static_cast<double>(state.iterations());
    state.counters["tokens/s"] =
        benchmark::Counter(static_cast<double>(n_new) * iters, benchmark::Counter::kIsRate);
    state.counters["GFLOP/s"] = benchmark::Counter(forward_flops(c, n_new, n_prompt) * 1e-9 * iters,
                                                   benchmark::Counter::kIsRate);
}
BENCHMARK(BM_Decode)->Arg(64)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
