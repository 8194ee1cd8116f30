// palu fuzz target: HF tokenizer.json parsing (bpe_vocab_from_tokenizer_json + make_bpe_tokenizer)
// and byte-level BPE encoding/decoding of arbitrary bytes.
// Input layout: <tokenizer.json bytes> [ '\0' <text bytes> ]; without a NUL the JSON itself is also
// the text. Bad input must only ever raise palu::Error; ids must be in range and decode must work.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "palu/calib/bpe.h"
#include "palu/core/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string_view in(reinterpret_cast<const char*>(data), size);
    const size_t nul = in.find('\0');
    const std::string_view json = nul == std::string_view::npos ? in : in.substr(0, nul);
    const std::string_view text = nul == std::string_view::npos ? in : in.substr(nul + 1);
    std::unique_ptr<palu::calib::Tokenizer> tok;
    try {
        tok = palu::calib::make_bpe_tokenizer(
            palu::calib::bpe_vocab_from_tokenizer_json(json, "fuzz.json"));
    } catch (const palu::Error&) {
        return 0;
    }
    try {
        for (bool bos : {false, true}) {
            const auto ids = tok->encode(text, bos);
            for (int32_t id : ids)
                if (id < 0 || id >= tok->n_vocab()) std::abort();  // encoder bug
            (void)tok->decode(ids);
            int32_t prev = -1;
            for (int32_t id : ids) {
                (void)tok->decode_piece(prev, id);
                prev = id;
            }
        }
    } catch (const palu::Error&) {
        // e.g. a pathological user regex hitting PCRE2's match limit: a clean error is fine
    }
    return 0;
}
