// palu calibration: llama2.c `tok*.bin` tokenizer (text -> ids for the tinyllamas models).
// Encoding reproduces llama2.c run.c `encode`: a dummy-prefix " " token when the text is non-empty,
// one token per UTF-8 code point (byte fallback id = byte + 3 when the code point is not a piece),
// then repeatedly merge the adjacent pair whose concatenation is a piece with the highest score
// (leftmost on ties). llama2.c rescans the sequence after every merge (O(n^2)); here a heap of
// candidate pairs ordered by (score desc, position asc) with lazy invalidation gives the same
// merge order in O(n log n), so whole corpora can be encoded.
#include <cstdio>
#include <cstring>
#include <fstream>
#include <queue>
#include <unordered_map>

#include "palu/calib/tokenizer.h"
#include "palu/core/error.h"

namespace palu::calib {
namespace {

constexpr int32_t kBos = 1;
constexpr int32_t kEos = 2;
constexpr int32_t kByteOffset = 3;  // <0x00> is id 3 in llama2.c vocabularies

class Llama2cTokenizer final : public Tokenizer {
   public:
    Llama2cTokenizer(std::vector<std::string> pieces, std::vector<float> scores)
        : pieces_(std::move(pieces)), scores_(std::move(scores)) {
        for (size_t i = 0; i < pieces_.size(); ++i)
            index_.emplace(pieces_[i], static_cast<int32_t>(i));  // first id wins on duplicates
        // Byte pieces "<0xXX>" decode to the raw byte (llama2.c decode's sscanf).
        byte_of_.assign(pieces_.size(), -1);
        for (size_t i = 0; i < pieces_.size(); ++i) {
            const std::string& p = pieces_[i];
            unsigned v = 0;
            char tail = 0;
            if (p.size() == 6 && std::sscanf(p.c_str(), "<0x%02X%c", &v, &tail) == 2 && tail == '>')
                byte_of_[i] = static_cast<int>(v);
        }
    }

    std::vector<int32_t> encode(std::string_view text, bool add_bos) const override {
        std::vector<int32_t> ids;
        if (add_bos) ids.push_back(kBos);
        if (text.empty()) return ids;
        const size_t first = ids.size();
        auto space = index_.find(" ");
        if (space != index_.end()) ids.push_back(space->second);

        // Code points (llama2.c groups a lead byte with up to 3 continuation bytes).
        std::string buf;
        for (size_t i = 0; i < text.size(); ++i) {
            const auto c = static_cast<unsigned char>(text[i]);
            if ((c & 0xC0) != 0x80) buf.clear();
            buf.push_back(static_cast<char>(c));
            const bool next_cont =
                i + 1 < text.size() && (static_cast<unsigned char>(text[i + 1]) & 0xC0) == 0x80;
            if (next_cont && buf.size() < 4) continue;
            auto it = index_.find(buf);
            if (it != index_.end()) {
                ids.push_back(it->second);
            } else {
                for (char b : buf)
                    ids.push_back(static_cast<int32_t>(static_cast<unsigned char>(b)) +
                                  kByteOffset);
            }
            buf.clear();
        }
        merge(ids, first);
        return ids;
    }

    std::string decode(const std::vector<int32_t>& ids) const override {
        std::string out;
        int32_t prev = kBos;  // a sequence start behaves like "after BOS": the dummy space goes
        for (int32_t id : ids) {
            out += decode_piece(prev, id);
            prev = id;
        }
        return out;
    }

    std::string decode_piece(int32_t prev_id, int32_t id) const override {
        PALU_CHECK(id >= 0 && id < static_cast<int32_t>(pieces_.size()), UsageError,
                   "tokenizer: llama2c: token id %d out of range: expected [0, %zu)", id,
                   pieces_.size());
        if (id == kBos) return {};
        if (byte_of_[id] >= 0) return std::string(1, static_cast<char>(byte_of_[id]));
        const std::string& p = pieces_[id];
        if (prev_id == kBos && !p.empty() && p[0] == ' ') return p.substr(1);
        return p;
    }

    int64_t n_vocab() const override { return static_cast<int64_t>(pieces_.size()); }
    int32_t bos_id() const override { return kBos; }
    int32_t eos_id() const override { return kEos; }
    bool adds_bos() const override { return true; }
    std::string kind() const override { return "llama2c"; }

