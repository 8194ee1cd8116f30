// palu bench: compression math (lib/linalg + lib/compress) on single groups of real model sizes:
// Cholesky of a d_model Gram, whitened group SVD (W·S, SVD, triangular solve) for SmolLM2-135M
// (d_model 576, group width 64·s, s = 1, 3) and Llama-2-7B (d_model 4096, width 512 = 4 heads), and
// the latent quantizer / packer throughput. Results: docs/PERFORMANCE.md "## Compression math".
#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include "palu/compress/decompose.h"
#include "palu/linalg/cholesky.h"
#include "palu/linalg/hadamard.h"
#include "palu/linalg/solve.h"
#include "palu/quant/latent_quant.h"

using namespace palu;

namespace {

RowMatrixXd gaussian(int64_t rows, int64_t cols, uint64_t seed) {
    std::mt19937_64 gen(seed);
    std::normal_distribution<double> nd(0.0, 1.0);
    RowMatrixXd m(rows, cols);
    for (int64_t i = 0; i < m.size(); ++i) m.data()[i] = nd(gen);
    return m;
}

/// Gram Σ x xᵀ of d + 64 random tokens (positive definite), via BLAS.
RowMatrixXd gram(int64_t d) {
    const RowMatrixXd x = gaussian(d + 64, d, 1);
    return linalg::matmul(RowMatrixXd(x.transpose()), x, "bench Gram");
}

/// f64 GEMM ceiling of this machine / BLAS, for the fraction-of-peak of the other numbers.
void BM_Dgemm(benchmark::State& state) {
    const int64_t n = state.range(0);
    const RowMatrixXd a = gaussian(n, n, 7), b = gaussian(n, n, 8);
    for (auto _ : state) {
        RowMatrixXd c = linalg::matmul(a, b, "bench gemm");
        benchmark::DoNotOptimize(c.data());
    }
    state.counters["GFLOP/s"] =
        benchmark::Counter(2.0 * n * n * n, benchmark::Counter::kIsIterationInvariantRate,
                           benchmark::Counter::kIs1000);
}

void BM_Cholesky(benchmark::State& state) {
    const int64_t d = state.range(0);
    const RowMatrixXd g = gram(d);
    for (auto _ : state) {
        auto r = linalg::cholesky(g, {}, "bench Gram");
        benchmark::DoNotOptimize(r.factor.data());
    }
    state.counters["GFLOP/s"] = benchmark::Counter(static_cast<double>(d) * d * d / 3.0,
                                                   benchmark::Counter::kIsIterationInvariantRate,
                                                   benchmark::Counter::kIs1000);
}

void BM_WhitenedGroupSvd(benchmark::State& state) {
    const int64_t d = state.range(0);
    const int64_t width = state.range(1);
    const RowMatrixXd s = linalg::cholesky(gram(d), {}, "bench Gram").factor;
    const RowMatrixXd w = gaussian(width, d, 2);
    for (auto _ : state) {
        auto f = compress::decompose_group(w, width / 2, compress::DecomposeMethod::Whitened, &s,
                                           "bench group");
        benchmark::DoNotOptimize(f.right.data());
    }
}

void BM_PlainGroupSvd(benchmark::State& state) {
    const int64_t d = state.range(0);
    const int64_t width = state.range(1);
    const RowMatrixXd w = gaussian(width, d, 2);
    for (auto _ : state) {
        auto f = compress::decompose_group(w, width / 2, compress::DecomposeMethod::Plain, nullptr,
                                           "bench group");
        benchmark::DoNotOptimize(f.right.data());
    }
}

void BM_HadamardRows(benchmark::State& state) {
    const int64_t r = state.range(0);
    RowMatrixXd x = gaussian(4096, r, 3);
    for (auto _ : state) {
        linalg::apply_hadamard_rows(x);
        benchmark::DoNotOptimize(x.data());
    }
    state.SetItemsProcessed(state.iterations() * x.size());
}

void BM_QuantizeLatents(benchmark::State& state) {
    const int64_t n_tokens = 4096, r = 256;
    quant::LatentQuantSpec spec;
    spec.bits = static_cast<int>(state.range(0));
    std::vector<float> x(static_cast<size_t>(n_tokens * r));
    std::mt19937_64 gen(4);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    for (auto& v : x) v = nd(gen);
    std::vector<uint8_t> packed(
        static_cast<size_t>(n_tokens * quant::packed_row_bytes(r, spec.bits)));
    const int64_t row_bytes = quant::packed_row_bytes(r, spec.bits);
    for (auto _ : state) {
        quant::QuantizedRows q = quant::quantize_rows(x.data(), n_tokens, r, spec);
        for (int64_t t = 0; t < n_tokens; ++t)
            quant::pack_codes(q.codes.data() + t * r, r, spec.bits, packed.data() + t * row_bytes);
        benchmark::DoNotOptimize(packed.data());
    }
    state.SetItemsProcessed(state.iterations() * n_tokens * r);
}

void BM_DequantizeLatents(benchmark::State& state) {
    const int64_t n_tokens = 4096, r = 256;
    quant::LatentQuantSpec spec;
    spec.bits = static_cast<int>(state.range(0));
    std::vector<float> x(static_cast<size_t>(n_tokens * r));
    std::mt19937_64 gen(5);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    for (auto& v : x) v = nd(gen);
    const quant::QuantizedRows q = quant::quantize_rows(x.data(), n_tokens, r, spec);
    for (auto _ : state) {
        quant::dequantize_rows(q, x.data());
        benchmark::DoNotOptimize(x.data());
    }
    state.SetItemsProcessed(state.iterations() * n_tokens * r);
}

}  // namespace

BENCHMARK(BM_Dgemm)->Arg(1024)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Cholesky)->Arg(576)->Arg(4096)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_WhitenedGroupSvd)
    ->Args({576, 64})
    ->Args({576, 192})
    ->Args({4096, 512})
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_PlainGroupSvd)
    ->Args({576, 64})
    ->Args({576, 192})
    ->Args({4096, 512})
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_HadamardRows)->Arg(256)->Arg(192)->Arg(96)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_QuantizeLatents)->Arg(2)->Arg(3)->Arg(4)->Arg(8)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_DequantizeLatents)->Arg(4)->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
