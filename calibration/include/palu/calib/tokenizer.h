// palu calibration: tokenizers (text -> token ids) for the models palu supports.
// Implementations: llama2.c tok*.bin, SentencePiece .model, byte-level BPE (tokenizer.json or GGUF
// metadata `tokenizer.ggml.*`).
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace palu::calib {

class Tokenizer {
   public:
    virtual ~Tokenizer() = default;
    /// Token ids of `text`; prepends BOS when `add_bos` and the model has one.
    virtual std::vector<int32_t> encode(std::string_view text, bool add_bos) const = 0;
    /// Text of a sequence of ids (special tokens rendered as their text, BOS dropped).
    virtual std::string decode(const std::vector<int32_t>& ids) const = 0;
    /// Text piece of one token as it should be appended during streaming generation,
    /// given the previous token (SentencePiece strips the leading space after BOS).
    virtual std::string decode_piece(int32_t prev_id, int32_t id) const = 0;
    virtual int64_t n_vocab() const = 0;
    virtual int32_t bos_id() const = 0;  // -1 if none
    virtual int32_t eos_id() const = 0;  // -1 if none
    /// True when the model's own tokenizer configuration prepends BOS (llama2.c and SentencePiece
    /// models: yes; GGUF `tokenizer.ggml.add_bos_token`; tokenizer.json post-processor template).
    /// `encode(text, true)` adds BOS only when this is true; callers that want BOS regardless
    /// prepend bos_id() themselves.
    virtual bool adds_bos() const = 0;
    /// "llama2c", "sentencepiece", "bpe".
    virtual std::string kind() const = 0;
};

/// llama2.c `tok*.bin`: int32 max_token_len, then per token f32 score, int32 len, bytes; the
/// vocabulary size is the number of records. BOS = 1, EOS = 2 (llama2.c's fixed ids).
/// Throws IoError (unreadable) or FormatError (truncated record, bad length).
std::unique_ptr<Tokenizer> load_llama2c_tokenizer(const std::filesystem::path& path);

/// SentencePiece `.model` through libsentencepiece; BOS/EOS ids from the model.
/// Throws IoError / FormatError naming the file.
std::unique_ptr<Tokenizer> load_sentencepiece_tokenizer(const std::filesystem::path& path);

/// The vocabulary of a SentencePiece `.model`, one entry per id, typed as llama.cpp's converter
/// types it (convert_hf_to_gguf.py, _create_vocab_sentencepiece): 2 unknown, 3 control, 5 unused,
/// 6 byte (<0xXX> fallback), 1 otherwise; for writing a GGUF `llama` vocabulary.
struct SentencePieceVocab {
    std::vector<std::string> pieces;  // as stored ("▁" for spaces)
    std::vector<float> scores;
    std::vector<int32_t> types;
    int32_t bos_id = -1, eos_id = -1, unk_id = -1, pad_id = -1;  // -1: none
    bool add_dummy_prefix = true;  // the model prepends "▁" (normalizer_spec.add_dummy_prefix)
};
/// Reads it through libsentencepiece. Throws IoError / FormatError naming the file.
SentencePieceVocab read_sentencepiece_vocab(const std::filesystem::path& path);

/// Loads a tokenizer file by its kind: `tok*.bin` (llama2.c), `*.model` (SentencePiece),
/// `tokenizer.json` (HF byte-level BPE), or a `.gguf` (tokenizer.ggml.* metadata).
std::unique_ptr<Tokenizer> load_tokenizer(const std::filesystem::path& path);

/// The files find_tokenizer_for_model tries for `model_path`, in order (existing or not): the
/// GGUF itself; tokenizer.json, tokenizer.model, tokenizer.gguf (a palu checkpoint made from a
/// GGUF), tok<n_vocab>.bin in an HF directory, then tok<n_vocab>.bin in its parent;
/// tok<n_vocab>.bin, tokenizer.json, tokenizer.model beside any other file (llama2.c .bin,
/// .safetensors).
std::vector<std::filesystem::path> tokenizer_candidates(const std::filesystem::path& model_path,
                                                        int64_t n_vocab);

/// Finds the tokenizer that belongs to a model path: the first existing tokenizer_candidates()
/// entry. Throws IoError with a hint (--tokenizer) when none is found.
std::unique_ptr<Tokenizer> find_tokenizer_for_model(const std::filesystem::path& model_path,
                                                    int64_t n_vocab);

}  // namespace palu::calib