   private:
    struct Candidate {
        float score;
        int32_t left;  // symbol index (= original position of its first token)
        int32_t right;
        int32_t left_id, right_id, merged_id;
    };
    struct Worse {
        bool operator()(const Candidate& a, const Candidate& b) const {
            if (a.score != b.score) return a.score < b.score;
            return a.left > b.left;  // llama2.c scans left to right and keeps the first best
        }
    };

    /// Greedy best-score merging of ids[first:], in place.
    void merge(std::vector<int32_t>& ids, size_t first) const {
        const auto n = static_cast<int32_t>(ids.size() - first);
        if (n < 2) return;
        std::vector<int32_t> sym(ids.begin() + static_cast<std::ptrdiff_t>(first), ids.end());
        std::vector<int32_t> next(n), prev(n);
        for (int32_t i = 0; i < n; ++i) {
            next[i] = i + 1 < n ? i + 1 : -1;
            prev[i] = i - 1;
        }
        std::priority_queue<Candidate, std::vector<Candidate>, Worse> heap;
        std::string cat;
        auto push = [&](int32_t l, int32_t r) {
            if (l < 0 || r < 0) return;
            cat = pieces_[sym[l]];
            cat += pieces_[sym[r]];
            auto it = index_.find(cat);
            if (it == index_.end()) return;
            heap.push({scores_[it->second], l, r, sym[l], sym[r], it->second});
        };
        for (int32_t i = 0; i + 1 < n; ++i) push(i, i + 1);
        std::vector<char> alive(n, 1);
        while (!heap.empty()) {
            Candidate c = heap.top();
            heap.pop();
            if (!alive[c.left] || !alive[c.right] || next[c.left] != c.right ||
                sym[c.left] != c.left_id || sym[c.right] != c.right_id)
                continue;  // stale: one side was merged since this pair was pushed
            sym[c.left] = c.merged_id;
            alive[c.right] = 0;
            next[c.left] = next[c.right];
            if (next[c.right] >= 0) prev[next[c.right]] = c.left;
            push(prev[c.left], c.left);
            push(c.left, next[c.left]);
        }
        ids.resize(first);
        for (int32_t i = 0; i >= 0; i = next[i]) ids.push_back(sym[i]);
    }

    std::vector<std::string> pieces_;
    std::vector<float> scores_;
    std::vector<int> byte_of_;
    std::unordered_map<std::string, int32_t> index_;
};

}  // namespace

std::unique_ptr<Tokenizer> load_llama2c_tokenizer(const std::filesystem::path& path) {
    std::ifstream f(path, std::ios::binary);
    PALU_CHECK(f.good(), IoError, "tokenizer: %s: cannot open llama2.c tokenizer",
               path.string().c_str());
    std::string data((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    const std::string name = path.string();
    PALU_CHECK(data.size() >= 4, FormatError,
               "tokenizer: %s: llama2.c tokenizer too small: expected >= 4 bytes, got %zu",
               name.c_str(), data.size());
    int32_t max_len = 0;
    std::memcpy(&max_len, data.data(), 4);
    PALU_CHECK(max_len > 0 && max_len < (1 << 20), FormatError,
               "tokenizer: %s: max_token_length %d out of range: expected (0, 1048576)",
               name.c_str(), max_len);
    std::vector<std::string> pieces;
    std::vector<float> scores;
    size_t off = 4;
    while (off < data.size()) {
        PALU_CHECK(data.size() - off >= 8, FormatError,
                   "tokenizer: %s: token %zu record truncated at byte %zu: expected 8 header "
                   "bytes, got %zu",
                   name.c_str(), pieces.size(), off, data.size() - off);
        float score = 0;
        int32_t len = 0;
        std::memcpy(&score, data.data() + off, 4);
        std::memcpy(&len, data.data() + off + 4, 4);
        off += 8;
        PALU_CHECK(len >= 0 && len <= max_len && static_cast<size_t>(len) <= data.size() - off,
                   FormatError,
                   "tokenizer: %s: token %zu has bad length %d: expected [0, %d] and within the "
                   "file (%zu bytes left)",
                   name.c_str(), pieces.size(), len, max_len, data.size() - off);
        pieces.emplace_back(data.data() + off, static_cast<size_t>(len));
        scores.push_back(score);
        off += static_cast<size_t>(len);
    }
    PALU_CHECK(pieces.size() > 2, FormatError,
               "tokenizer: %s: llama2.c tokenizer has %zu tokens: expected > 2 (BOS=1, EOS=2)",
               name.c_str(), pieces.size());
    return std::make_unique<Llama2cTokenizer>(std::move(pieces), std::move(scores));
}

}  // namespace palu::calib
