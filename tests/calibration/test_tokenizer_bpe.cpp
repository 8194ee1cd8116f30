// palu calibration tests: byte-level BPE. Toy vocabularies written here check the algorithm and
// the tokenizer.json parser; the SmolLM2-135M GGUF tokenizer must reproduce the ids Hugging Face
// `tokenizers` gives on WikiText-2 and C4 (tests/reference/bpe_smollm2_reference.json, made by
// tests/reference/make_bpe_reference.py; the texts are read from the shared data, not copied).
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "palu/calib/bpe.h"
#include "palu/calib/text.h"
#include "palu/calib/tokenizer.h"
#include "palu/core/error.h"
#include "palu/core/sha256.h"
#include "palu/formats/gguf_writer.h"
#include "test_data.h"

using namespace palu;
using namespace palu::calib;
using nlohmann::json;

namespace {

std::string read_file(const std::filesystem::path& p) {
    std::ifstream f(p, std::ios::binary);
    std::ostringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

/// SHA-256 of the ids as little-endian int32 bytes (the fixture's checksum).
std::string ids_sha256(const std::vector<int32_t>& ids) {
    std::string bytes;
    bytes.reserve(ids.size() * 4);
    for (int32_t id : ids) {
        const auto u = static_cast<uint32_t>(id);
        for (int b = 0; b < 4; ++b) bytes.push_back(static_cast<char>((u >> (8 * b)) & 0xFF));
    }
    return sha256_hex(bytes);
}

/// A toy byte-level vocabulary: all 256 byte characters, a few merges, two special tokens.
/// Byte-level spelling: ' ' is "Ġ" (U+0120), '\n' is "Ċ" (U+010A).
json toy_tokenizer_json() {
    json vocab = json::object();
    // GPT-2 byte alphabet in byte order, so id == byte value for ids 0..255.
    int extra = 0;
    for (int b = 0; b < 256; ++b) {
        const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
        const uint32_t cp = printable ? b : 256 + extra++;
        std::string s;
        if (cp < 0x80) {
            s.push_back(static_cast<char>(cp));
        } else {
            s.push_back(static_cast<char>(0xC0 | (cp >> 6)));
            s.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
        }
        vocab[s] = b;
    }
    vocab["Ġt"] = 256;
    vocab["he"] = 257;
    vocab["Ġthe"] = 258;
    vocab["in"] = 259;
    vocab["Ġin"] = 260;
    vocab["ĠĠ"] = 261;
    vocab["12"] = 262;
    json j;
    j["version"] = "1.0";
    j["normalizer"] = nullptr;
    j["added_tokens"] = json::array({{{"id", 263}, {"content", "<|eot|>"}, {"special", true}},
                                     {{"id", 264}, {"content", "<s>"}, {"special", true}}});
    j["pre_tokenizer"] = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}};
    j["decoder"] = {{"type", "ByteLevel"}};
    j["post_processor"] = nullptr;
    j["model"] = {{"type", "BPE"},
                  {"vocab", vocab},
                  // both merge spellings HF has used: "a b" strings and [a, b] pairs
                  {"merges", json::array({"Ġ t", json::array({"h", "e"}), "Ġt he", "i n",
                                          json::array({"Ġ", "in"}), "Ġ Ġ", "1 2"})}};
    return j;
}

std::unique_ptr<Tokenizer> toy(const json& j) {
    return make_bpe_tokenizer(bpe_vocab_from_tokenizer_json(j.dump(), "toy.json"));
}

}  // namespace

