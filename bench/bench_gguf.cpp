// palu bench: GGUF dequantization throughput (formats/src/gguf_dequant.cpp), single thread.
// Input: seeded random blocks of each type (scale fields finite halves) for 16 Mi elements;
// output: f32. Reports GB/s of f32 output (bytes_per_second) and of input bytes (in_bytes_per_s).
// Run: build/bench/palu_bench_gguf --benchmark_min_time=1
#include <benchmark/benchmark.h>

#include <cstring>
#include <filesystem>
#include <random>
#include <vector>

#include "palu/core/dtype.h"
#include "palu/formats/gguf.h"
#include "palu/formats/model_loader.h"

using namespace palu;
using namespace palu::formats;

namespace {

// Elements per call: state.range(0); 2^24 (64 MiB of f32 output: DRAM-bound store stream) and
// 2^16 (256 KiB: in-cache, the kernels' own speed).

// Offsets of the f16 scale fields in one block, so random bytes give finite values.
std::vector<size_t> f16_fields(GgmlType t) {
    switch (t) {
        case GgmlType::Q4_0:
        case GgmlType::Q5_0:
        case GgmlType::Q8_0: return {0};
        case GgmlType::Q4_1:
        case GgmlType::Q5_1:
        case GgmlType::Q4_K:
        case GgmlType::Q5_K: return {0, 2};
        case GgmlType::Q6_K: return {208};
        default: return {};
    }
}

std::vector<uint8_t> random_blocks(GgmlType t, int64_t n) {
    std::mt19937 rng(1234);
    std::vector<uint8_t> b(ggml_nbytes(t, n));
    for (auto& x : b) x = uint8_t(rng());
    const uint64_t ts = ggml_type_size(t);
    std::uniform_real_distribution<float> u(-0.1f, 0.1f);
    if (t == GgmlType::F16 || t == GgmlType::BF16) {
        for (int64_t i = 0; i < n; ++i) {
            const uint16_t h = t == GgmlType::F16 ? f32_to_f16(u(rng)) : f32_to_bf16(u(rng));
            std::memcpy(b.data() + 2 * i, &h, 2);
        }
    }
    for (uint64_t off = 0; off < b.size(); off += ts)
        for (size_t f : f16_fields(t)) {
            const uint16_t h = f32_to_f16(u(rng));
            std::memcpy(b.data() + off + f, &h, 2);
        }
    return b;
}

void BM_Dequantize(benchmark::State& state, GgmlType t) {
    const int64_t kN = state.range(0);
    const auto src = random_blocks(t, kN);
    std::vector<float> dst(static_cast<size_t>(kN));
    for (auto _ : state) {
        dequantize_row(t, src.data(), dst.data(), kN);
        benchmark::DoNotOptimize(dst.data());
        benchmark::ClobberMemory();
    }
    state.SetBytesProcessed(int64_t(state.iterations()) * kN * 4);
    state.counters["in_bytes_per_s"] =
        benchmark::Counter(double(src.size()) * double(state.iterations()),
                           benchmark::Counter::kIsRate, benchmark::Counter::kIs1024);
    state.counters["bits_per_weight"] = double(src.size()) * 8.0 / double(kN);
}

}  // namespace

BENCHMARK_CAPTURE(BM_Dequantize, Q4_1, GgmlType::Q4_1)
    ->Arg(1 << 16)
    ->Arg(1 << 24)
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_Dequantize, Q6_K, GgmlType::Q6_K)
    ->Arg(1 << 16)
    ->Arg(1 << 24)
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_Dequantize, Q8_0, GgmlType::Q8_0)
    ->Arg(1 << 16)
    ->Arg(1 << 24)
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_Dequantize, Q4_0, GgmlType::Q4_0)
    ->Arg(1 << 16)
    ->Arg(1 << 24)
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_Dequantize, Q5_1, GgmlType::Q5_1)
    ->Arg(1 << 16)
    ->Arg(1 << 24)
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_Dequantize, Q4_K, GgmlType::Q4_K)
    ->Arg(1 << 16)
    ->Arg(1 << 24)
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_Dequantize, Q5_K, GgmlType::Q5_K)
    ->Arg(1 << 16)
    ->Arg(1 << 24)
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_Dequantize, F16, GgmlType::F16)
    ->Arg(1 << 16)
    ->Arg(1 << 24)
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_Dequantize, BF16, GgmlType::BF16)
    ->Arg(1 << 16)
    ->Arg(1 << 24)
    ->Unit(benchmark::kMicrosecond);

// The real SmolLM2-135M-Instruct Q4_1 file (scripts/get-smollm2.sh): open + validate, then
// load_f32 of every tensor (dequantize, q/k un-permutation, HF layout). Skipped when absent.
void BM_SmolLM2_LoadAll(benchmark::State& state) {
    const std::filesystem::path path = "models/smollm2/SmolLM2-135M-Instruct-Q4_1.gguf";
    if (!std::filesystem::exists(path)) {
        state.SkipWithError(
            "needs models/smollm2/SmolLM2-135M-Instruct-Q4_1.gguf (run from the "
            "source root after scripts/get-smollm2.sh)");
        return;
    }
    int64_t n_values = 0, n_file_bytes = 0;
    for (auto _ : state) {
        auto src = palu::formats::open_gguf_model(path);
        n_values = 0;
        n_file_bytes = 0;
        for (const auto& info : src->tensors()) {
            const palu::Tensor t = src->load_f32(info.name);
            benchmark::DoNotOptimize(t.data());
            n_values += t.numel();
            n_file_bytes += int64_t(info.n_bytes);
        }
    }
    state.SetBytesProcessed(int64_t(state.iterations()) * n_values * 4);
    state.counters["in_bytes_per_s"] =
        benchmark::Counter(double(n_file_bytes) * double(state.iterations()),
                           benchmark::Counter::kIsRate, benchmark::Counter::kIs1024);
    state.counters["n_params"] = double(n_values);
}
BENCHMARK(BM_SmolLM2_LoadAll)->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
