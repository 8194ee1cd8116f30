// palu fuzz: safetensors parser. Any byte string must either parse into a validated tensor table
// whose every tensor converts to f32 within the buffer, or throw palu::Error; never crash, hang,
// leak or read out of bounds (ASan/UBSan).
#include <cstddef>
#include <cstdint>
#include <vector>

#include "palu/core/error.h"
#include "palu/formats/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    try {
        auto f = palu::formats::SafetensorsFile::from_memory(
            std::vector<uint8_t>(data, data + size), "fuzz.safetensors");
        for (const auto& t : f.tensors()) {
            palu::Tensor x = f.load_f32(t.name);
            if (x.numel() != static_cast<int64_t>(t.numel())) __builtin_trap();
        }
        (void)f.metadata().size();
    } catch (const palu::Error&) {
    }
    return 0;
}