TEST(TokenizerBpe, Toy_MergesByRankAndByteLevelRoundTrip) {
    auto tok = toy(toy_tokenizer_json());
    EXPECT_EQ(tok->kind(), "bpe");
    EXPECT_EQ(tok->n_vocab(), 265);
    // "the in" -> "the" | " in": "t"+"he" has no merge without the leading space.
    EXPECT_EQ(tok->encode("the in", false), (std::vector<int32_t>{'t', 257, 260}));
    EXPECT_EQ(tok->encode(" the", false), (std::vector<int32_t>{258}));
    // "   x": \s+(?!\S) takes two spaces ("ĠĠ"), the last space joins " x" as its own pre-token.
    EXPECT_EQ(tok->encode("   x", false), (std::vector<int32_t>{261, ' ', 'x'}));
    // Special tokens are cut out before pre-tokenization; decode renders them verbatim.
    auto ids = tok->encode("a<|eot|> the<s>", false);
    EXPECT_EQ(ids, (std::vector<int32_t>{'a', 263, 258, 264}));
    EXPECT_EQ(tok->decode(ids), "a<|eot|> the<s>");
    const std::string text =
        "Gr\xC3\xBC\xC3\x9F"
        "e\n\n\t 123 \xF0\x9F\x98\x80!";
    EXPECT_EQ(tok->decode(tok->encode(text, false)), text);
    std::string streamed;
    int32_t prev = -1;
    for (int32_t id : tok->encode(text, false)) {
        streamed += tok->decode_piece(prev, id);
        prev = id;
    }
    EXPECT_EQ(streamed, text);
    // No BOS configured: add_bos is a no-op.
    EXPECT_EQ(tok->bos_id(), -1);
    EXPECT_FALSE(tok->adds_bos());
    EXPECT_EQ(tok->encode("x", true), (std::vector<int32_t>{'x'}));
}

TEST(TokenizerBpe, Toy_SplitDigitsAndPrefixSpaceSteps) {
    json j = toy_tokenizer_json();
    j["pre_tokenizer"] = {
        {"type", "Sequence"},
        {"pretokenizers",
         json::array({{{"type", "Digits"}, {"individual_digits", true}},
                      {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"use_regex", true}}})}};
    auto tok = toy(j);
    // Digits split "12" into "1","2" before BPE, so the "1 2" merge cannot apply; the prefix
    // space is added to every piece that lacks one (HF ByteLevel semantics).
    EXPECT_EQ(tok->encode("12", false), (std::vector<int32_t>{' ', '1', ' ', '2'}));
    j["pre_tokenizer"] = {{"type", "ByteLevel"}, {"add_prefix_space", false}};
    EXPECT_EQ(toy(j)->encode("12", false), (std::vector<int32_t>{262}));
    // Split with a literal String pattern (regex metacharacters are escaped).
    j["pre_tokenizer"] = {
        {"type", "Split"}, {"pattern", {{"String", "."}}}, {"behavior", "Isolated"}};
    EXPECT_EQ(toy(j)->encode("in.in", false), (std::vector<int32_t>{259, '.', 259}));
}

TEST(TokenizerBpe, Toy_PostProcessorTemplateGivesBos) {
    json j = toy_tokenizer_json();
    j["post_processor"] = {
        {"type", "TemplateProcessing"},
        {"single", json::array({{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}},
                                {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}})},
        {"special_tokens", {{"<s>", {{"id", "<s>"}, {"ids", {264}}, {"tokens", {"<s>"}}}}}}};
    auto tok = toy(j);
    EXPECT_EQ(tok->bos_id(), 264);
    EXPECT_TRUE(tok->adds_bos());
    EXPECT_EQ(tok->encode("in", true), (std::vector<int32_t>{264, 259}));
    EXPECT_EQ(tok->decode({264, 259}), "in");  // BOS dropped
}

TEST(TokenizerBpe, Toy_IgnoreMergesEmitsWholeVocabWord) {
    json j = toy_tokenizer_json();
    j["model"]["vocab"]["xyz"] = 265;  // no merges lead to it
    EXPECT_EQ(toy(j)->encode("xyz", false), (std::vector<int32_t>{'x', 'y', 'z'}));
    j["model"]["ignore_merges"] = true;
    EXPECT_EQ(toy(j)->encode("xyz", false), (std::vector<int32_t>{265}));
}

TEST(TokenizerBpe, Toy_LongWordIsFastAndCorrect) {
    // One 200k-byte pre-token (no regex): merging must not be quadratic.
    json j = toy_tokenizer_json();
    j["pre_tokenizer"] = nullptr;
    auto tok = toy(j);
    std::string s;
    for (int i = 0; i < 40000; ++i) s += " the ";
    const auto t0 = std::chrono::steady_clock::now();
    auto ids = tok->encode(s, false);
    const double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    ASSERT_EQ(ids.size(), 80000u);  // " the" then " " each time
    EXPECT_EQ(ids[0], 258);
    EXPECT_EQ(ids[1], ' ');
    EXPECT_LT(sec, 5.0);
}

