// palu calibration: picking and loading the tokenizer of a model (tokenizer file kind by name,
// or the tokenizer that sits with a checkpoint).
#include "palu/calib/tokenizer.h"

#include "palu/calib/bpe.h"
#include "palu/core/error.h"
#include "palu/formats/gguf.h"

namespace palu::calib {
namespace {

namespace fs = std::filesystem;

bool ends_with(const std::string& s, std::string_view suffix) {
    return s.size() >= suffix.size() &&
           s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

std::unique_ptr<Tokenizer> load_tokenizer(const fs::path& path) {
    PALU_CHECK(fs::is_regular_file(path), IoError,
               "tokenizer: %s: no such file; hint: pass a tok*.bin, *.model, tokenizer.json or "
               ".gguf with --tokenizer",
               path.string().c_str());
    const std::string name = path.filename().string();
    if (ends_with(name, ".gguf")) {
        auto g = formats::GgufFile::open(path);
        return make_bpe_tokenizer(bpe_vocab_from_gguf(*g));
    }
    if (ends_with(name, ".json")) return make_bpe_tokenizer(load_bpe_vocab_json(path));
    if (ends_with(name, ".model")) return load_sentencepiece_tokenizer(path);
    if (ends_with(name, ".bin")) return load_llama2c_tokenizer(path);
    PALU_THROW(UsageError,
               "tokenizer: %s: unknown tokenizer kind: expected tok*.bin (llama2.c), *.model "
               "(SentencePiece), tokenizer.json (HF BPE) or *.gguf",
               path.string().c_str());
}

std::vector<fs::path> tokenizer_candidates(const fs::path& model_path, int64_t n_vocab) {
    std::vector<fs::path> candidates;
    const std::string tok_bin = "tok" + std::to_string(n_vocab) + ".bin";
    if (fs::is_directory(model_path)) {
        candidates = {model_path / "tokenizer.json", model_path / "tokenizer.model",
                      model_path / "tokenizer.gguf", model_path / tok_bin,
                      model_path.parent_path() / tok_bin};
        // "models/x/hf/" given with a trailing slash has an empty filename; parent is the dir.
        if (model_path.filename().empty())
            candidates.push_back(model_path.parent_path().parent_path() / tok_bin);
    } else if (ends_with(model_path.filename().string(), ".gguf")) {
        candidates = {model_path};
    } else {
        const fs::path dir =
            model_path.parent_path().empty() ? fs::path(".") : model_path.parent_path();
        candidates = {dir / tok_bin, dir / "tokenizer.json", dir / "tokenizer.model"};
    }
    return candidates;
}

std::unique_ptr<Tokenizer> find_tokenizer_for_model(const fs::path& model_path, int64_t n_vocab) {
    const std::vector<fs::path> candidates = tokenizer_candidates(model_path, n_vocab);
    for (const auto& c : candidates) {
        if (!fs::is_regular_file(c)) continue;
        auto tok = load_tokenizer(c);
        PALU_CHECK(tok->n_vocab() <= n_vocab, ShapeError,
                   "tokenizer: %s has %lld tokens but the model %s has n_vocab=%lld; hint: pass "
                   "the model's tokenizer with --tokenizer",
                   c.string().c_str(), static_cast<long long>(tok->n_vocab()),
                   model_path.string().c_str(), static_cast<long long>(n_vocab));
        return tok;
    }
    std::string tried;
    for (const auto& c : candidates) tried += (tried.empty() ? "" : ", ") + c.string();
    PALU_THROW(IoError,
               "tokenizer: no tokenizer found for model %s: tried %s; hint: pass one with "
               "--tokenizer",
               model_path.string().c_str(), tried.c_str());
}

}  // namespace palu::calib
