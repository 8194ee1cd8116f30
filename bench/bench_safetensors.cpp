// palu bench: safetensors open + validation of a multi-GB sharded checkpoint, full f32 load of it,
// and the BF16 / F16 -> f32 conversion throughput (palu::convert_to_f32).
// The checkpoint (TinyLlama-1.1B shapes, BF16, 1 GiB shards, ~2.2 GB) is generated once under
// $TMPDIR before the timed loops and deleted at exit. Results go to docs/PERFORMANCE.md.
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "palu/core/dtype.h"
#include "palu/core/model_config.h"
#include "palu/formats/hf_model.h"
#include "palu/formats/safetensors.h"

namespace fs = std::filesystem;
using namespace palu;
using namespace palu::formats;

namespace {

fs::path g_dir;
uint64_t g_total_bytes = 0;
size_t g_n_tensors = 0;

ModelConfig tinyllama_shapes() {
    ModelConfig c;
    c.d_model = 2048;
    c.n_layers = 22;
    c.n_heads = 32;
    c.n_kv_heads = 4;
    c.d_head = 64;
    c.d_ff = 5632;
    c.n_vocab = 32000;
    return c;
}

void generate_checkpoint() {
    const char* tmp = std::getenv("TMPDIR");
    g_dir = fs::path(tmp && *tmp ? tmp : "/tmp") /
            ("palu_bench_safetensors_" + std::to_string(::getpid()));
    fs::remove_all(g_dir);
    auto expected = expected_hf_tensors(tinyllama_shapes(), /*with_lm_head=*/true);
    size_t max_bytes = 0;
    for (const auto& e : expected) {
        size_t n = 2;
        for (auto d : e.shape) n *= static_cast<size_t>(d);
        max_bytes = std::max(max_bytes, n);
    }
    // One buffer of random finite BF16 values backs every tensor (the bytes' content does not
    // matter for validation or conversion speed, only that they are real values).
    std::vector<uint8_t> buf(max_bytes);
    std::mt19937 rng(7);
    std::normal_distribution<float> nd(0.f, 0.02f);
    for (size_t i = 0; i + 1 < buf.size(); i += 2) {
        uint16_t h = f32_to_bf16(nd(rng));
        buf[i] = static_cast<uint8_t>(h);
        buf[i + 1] = static_cast<uint8_t>(h >> 8);
    }
    std::vector<TensorToWrite> ts;
    for (const auto& e : expected) {
        size_t n = 2;
        for (auto d : e.shape) n *= static_cast<size_t>(d);
        ts.push_back({e.name, DType::BF16, e.shape, std::span<const uint8_t>(buf.data(), n)});
        g_total_bytes += n;
    }
    g_n_tensors = ts.size();
    write_safetensors(g_dir, std::move(ts), {{"format", "pt"}}, /*max_shard_bytes=*/1ull << 30);
}

void BM_OpenValidateSharded(benchmark::State& state) {
    size_t n = 0;
    for (auto _ : state) {
        auto ck = SafetensorsCheckpoint::open(g_dir);
        n = ck.tensors().size();
        benchmark::DoNotOptimize(n);
    }
    state.counters["tensors"] = static_cast<double>(n);
    state.counters["GB"] = static_cast<double>(g_total_bytes) / 1e9;
}
BENCHMARK(BM_OpenValidateSharded)->Unit(benchmark::kMillisecond);

// Open, then convert every tensor to f32 (page cache warm): the cost of loading the whole model.
void BM_OpenAndLoadAllF32(benchmark::State& state) {
    for (auto _ : state) {
        auto ck = SafetensorsCheckpoint::open(g_dir);
        for (const auto& e : ck.tensors()) {
            Tensor t = ck.load_f32(e.info->name);
            benchmark::DoNotOptimize(t.data());
        }
    }
    state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) *
                            static_cast<int64_t>(g_total_bytes));
}
BENCHMARK(BM_OpenAndLoadAllF32)->Unit(benchmark::kMillisecond)->Iterations(3);

void convert_bench(benchmark::State& state, DType t) {
    const size_t n = static_cast<size_t>(state.range(0));
    std::vector<uint16_t> src(n);
    std::mt19937 rng(3);
    std::uniform_real_distribution<float> u(-2.f, 2.f);
    for (auto& h : src) h = t == DType::BF16 ? f32_to_bf16(u(rng)) : f32_to_f16(u(rng));
    std::vector<float> dst(n);
    for (auto _ : state) {
        convert_to_f32(t, src.data(), dst.data(), n);
        benchmark::DoNotOptimize(dst.data());
        benchmark::ClobberMemory();
    }
    // Bytes read (2 per element); the f32 output is twice that.
    state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * static_cast<int64_t>(n * 2));
}

void BM_ConvertBf16ToF32(benchmark::State& state) {
    convert_bench(state, DType::BF16);
}
void BM_ConvertF16ToF32(benchmark::State& state) {
    convert_bench(state, DType::F16);
}
// 64 Mi elements: 128 MiB in, 256 MiB out (far beyond cache); 256 Ki elements: cache resident.
BENCHMARK(BM_ConvertBf16ToF32)->Arg(1 << 18)->Arg(1 << 26)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_ConvertF16ToF32)->Arg(1 << 18)->Arg(1 << 26)->Unit(benchmark::kMillisecond);

}  // namespace

int main(int argc, char** argv) {
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    generate_checkpoint();
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    std::error_code ec;
    fs::remove_all(g_dir, ec);
    return 0;
}
