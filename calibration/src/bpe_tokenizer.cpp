// palu calibration: byte-level BPE encoder/decoder (GPT-2 style; HF `tokenizers` BPE model with
// ByteLevel pre-tokenizer/decoder). Inputs: a BpeVocab. Output: token ids identical to HF's.
// Merging per piece uses a heap of adjacent pairs ordered by (merge rank, position) with lazy
// invalidation, O(n log n) per piece (HF's `merge_all` does the same), and results are cached per
// piece because natural text repeats its words.
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <algorithm>
#include <array>
#include <mutex>
#include <queue>
#include <unordered_map>

#include "palu/calib/bpe.h"
#include "palu/core/error.h"

namespace palu::calib {

const char* const kGpt2PreTokenizerRegex =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

namespace {

/// GPT-2 bytes_to_unicode: printable bytes map to themselves, the other 68 to U+0100.. in order.
std::array<uint32_t, 256> byte_to_codepoint() {
    std::array<uint32_t, 256> m{};
    uint32_t extra = 0;
    for (uint32_t b = 0; b < 256; ++b) {
        const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
        m[b] = printable ? b : 256 + extra++;
    }
    return m;
}

void append_utf8(std::string& out, uint32_t cp) {
    if (cp < 0x80) {
        out.push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
        out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
        out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
        out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
}

/// Length of the UTF-8 sequence starting at s[i] (1 for invalid bytes).
size_t utf8_len(std::string_view s, size_t i) {
    const auto c = static_cast<unsigned char>(s[i]);
    size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 1;
    if (i + n > s.size()) return 1;
    for (size_t k = 1; k < n; ++k)
        if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return 1;
    return n;
}

/// Decodes one valid UTF-8 code point at s[i] of length n.
uint32_t decode_utf8(std::string_view s, size_t i, size_t n) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (n == 1) return c;
    uint32_t cp = n == 2 ? (c & 0x1F) : n == 3 ? (c & 0x0F) : (c & 0x07);
    for (size_t k = 1; k < n; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
    return cp;
}

struct Regex {
    pcre2_code* code = nullptr;
    Regex() = default;
    Regex(const Regex&) = delete;
    Regex& operator=(const Regex&) = delete;
    Regex(Regex&& o) noexcept : code(o.code) { o.code = nullptr; }
    ~Regex() {
        if (code) pcre2_code_free(code);
    }
};

class BpeTokenizer final : public Tokenizer {
   public:
    explicit BpeTokenizer(BpeVocab v) : v_(std::move(v)) {
        const std::string& src = v_.source;
        PALU_CHECK(!v_.tokens.empty(), FormatError, "tokenizer: %s: empty vocabulary", src.c_str());
        const auto n = static_cast<int32_t>(v_.tokens.size());
        auto check_id = [&](int32_t id, const char* what) {
            PALU_CHECK(id >= -1 && id < n, FormatError,
                       "tokenizer: %s: %s id %d out of range: expected [0, %d)", src.c_str(), what,
                       id, n);
        };
        check_id(v_.bos_id, "bos");
        check_id(v_.eos_id, "eos");
        check_id(v_.unk_id, "unk");
        is_added_.assign(v_.tokens.size(), 0);
        for (int32_t id : v_.added_ids) {
            PALU_CHECK(id >= 0 && id < n, FormatError,
                       "tokenizer: %s: added token id %d out of range: expected [0, %d)",
                       src.c_str(), id, n);
            if (v_.tokens[id].empty() || is_added_[id]) continue;
            is_added_[id] = 1;
            added_by_byte_[static_cast<unsigned char>(v_.tokens[id][0])].push_back(id);
        }
        for (auto& list : added_by_byte_)
            std::sort(list.begin(), list.end(), [&](int32_t a, int32_t b) {
                return v_.tokens[a].size() != v_.tokens[b].size()
                           ? v_.tokens[a].size() > v_.tokens[b].size()
                           : a < b;
            });

        // Model tokens index (added tokens excluded: they are never produced by merges).
        for (int32_t id = 0; id < n; ++id)
            if (!v_.tokens[id].empty() && !is_added_[id]) index_.emplace(v_.tokens[id], id);
        // Added tokens can share their text with a model token (GGUF control tokens are in the
        // vocabulary); they still merge like any token, so index them if nothing else has.
        for (int32_t id = 0; id < n; ++id)
            if (is_added_[id]) index_.emplace(v_.tokens[id], id);

        const auto b2c = byte_to_codepoint();
        std::array<bool, 0x200> is_byte_cp{};
        for (int b = 0; b < 256; ++b) {
            std::string ch;
            append_utf8(ch, b2c[b]);
            byte_char_[b] = ch;
            auto it = index_.find(ch);
            byte_id_[b] = it == index_.end() ? -1 : it->second;
            cp_to_byte_[b2c[b]] = static_cast<uint8_t>(b);
            is_byte_cp[b2c[b]] = true;
        }

        for (size_t r = 0; r < v_.merges.size(); ++r) {
            const auto& [a, b] = v_.merges[r];
            auto ia = index_.find(a), ib = index_.find(b), ic = index_.find(a + b);
            PALU_CHECK(ia != index_.end() && ib != index_.end() && ic != index_.end(), FormatError,
                       "tokenizer: %s: merge %zu '%s %s' refers to a token not in the vocabulary",
                       src.c_str(), r, a.c_str(), b.c_str());
            merges_.emplace(key(ia->second, ib->second),
                            Merge{static_cast<int32_t>(r), ic->second});  // first rank wins
        }

        // Decoded bytes of every token: byte-level code points back to bytes; added tokens and
        // code points outside the byte alphabet verbatim.
        bytes_.resize(v_.tokens.size());
        for (int32_t id = 0; id < n; ++id) {
            const std::string& t = v_.tokens[id];
            if (is_added_[id]) {
                bytes_[id] = t;
                continue;
            }
            std::string out;
            for (size_t i = 0; i < t.size();) {
                const size_t len = utf8_len(t, i);
                const uint32_t cp = decode_utf8(t, i, len);
                if (len > 1 || static_cast<unsigned char>(t[i]) < 0x80) {
                    if (cp < is_byte_cp.size() && is_byte_cp[cp]) {
                        out.push_back(static_cast<char>(cp_to_byte_[cp]));
                        i += len;
                        continue;
                    }
                }
                out.append(t, i, len);
                i += len;
            }
            bytes_[id] = std::move(out);
        }

        for (const auto& step : v_.pre_tokenizer) {
            Regex re;
            if (!step.regex.empty()) {
                int err = 0;
                PCRE2_SIZE err_off = 0;
                re.code = pcre2_compile(
                    reinterpret_cast<PCRE2_SPTR>(step.regex.data()), step.regex.size(),
                    PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &err, &err_off, nullptr);
                if (!re.code) {
                    PCRE2_UCHAR msg[256];
                    pcre2_get_error_message(err, msg, sizeof msg);
                    PALU_THROW(FormatError,
                               "tokenizer: %s: pre-tokenizer regex rejected by PCRE2 at offset "
                               "%zu: %s (pattern '%s')",
                               src.c_str(), static_cast<size_t>(err_off),
                               reinterpret_cast<const char*>(msg), step.regex.c_str());
                }
                pcre2_jit_compile(re.code, PCRE2_JIT_COMPLETE);  // interpreter if JIT fails
            }
            regexes_.push_back(std::move(re));
        }
    }

    std::vector<int32_t> encode(std::string_view text, bool add_bos) const override {
        std::vector<int32_t> ids;
        if (add_bos && v_.add_bos && v_.bos_id >= 0) ids.push_back(v_.bos_id);
        size_t start = 0;
        for (size_t i = 0; i < text.size();) {
            const int32_t added = match_added(text, i);
            if (added < 0) {
                ++i;
                continue;
            }
            encode_segment(text.substr(start, i - start), ids);
            ids.push_back(added);
            i += v_.tokens[added].size();
            start = i;
        }
        encode_segment(text.substr(start), ids);
        return ids;
    }

    std::string decode(const std::vector<int32_t>& ids) const override {
        std::string out;
        for (int32_t id : ids) {
            check_id(id);
            if (id != v_.bos_id) out += bytes_[id];
        }
        return out;
    }

    std::string decode_piece(int32_t prev_id, int32_t id) const override {
        check_id(id);
        return id == v_.bos_id ? std::string() : bytes_[id];
    }

    int64_t n_vocab() const override { return static_cast<int64_t>(v_.tokens.size()); }
    int32_t bos_id() const override { return v_.bos_id; }
    int32_t eos_id() const override { return v_.eos_id; }
    bool adds_bos() const override { return v_.add_bos && v_.bos_id >= 0; }
    std::string kind() const override { return "bpe"; }

   private:
    struct Merge {
        int32_t rank;
        int32_t id;
    };
    static uint64_t key(int32_t a, int32_t b) {
        return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
    }

    void check_id(int32_t id) const {
        PALU_CHECK(id >= 0 && id < static_cast<int32_t>(v_.tokens.size()), UsageError,
                   "tokenizer: %s: token id %d out of range: expected [0, %zu)", v_.source.c_str(),
                   id, v_.tokens.size());
    }

    /// Longest added token starting at text[i], or -1.
    int32_t match_added(std::string_view text, size_t i) const {
        for (int32_t id : added_by_byte_[static_cast<unsigned char>(text[i])]) {
            const std::string& t = v_.tokens[id];
            if (text.compare(i, t.size(), t) == 0) return id;
        }
        return -1;
    }

    /// Splits `piece` by regex r into matches and the gaps between them.
    void split(const Regex& r, pcre2_match_data* md, const std::string& piece,
               std::vector<std::string>& out) const {
        const auto* subj = reinterpret_cast<PCRE2_SPTR>(piece.data());
        size_t pos = 0, gap_start = 0;
        while (pos < piece.size()) {
            int rc = pcre2_match(r.code, subj, piece.size(), pos, 0, md, nullptr);
            if (rc == PCRE2_ERROR_JIT_STACKLIMIT)
                rc = pcre2_match(r.code, subj, piece.size(), pos, PCRE2_NO_JIT, md, nullptr);
            if (rc == PCRE2_ERROR_NOMATCH) break;
            if (rc < 0) {
                PCRE2_UCHAR msg[256];
                pcre2_get_error_message(rc, msg, sizeof msg);
                PALU_THROW(FormatError, "tokenizer: %s: pre-tokenizer regex match failed: %s",
                           v_.source.c_str(), reinterpret_cast<const char*>(msg));
            }
            const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
            const size_t s = ov[0], e = ov[1];
            if (e == s) {  // empty match: step over one character, it stays in the gap
                pos = s + utf8_len(piece, s);
                continue;
            }
            if (s > gap_start) out.emplace_back(piece, gap_start, s - gap_start);
            out.emplace_back(piece, s, e - s);
            pos = gap_start = e;
        }
        if (gap_start < piece.size()) out.emplace_back(piece, gap_start);
    }

    void encode_segment(std::string_view seg, std::vector<int32_t>& ids) const {
        if (seg.empty()) return;
        std::vector<std::string> pieces{std::string(seg)}, next;
        pcre2_match_data* md = nullptr;
        for (size_t k = 0; k < v_.pre_tokenizer.size(); ++k) {
            next.clear();
            for (auto& p : pieces) {
                if (v_.pre_tokenizer[k].add_prefix_space && (p.empty() || p[0] != ' '))
                    p.insert(p.begin(), ' ');
                if (!regexes_[k].code) {
                    next.push_back(std::move(p));
                    continue;
                }
                if (!md) md = pcre2_match_data_create(8, nullptr);
                split(regexes_[k], md, p, next);
            }
            pieces.swap(next);
        }
        if (md) pcre2_match_data_free(md);
        for (const auto& p : pieces) encode_piece(p, ids);
    }

    void encode_piece(const std::string& piece, std::vector<int32_t>& ids) const {
        if (piece.empty()) return;
        {
            std::lock_guard<std::mutex> lock(cache_mu_);
            auto it = cache_.find(piece);
            if (it != cache_.end()) {
                ids.insert(ids.end(), it->second.begin(), it->second.end());
                return;
            }
        }
        std::vector<int32_t> out = bpe(piece);
        ids.insert(ids.end(), out.begin(), out.end());
        std::lock_guard<std::mutex> lock(cache_mu_);
        if (cache_.size() > kMaxCache) cache_.clear();
        cache_.emplace(piece, std::move(out));
    }

    std::vector<int32_t> bpe(const std::string& piece) const {
        if (v_.ignore_merges) {
            std::string mapped;
            for (char c : piece) mapped += byte_char_[static_cast<unsigned char>(c)];
            auto it = index_.find(mapped);
            if (it != index_.end()) return {it->second};
        }
        // Initial symbols: one per byte (HF drops a character missing from the vocabulary when
        // there is no unk token).
        std::vector<int32_t> sym;
        sym.reserve(piece.size());
        for (char c : piece) {
            const int32_t id = byte_id_[static_cast<unsigned char>(c)];
            if (id >= 0)
                sym.push_back(id);
            else if (v_.unk_id >= 0)
                sym.push_back(v_.unk_id);
        }
        const auto n = static_cast<int32_t>(sym.size());
        if (n < 2) return sym;
        std::vector<int32_t> next(n), prev(n);
        for (int32_t i = 0; i < n; ++i) {
            next[i] = i + 1 < n ? i + 1 : -1;
            prev[i] = i - 1;
        }
        struct Cand {
            int32_t rank, left, right, left_id, right_id, merged;
        };
        auto worse = [](const Cand& a, const Cand& b) {
            return a.rank != b.rank ? a.rank > b.rank : a.left > b.left;
        };
        std::priority_queue<Cand, std::vector<Cand>, decltype(worse)> heap(worse);
        auto push = [&](int32_t l, int32_t r) {
            if (l < 0 || r < 0) return;
            auto it = merges_.find(key(sym[l], sym[r]));
            if (it != merges_.end())
                heap.push({it->second.rank, l, r, sym[l], sym[r], it->second.id});
        };
        for (int32_t i = 0; i + 1 < n; ++i) push(i, i + 1);
        std::vector<char> alive(n, 1);
        while (!heap.empty()) {
            const Cand c = heap.top();
            heap.pop();
            if (!alive[c.left] || !alive[c.right] || next[c.left] != c.right ||
                sym[c.left] != c.left_id || sym[c.right] != c.right_id)
                continue;  // stale
            sym[c.left] = c.merged;
            alive[c.right] = 0;
            next[c.left] = next[c.right];
            if (next[c.right] >= 0) prev[next[c.right]] = c.left;
            push(prev[c.left], c.left);
            push(c.left, next[c.left]);
        }
        std::vector<int32_t> out;
        for (int32_t i = 0; i >= 0; i = next[i]) out.push_back(sym[i]);
        return out;
    }

    static constexpr size_t kMaxCache = 1 << 18;

    BpeVocab v_;
    std::vector<char> is_added_;
    std::array<std::vector<int32_t>, 256> added_by_byte_;
    std::unordered_map<std::string, int32_t> index_;
    std::unordered_map<uint64_t, Merge> merges_;
    std::array<int32_t, 256> byte_id_{};
    std::array<std::string, 256> byte_char_;
    std::array<uint8_t, 0x200> cp_to_byte_{};
    std::vector<std::string> bytes_;
    std::vector<Regex> regexes_;
    mutable std::mutex cache_mu_;
    mutable std::unordered_map<std::string, std::vector<int32_t>> cache_;
};

}  // namespace

std::unique_ptr<Tokenizer> make_bpe_tokenizer(BpeVocab vocab) {
    return std::make_unique<BpeTokenizer>(std::move(vocab));
}

std::vector<PreTokenizerStep> gguf_pre_tokenizer_steps(const std::string& pre) {
    // Regexes as llama.cpp (llama-vocab.cpp) and the models' tokenizer.json files define them.
    static const char* const kLlama3 =
        R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
    static const char* const kQwen2 =
        R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
    if (pre == "default" || pre == "gpt2" || pre == "gpt-2") return {{kGpt2PreTokenizerRegex}};
    // StarCoder-family vocabularies (SmolLM, SmolLM2) split every digit off first (HF
    // Digits(individual_digits=true) before ByteLevel).
    if (pre == "smollm" || pre == "starcoder" || pre == "refact" || pre == "codeshell")
        return {{R"(\p{N})"}, {kGpt2PreTokenizerRegex}};
    if (pre == "llama-bpe" || pre == "llama3" || pre == "llama-v3" || pre == "falcon3" ||
        pre == "dbrx" || pre == "smaug-bpe")
        return {{kLlama3}};
    if (pre == "qwen2" || pre == "deepseek-r1-qwen") return {{kQwen2}};
    PALU_THROW(FormatError,
               "tokenizer: GGUF tokenizer.ggml.pre '%s' is not supported: expected one of "
               "default, gpt2, smollm, starcoder, refact, codeshell, llama-bpe, llama3, llama-v3, "
               "falcon3, dbrx, smaug-bpe, qwen2, deepseek-r1-qwen; hint: pass a tokenizer.json "
               "with --tokenizer",
               pre.c_str());
}

}  // namespace palu::calib
