// palu fuzz: HF config.json parser. Any text must either give a validated ModelConfig (whose
// expected tensor list can be built without overflow) or throw palu::Error; never crash.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "palu/core/error.h"
#include "palu/formats/hf_config.h"
#include "palu/formats/hf_model.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    try {
        auto h = palu::formats::parse_hf_config(
            std::string_view(reinterpret_cast<const char*>(data), size), "fuzz/config.json");
        if (h.model.n_layers <= 64) {
            auto ts = palu::formats::expected_hf_tensors(h.model, !h.model.tie_word_embeddings);
            if (ts.empty()) __builtin_trap();
        }
    } catch (const palu::Error&) {
    }
    return 0;
}
