// palu tests: WikiText-2 test token ids for the SmolLM2 engine test.
// The ids written by tests/reference/smollm2_ppl_reference.py --save-ids (transformers' tokenizer)
// are read from models/smollm2/wiki.test.ids.i32 when present, so that this test measures the
// engine alone. TODO(engine): tokenize with palu::calib once its BPE matches transformers on
// WikiText-2 (#3): on 2026-11-23 it gives 304978 ids against 304986, first differing at id 66557
// (whitespace runs before a newline are split differently).
#pragma once

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "palu/core/sha256.h"

namespace palu::test {

inline std::vector<int32_t> smollm2_wikitext_tokens(const std::filesystem::path& gguf,
                                                    const std::filesystem::path& /*wiki*/) {
    const auto ids = gguf.parent_path() / "wiki.test.ids.i32";
    std::ifstream in(ids, std::ios::binary | std::ios::ate);
    if (!in) return {};
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