TEST(TokenizerBpe, Malformed_ThrowsFormatErrorNamingThePart) {
    auto expect_format = [](const std::string& text, const std::string& needle) {
        try {
            bpe_vocab_from_tokenizer_json(text, "t.json");
            make_bpe_tokenizer(bpe_vocab_from_tokenizer_json(text, "t.json"));
            ADD_FAILURE() << "expected FormatError for " << needle;
        } catch (const FormatError& e) {
            EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
            EXPECT_NE(std::string(e.what()).find("t.json"), std::string::npos) << e.what();
        }
    };
    expect_format("{not json", "not valid JSON");
    expect_format("{}", "no 'model'");
    json j = toy_tokenizer_json();
    j["model"]["type"] = "WordPiece";
    expect_format(j.dump(), "WordPiece");
    j = toy_tokenizer_json();
    j["normalizer"] = {{"type", "NFC"}};
    expect_format(j.dump(), "normalizer");
    j = toy_tokenizer_json();
    j["pre_tokenizer"] = {{"type", "Metaspace"}};
    expect_format(j.dump(), "Metaspace");
    j = toy_tokenizer_json();
    j["model"]["merges"].push_back("q zz");
    expect_format(j.dump(), "merge 7 'q zz'");
    j = toy_tokenizer_json();
    j["model"]["merges"].push_back("abc");
    expect_format(j.dump(), "merge 7 'abc'");
    j = toy_tokenizer_json();
    j["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", "(unclosed"}}}};
    expect_format(j.dump(), "PCRE2");
    j = toy_tokenizer_json();
    j["model"]["vocab"]["big"] = 1LL << 40;
    expect_format(j.dump(), "out of range");
}

TEST(TokenizerBpe, GgufPreTokenizerNames) {
    EXPECT_EQ(gguf_pre_tokenizer_steps("smollm").size(), 2u);
    EXPECT_EQ(gguf_pre_tokenizer_steps("gpt2").size(), 1u);
    EXPECT_EQ(gguf_pre_tokenizer_steps("llama-bpe").size(), 1u);
    try {
        gguf_pre_tokenizer_steps("mystery-pre");
        FAIL() << "expected FormatError";
    } catch (const FormatError& e) {
        EXPECT_NE(std::string(e.what()).find("'mystery-pre' is not supported"), std::string::npos);
    }
    // Every known name compiles.
    for (const char* name : {"default", "smollm", "llama3", "qwen2"}) {
        BpeVocab v = bpe_vocab_from_tokenizer_json(toy_tokenizer_json().dump(), "toy");
        v.pre_tokenizer = gguf_pre_tokenizer_steps(name);
        auto tok = make_bpe_tokenizer(v);
        EXPECT_EQ(tok->decode(tok->encode("It's 2024 -- ok?\n\n", false)), "It's 2024 -- ok?\n\n");
    }
}

// ---- SmolLM2-135M against Hugging Face tokenizers ------------------------------------------

namespace {

struct Reference {
    json j;
    std::vector<std::string> wiki_lines;  // with their "\n"
    std::vector<std::string> c4_docs;
};

std::string sample_text(const Reference& ref, const json& s) {
    const std::string kind = s["kind"];
    if (kind == "inline") return s["text"];
    const size_t first = s["first"], count = s["count"];
    if (kind == "line") return ref.wiki_lines.at(first);
    if (kind == "jsonl_doc") return ref.c4_docs.at(first);
    if (kind == "wikitext_rows") {
        std::string out;
        for (size_t i = first; i < first + count; ++i) {
            if (i > first) out += "\n\n";
            const std::string& ln = ref.wiki_lines.at(i);
            if (ln.find_first_not_of(" \t\r\n") != std::string::npos) out += ln;
        }
        return out;
    }
    ADD_FAILURE() << "unknown sample kind " << kind;
    return {};
}

/// Checks every fixture sample; returns the number of mismatching samples.
int check_reference(const Tokenizer& tok, const Reference& ref, const std::string& label) {
    int n_bad = 0;
    for (const auto& s : ref.j["samples"]) {
        const std::string name = s["name"];
        if (name == "wiki_full") continue;  // checked separately (timed)
        const auto ids = tok.encode(sample_text(ref, s), false);
        const bool ok = ids.size() == s["n_ids"].get<size_t>() &&
                        ids_sha256(ids) == s["sha256"].get<std::string>();
        if (!ok) {
            ++n_bad;
            std::string where;
            if (s.contains("ids")) {
                const auto want = s["ids"].get<std::vector<int32_t>>();
                size_t k = 0;
                while (k < ids.size() && k < want.size() && ids[k] == want[k]) ++k;
                where = " first difference at index " + std::to_string(k);
            }
            ADD_FAILURE() << label << ": sample " << name << ": got " << ids.size()
                          << " ids, expected " << s["n_ids"] << where;
        }
    }
    return n_bad;
}

Reference load_reference(const std::filesystem::path& wiki, const std::filesystem::path& c4) {
    Reference ref;
    ref.j = json::parse(
        read_file(palu::test::source_root() / "tests/reference/bpe_smollm2_reference.json"));
    const std::string raw = read_file(wiki);
    for (size_t pos = 0; pos < raw.size();) {
        size_t nl = raw.find('\n', pos);
        size_t end = nl == std::string::npos ? raw.size() : nl + 1;
        ref.wiki_lines.push_back(raw.substr(pos, end - pos));
        pos = end;
    }
    std::istringstream in(read_file(c4));
    for (std::string line; std::getline(in, line);)
        if (!line.empty()) ref.c4_docs.push_back(json::parse(line)["text"]);
    return ref;
}

}  // namespace

