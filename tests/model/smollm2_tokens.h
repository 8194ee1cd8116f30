// palu tests: WikiText-2 test token ids for the SmolLM2 engine test.
// The ids written by tests/reference/smollm2_ppl_reference.py --save-ids (transformers' tokenizer)
// are read from models/smollm2/wiki.test.ids.i32 when present, so that this test measures the
// engine alone. Without that file the text is tokenized with palu's own BPE; its ids equal
// transformers' for the first 66557 tokens (checked through `ids_prefix_sha256` of the reference
// JSON), which covers the windows the test compares. The two differ later (304978 vs 304986 ids:
// transformers' GGUF tokenizer conversion splits some whitespace runs before a newline
// differently); see docs/tokenizers.md.
#pragma once

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "palu/calib/text.h"
#include "palu/calib/tokenizer.h"
#include "palu/core/sha256.h"

namespace palu::test {

/// Token ids of WikiText-2 test; `from_reference` tells whether they came from the reference
/// script's saved file (else from palu's tokenizer).
inline std::vector<int32_t> smollm2_wikitext_tokens(const std::filesystem::path& gguf,
                                                    const std::filesystem::path& wiki,
                                                    bool* from_reference) {
    const auto ids = gguf.parent_path() / "wiki.test.ids.i32";
    std::ifstream in(ids, std::ios::binary | std::ios::ate);
    *from_reference = static_cast<bool>(in);
    if (!in) {
        auto tok = calib::load_tokenizer(gguf);
        return tok->encode(calib::load_text(wiki, calib::TextFormat::Wikitext), /*add_bos=*/true);
    }
    std::vector<int32_t> out(static_cast<size_t>(in.tellg()) / 4);
    in.seekg(0);
    in.read(reinterpret_cast<char*>(out.data()), static_cast<std::streamsize>(out.size() * 4));
    return out;
}

inline std::string ids_sha256(const std::vector<int32_t>& ids) {
    return sha256_hex(
        std::string_view(reinterpret_cast<const char*>(ids.data()), ids.size() * sizeof(int32_t)));
}

}  // namespace palu::test
