// palu calibration: SentencePiece `.model` tokenizer through libsentencepiece. Encoding and
// decoding are the library's own; this file adds BOS handling and streaming pieces.
#include <sentencepiece_processor.h>

#include <fstream>

#include "palu/calib/tokenizer.h"
#include "palu/core/error.h"

namespace palu::calib {
namespace {

class SentencePieceTokenizer final : public Tokenizer {
   public:
    SentencePieceTokenizer(std::unique_ptr<sentencepiece::SentencePieceProcessor> sp,
                           std::string name)
        : sp_(std::move(sp)), name_(std::move(name)) {}

    std::vector<int32_t> encode(std::string_view text, bool add_bos) const override {
        std::vector<int> ids;
        const auto st = sp_->Encode(text, &ids);
        PALU_CHECK(st.ok(), FormatError, "tokenizer: %s: sentencepiece encode failed: %s",
                   name_.c_str(), st.ToString().c_str());
        std::vector<int32_t> out;
        out.reserve(ids.size() + 1);
        if (add_bos && bos_id() >= 0) out.push_back(bos_id());
        out.insert(out.end(), ids.begin(), ids.end());
        return out;
    }

    std::string decode(const std::vector<int32_t>& ids) const override {
        std::vector<int> v;
        v.reserve(ids.size());
        for (int32_t id : ids) {
            check_id(id);
            if (id != bos_id()) v.push_back(id);
        }
        std::string out;
        const auto st = sp_->Decode(v, &out);
        PALU_CHECK(st.ok(), FormatError, "tokenizer: %s: sentencepiece decode failed: %s",
                   name_.c_str(), st.ToString().c_str());
        return out;
    }

    std::string decode_piece(int32_t prev_id, int32_t id) const override {
        check_id(id);
        if (sp_->IsControl(id)) return {};
        if (sp_->IsByte(id)) {
            // "<0xXX>" byte-fallback pieces stand for one raw byte.
            const std::string p = sp_->IdToPiece(id);
            return std::string(1, static_cast<char>(std::stoi(p.substr(3, 2), nullptr, 16)));
        }
        std::string p = sp_->IdToPiece(id);
        if (sp_->IsUnknown(id)) return " \xE2\x81\x87 ";  // libsentencepiece's " ⁇ "
        std::string out;
        static constexpr std::string_view kSpace = "\xE2\x96\x81";  // U+2581 "▁"
        for (size_t i = 0; i < p.size();) {
            if (p.compare(i, kSpace.size(), kSpace) == 0) {
                out.push_back(' ');
                i += kSpace.size();
            } else {
                out.push_back(p[i++]);
            }
        }
        if ((prev_id < 0 || prev_id == bos_id()) && !out.empty() && out[0] == ' ') out.erase(0, 1);
        return out;
    }

    int64_t n_vocab() const override { return sp_->GetPieceSize(); }
    int32_t bos_id() const override { return sp_->bos_id(); }
    int32_t eos_id() const override { return sp_->eos_id(); }
    bool adds_bos() const override { return sp_->bos_id() >= 0; }
    std::string kind() const override { return "sentencepiece"; }

   private:
    void check_id(int32_t id) const {
        PALU_CHECK(id >= 0 && id < sp_->GetPieceSize(), UsageError,
                   "tokenizer: %s: token id %d out of range: expected [0, %d)", name_.c_str(), id,
                   sp_->GetPieceSize());
    }

    std::unique_ptr<sentencepiece::SentencePieceProcessor> sp_;
    std::string name_;
};

std::unique_ptr<sentencepiece::SentencePieceProcessor> open_processor(const std::string& name) {
    {
        std::ifstream f(name, std::ios::binary);
        PALU_CHECK(f.good(), IoError, "tokenizer: %s: cannot open SentencePiece model",
                   name.c_str());
    }
    auto sp = std::make_unique<sentencepiece::SentencePieceProcessor>();
    const auto st = sp->Load(name);
    PALU_CHECK(st.ok(), FormatError, "tokenizer: %s: not a valid SentencePiece model: %s",
               name.c_str(), st.ToString().c_str());
    return sp;
}

}  // namespace

std::unique_ptr<Tokenizer> load_sentencepiece_tokenizer(const std::filesystem::path& path) {
    const std::string name = path.string();
    return std::make_unique<SentencePieceTokenizer>(open_processor(name), name);
}

SentencePieceVocab read_sentencepiece_vocab(const std::filesystem::path& path) {
    const auto sp = open_processor(path.string());
    SentencePieceVocab v;
    const int n = sp->GetPieceSize();
    for (int id = 0; id < n; ++id) {
        v.pieces.push_back(sp->IdToPiece(id));
        v.scores.push_back(sp->GetScore(id));
        v.types.push_back(sp->IsUnknown(id)   ? 2
                          : sp->IsControl(id) ? 3
                          : sp->IsUnused(id)  ? 5
                          : sp->IsByte(id)    ? 6
                                              : 1);
    }
    v.bos_id = sp->bos_id();
    v.eos_id = sp->eos_id();
    v.unk_id = sp->unk_id();
    v.pad_id = sp->pad_id();
    // normalizer_spec is not exposed without the protobuf headers: the dummy prefix shows in the
    // pieces of "a" (the first starts with "▁" exactly when the model prepends one).
    std::vector<std::string> pieces;
    v.add_dummy_prefix =
        sp->Encode("a", &pieces).ok() && !pieces.empty() && pieces[0].rfind("\xE2\x96\x81", 0) == 0;
    return v;
}

}  // namespace palu::calib