void check_whole_wikitext(const Tokenizer& tok, const std::filesystem::path& wiki,
                          const std::string& label);

TEST(TokenizerBpe, SmolLM2Gguf_MatchesHfTokenizersOnWikiAndC4_Data) {
    PALU_REQUIRE_SMOLLM2(gguf);
    PALU_REQUIRE_DATA(wiki, "text/wikitext-2/wiki.test.raw");
    PALU_REQUIRE_DATA(c4, "text/c4/c4_sample_500.jsonl");
    const Reference ref = load_reference(wiki, c4);
    auto tok = load_tokenizer(gguf);
    EXPECT_EQ(tok->kind(), "bpe");
    EXPECT_EQ(tok->n_vocab(), ref.j["n_vocab"].get<int64_t>());
    EXPECT_EQ(tok->bos_id(), ref.j["bos_id"].get<int32_t>());
    EXPECT_EQ(tok->eos_id(), ref.j["eos_id"].get<int32_t>());
    EXPECT_EQ(tok->adds_bos(), ref.j["add_bos"].get<bool>());
    EXPECT_EQ(check_reference(*tok, ref, "gguf"), 0);
    // Decoding gives the text back.
    const std::string t = sample_text(ref, ref.j["samples"][0]);
    EXPECT_EQ(tok->decode(tok->encode(t, false)), t);
    // The GGUF is its own tokenizer.
    EXPECT_EQ(find_tokenizer_for_model(gguf, 49152)->kind(), "bpe");
}

TEST(TokenizerBpe, SmolLM2TokenizerJson_MatchesHfTokenizers_Data) {
    // models/smollm2/tokenizer.json is written by make_bpe_reference.py (optional).
    const auto tj = palu::test::source_root() / "models/smollm2/tokenizer.json";
    if (!std::filesystem::exists(tj)) GTEST_SKIP() << "needs " << tj << " (make_bpe_reference.py)";
    PALU_REQUIRE_DATA(wiki, "text/wikitext-2/wiki.test.raw");
    PALU_REQUIRE_DATA(c4, "text/c4/c4_sample_500.jsonl");
    const Reference ref = load_reference(wiki, c4);
    auto tok = load_tokenizer(tj);
    EXPECT_EQ(check_reference(*tok, ref, "tokenizer.json"), 0);
    check_whole_wikitext(*load_tokenizer(tj), wiki, "tokenizer.json");
}

/// The whole WikiText-2 test set (load_text: rows joined with "\n\n") against the fixture's
/// count and checksum, timed.
void check_whole_wikitext(const Tokenizer& tok, const std::filesystem::path& wiki,
                          const std::string& label) {
    const json j = json::parse(
        read_file(palu::test::source_root() / "tests/reference/bpe_smollm2_reference.json"));
    json full;
    for (const auto& s : j["samples"])
        if (s["name"] == "wiki_full") full = s;
    ASSERT_FALSE(full.is_null());
    const std::string text = load_text(wiki);
    const auto t0 = std::chrono::steady_clock::now();
    const auto ids = tok.encode(text, false);
    const double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    EXPECT_EQ(ids.size(), full["n_ids"].get<size_t>()) << label;
    EXPECT_EQ(ids_sha256(ids), full["sha256"].get<std::string>()) << label;
    std::printf("%s: wiki.test.raw joined: %zu bytes -> %zu tokens in %.3f s (%.0f tokens/s)\n",
                label.c_str(), text.size(), ids.size(), sec, ids.size() / sec);
    EXPECT_LT(sec, 20.0);
}

