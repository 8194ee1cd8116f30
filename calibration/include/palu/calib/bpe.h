// palu calibration: byte-level BPE (GPT-2 style) tokenizer, built from a Hugging Face
// `tokenizer.json` or from GGUF metadata (`tokenizer.ggml.*`).
// Pipeline (as HF `tokenizers` runs it): added/special tokens are cut out of the raw text first
// (leftmost-longest), the rest goes through the pre-tokenizer steps (PCRE2 regex splits keeping
// both matches and the gaps between them), each piece is mapped byte -> printable code point
// (GPT-2 bytes_to_unicode) and merged by merge rank (lowest first, leftmost on ties).
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "palu/calib/tokenizer.h"

namespace palu::formats {
class GgufFile;
}

namespace palu::calib {

/// One pre-tokenizer step. Every current piece is first given a leading " " when
/// `add_prefix_space` and it does not start with one (HF ByteLevel), then split by `regex`
/// (when non-empty) into its matches and the unmatched gaps between them (HF Split "Isolated").
struct PreTokenizerStep {
    std::string regex;  // PCRE2 syntax, compiled with UTF + UCP (\p{L}, \s are Unicode-aware)
    bool add_prefix_space = false;
};

/// Everything a byte-level BPE tokenizer needs, independent of the file it came from.
struct BpeVocab {
    std::vector<std::string> tokens;  // [n_vocab] id -> text (byte-level alphabet; added tokens
                                      // hold their literal text); holes are ""
    std::vector<std::pair<std::string, std::string>> merges;  // in rank order (rank = index)
    std::vector<int32_t> added_ids;  // tokens matched whole in the raw text (special/control)
    std::vector<PreTokenizerStep> pre_tokenizer;  // applied in order
    int32_t bos_id = -1;
    int32_t eos_id = -1;
    int32_t unk_id = -1;
    bool add_bos = false;        // the model prepends BOS (encode(text, true) honours this)
    bool ignore_merges = false;  // a piece that is a whole vocab token is emitted directly
    std::string source;          // file name for error messages
};

/// The GPT-2 / HF ByteLevel pre-tokenizer regex.
extern const char* const kGpt2PreTokenizerRegex;

/// Pre-tokenizer steps for a GGUF `tokenizer.ggml.pre` name (as llama.cpp maps them):
/// "default"/"gpt2", "smollm" (and the starcoder family), "llama-bpe"/"llama3", "qwen2".
/// Throws FormatError naming the type and listing the supported ones otherwise.
std::vector<PreTokenizerStep> gguf_pre_tokenizer_steps(const std::string& pre);

/// Parses a HF tokenizer.json (model type BPE with a ByteLevel decoder). `source` names it in
/// errors. BOS: the post-processor template's leading special token; otherwise `bos_token` /
/// `eos_token` / `add_bos_token` from `tokenizer_config_json` when given (may be empty).
/// Throws FormatError on malformed JSON or unsupported components (normalizers, other models).
BpeVocab bpe_vocab_from_tokenizer_json(std::string_view json, const std::string& source,
                                       std::string_view tokenizer_config_json = {});
/// Reads `path` (and tokenizer_config.json beside it when present). Throws IoError / FormatError.
BpeVocab load_bpe_vocab_json(const std::filesystem::path& path);
/// Reads tokenizer.ggml.* from an opened GGUF (model must be "gpt2"). Throws FormatError.
BpeVocab bpe_vocab_from_gguf(const formats::GgufFile& gguf);

/// Builds the tokenizer (compiles regexes, indexes merges). Throws FormatError on a merge whose
/// parts or result are not in the vocabulary, or on a regex PCRE2 rejects.
std::unique_ptr<Tokenizer> make_bpe_tokenizer(BpeVocab vocab);

}  // namespace palu::calib
