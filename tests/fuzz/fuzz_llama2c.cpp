// palu fuzz target: llama2.c legacy checkpoint parser. Any input must either parse (and then every
// tensor must load) or throw a palu::Error; crashes, sanitizer reports, other exceptions and
// allocations beyond the input size are findings. Seeds: tests/fuzz/corpus/llama2c/ (synthetic
// checkpoints written by Llama2c.FuzzSeedCorpus_ParsesOrRegenerates).
#include <cstddef>
#include <cstdint>
#include <span>

#include "palu/core/error.h"
#include "palu/formats/llama2c.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    try {
        auto m = palu::formats::Llama2cModel::from_bytes(std::span<const uint8_t>(data, size),
                                                         "fuzz.bin");
        // A valid header implies the exact file size, so every tensor lies inside the input.
        for (const auto& t : m->tensors()) {
            palu::Tensor v = m->load_f32(t.name);
            if (uint64_t(v.numel()) * sizeof(float) != t.n_bytes) __builtin_trap();
        }
    } catch (const palu::Error&) {
    }
    return 0;
}