TEST(TokenizerBpe, SmolLM2Gguf_WholeWikitext2Test_CountAndChecksum_Data) {
    PALU_REQUIRE_SMOLLM2(gguf);
    PALU_REQUIRE_DATA(wiki, "text/wikitext-2/wiki.test.raw");
    check_whole_wikitext(*load_tokenizer(gguf), wiki, "gguf");
}

// ---- GGUF metadata (toy files written with formats::GgufWriter) ------------------------------

namespace {

std::filesystem::path write_toy_gguf(const std::string& model, const std::string& pre,
                                     bool add_bos) {
    using namespace palu::formats;
    const json tj = toy_tokenizer_json();
    std::vector<std::string> tokens(265);
    for (const auto& [t, id] : tj["model"]["vocab"].items()) tokens[id.get<int>()] = t;
    tokens[263] = "<|eot|>";
    tokens[264] = "<s>";
    std::vector<std::string> merges;
    for (const auto& m : tj["model"]["merges"])
        merges.push_back(m.is_string() ? m.get<std::string>()
                                       : m[0].get<std::string>() + " " + m[1].get<std::string>());
    std::vector<int32_t> types(265, 1);
    types[263] = types[264] = 3;
    GgufWriter w;
    w.set("general.architecture", gguf_str("llama"));
    w.set("tokenizer.ggml.model", gguf_str(model));
    w.set("tokenizer.ggml.pre", gguf_str(pre));
    w.set("tokenizer.ggml.tokens", gguf_str_array(tokens));
    w.set("tokenizer.ggml.merges", gguf_str_array(merges));
    w.set("tokenizer.ggml.token_type", gguf_i32_array(types));
    w.set("tokenizer.ggml.bos_token_id", gguf_u32(264));
    w.set("tokenizer.ggml.eos_token_id", gguf_u32(263));
    w.set("tokenizer.ggml.add_bos_token", gguf_bool(add_bos));
    const auto path = palu::test::make_temp_dir("toygguf") / "toy.gguf";
    w.write(path);
    return path;
}

}  // namespace

TEST(TokenizerBpe, ToyGguf_MetadataGivesVocabSpecialsAndBos) {
    auto tok = load_tokenizer(write_toy_gguf("gpt2", "smollm", true));
    EXPECT_EQ(tok->kind(), "bpe");
    EXPECT_EQ(tok->n_vocab(), 265);
    EXPECT_EQ(tok->bos_id(), 264);
    EXPECT_EQ(tok->eos_id(), 263);
    EXPECT_TRUE(tok->adds_bos());
    // smollm: digits split one by one, so "12" does not merge; control tokens matched whole.
    EXPECT_EQ(tok->encode(" the 12<|eot|>", true),
              (std::vector<int32_t>{264, 258, ' ', '1', '2', 263}));
    EXPECT_EQ(tok->decode({264, 258, 263}), " the<|eot|>");
    auto tok2 = find_tokenizer_for_model(write_toy_gguf("gpt2", "gpt2", false), 265);
    EXPECT_FALSE(tok2->adds_bos());
    EXPECT_EQ(tok2->encode("12", true), (std::vector<int32_t>{262}));
}

TEST(TokenizerBpe, ToyGguf_UnknownPreOrModel_FormatError) {
    const auto p = write_toy_gguf("gpt2", "mystery-pre", false);
    try {
        load_tokenizer(p);
        FAIL() << "expected FormatError";
    } catch (const FormatError& e) {
        const std::string msg = e.what();
        EXPECT_NE(msg.find("'mystery-pre' is not supported"), std::string::npos) << msg;
        EXPECT_NE(msg.find(p.string()), std::string::npos) << msg;
    }
    EXPECT_THROW(load_tokenizer(write_toy_gguf("bert", "default", false)), FormatError);
}
