// palu calibration tests: llama2.c tok*.bin tokenizer against the TinyStories golden stream, and
// the SentencePiece loader on a real model.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "palu/calib/text.h"
#include "palu/calib/tokenizer.h"
#include "palu/core/error.h"
#include "test_data.h"

using namespace palu;
using namespace palu::calib;

namespace {

std::string read_file(const std::filesystem::path& p) {
    std::ifstream f(p, std::ios::binary);
    std::ostringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

/// Paragraphs of a text separated by blank lines ("\n\n"), stripped of surrounding whitespace
/// (the golden stream was made from stripped paragraphs: a paragraph ending in a space in the
/// file ends without it in the stream).
std::vector<std::string> paragraphs(const std::string& text) {
    std::vector<std::string> out;
    size_t pos = 0;
    while (pos < text.size()) {
        size_t end = text.find("\n\n", pos);
        if (end == std::string::npos) end = text.size();
        std::string p = text.substr(pos, end - pos);
        const char* ws = " \t\r\n";
        const size_t b = p.find_first_not_of(ws);
        p = b == std::string::npos ? std::string() : p.substr(b, p.find_last_not_of(ws) - b + 1);
        if (!p.empty()) out.push_back(p);
        pos = end + 2;
    }
    return out;
}

void write_bytes(const std::filesystem::path& p, const std::string& data) {
    std::ofstream f(p, std::ios::binary);
    f << data;
}

void put_i32(std::string& s, int32_t v) {
    s.append(reinterpret_cast<const char*>(&v), 4);
}
void put_f32(std::string& s, float v) {
    s.append(reinterpret_cast<const char*>(&v), 4);
}

/// A toy llama2.c tokenizer: <unk>, <s>, </s>, 256 byte pieces, then `extra` pieces with scores.
std::filesystem::path write_toy_tok(const std::vector<std::pair<std::string, float>>& extra) {
    std::string s;
    put_i32(s, 16);
    auto add = [&](const std::string& p, float score) {
        put_f32(s, score);
        put_i32(s, static_cast<int32_t>(p.size()));
        s += p;
    };
    add("<unk>", 0);
    add("\n<s>\n", 0);
    add("\n</s>\n", 0);
    for (int b = 0; b < 256; ++b) {
        char buf[8];
        std::snprintf(buf, sizeof buf, "<0x%02X>", b);
        add(buf, 0);
    }
    for (const auto& [p, sc] : extra) add(p, sc);
    auto dir = test::make_temp_dir("toytok");
    write_bytes(dir / "tok_toy.bin", s);
    return dir / "tok_toy.bin";
}

}  // namespace

TEST(TokenizerLlama2c, TinyStoriesParagraphs_ReproduceGoldenStream_Data) {
    PALU_REQUIRE_DATA(tok_path, "models/stories260K/tok512.bin");
    PALU_REQUIRE_DATA(text_path, "text/tinystories/tinystories_validation_head.txt");
    PALU_REQUIRE_DATA(golden_path, "golden/stories260K.tinystories.i32");
    auto tok = load_tokenizer(tok_path);
    ASSERT_EQ(tok->kind(), "llama2c");
    ASSERT_EQ(tok->n_vocab(), 512);
    ASSERT_EQ(tok->bos_id(), 1);
    ASSERT_EQ(tok->eos_id(), 2);
    const std::vector<int32_t> golden = load_token_file(golden_path);
    ASSERT_EQ(golden.size(), 32768u);

    // The golden stream is [BOS] + encode(paragraph) for the file's paragraphs in order.
    std::vector<int32_t> stream;
    size_t n_par = 0;
    for (const auto& p : paragraphs(read_file(text_path))) {
        auto ids = tok->encode(p, /*add_bos=*/true);
        stream.insert(stream.end(), ids.begin(), ids.end());
        ++n_par;
        if (stream.size() >= golden.size()) break;
    }
    ASSERT_GE(stream.size(), golden.size()) << "text file too short for the golden stream";
    size_t first_diff = golden.size();
    for (size_t i = 0; i < golden.size(); ++i)
        if (stream[i] != golden[i]) {
            first_diff = i;
            break;
        }
    EXPECT_EQ(first_diff, golden.size()) << "first mismatch at token " << first_diff << ": got "
                                         << stream[first_diff] << ", golden " << golden[first_diff];
    EXPECT_GT(n_par, 100u);
}

TEST(TokenizerLlama2c, DecodeRoundTrip_Data) {
    PALU_REQUIRE_DATA(tok_path, "models/stories260K/tok512.bin");
    auto tok = load_tokenizer(tok_path);
    const std::string text =
        "Once upon a time, Lily saw a big \xC3\xA9l\xC3\xA9phant! \xF0\x9F\x98\x80 ok";
    auto ids = tok->encode(text, true);
    ASSERT_FALSE(ids.empty());
    EXPECT_EQ(ids[0], 1);
    EXPECT_EQ(tok->decode(ids), text);
    // Streaming pieces concatenate to the same text.
    std::string streamed;
    for (size_t i = 1; i < ids.size(); ++i) streamed += tok->decode_piece(ids[i - 1], ids[i]);
    EXPECT_EQ(streamed, text);
    EXPECT_TRUE(tok->encode("", true) == std::vector<int32_t>{1});
    EXPECT_TRUE(tok->encode("", false).empty());
}

TEST(TokenizerLlama2c, ToyVocab_MergesByBestScoreLeftmostFirst) {
    // Pieces: " " (dummy prefix), "a", "b", "ab" (score 1), "ba" (score 2), " a" (score 0.5).
    auto path = write_toy_tok(
        {{" ", 0}, {"a", 0}, {"b", 0}, {"ab", 1}, {"ba", 2}, {" a", 0.5f}, {"aa", 1}});
    auto tok = load_tokenizer(path);
    ASSERT_EQ(tok->n_vocab(), 259 + 7);
    const int32_t sp = 259, a = 260, b = 261, ab = 262, ba = 263, spa = 264, aa = 265;
    // " aba": pairs " a"(0.5) ab(1) ba(2) -> ba first: [" ", "a", "ba"] -> " a" -> [" a", "ba"].
    EXPECT_EQ(tok->encode("aba", false), (std::vector<int32_t>{spa, ba}));
    // " aaa": "aa" ties at positions 1 and 2: leftmost wins -> [" ", "aa", "a"] -> no " aa".
    EXPECT_EQ(tok->encode("aaa", false), (std::vector<int32_t>{sp, aa, a}));
    // Unknown code point: byte fallback (+3).
    EXPECT_EQ(tok->encode("\xC3\xA9", false), (std::vector<int32_t>{sp, 0xC3 + 3, 0xA9 + 3}));
    EXPECT_EQ(tok->encode("b", true), (std::vector<int32_t>{1, sp, b}));
    (void)ab;
}

TEST(TokenizerLlama2c, Truncated_ThrowsFormatError) {
    std::string s;
    put_i32(s, 8);
    put_f32(s, 0);
    put_i32(s, 100);  // claims 100 bytes, none follow
    auto dir = test::make_temp_dir("badtok");
    write_bytes(dir / "tok3.bin", s);
    try {
        load_tokenizer(dir / "tok3.bin");
        FAIL() << "expected FormatError";
    } catch (const FormatError& e) {
        EXPECT_NE(std::string(e.what()).find("bad length 100"), std::string::npos) << e.what();
    }
    EXPECT_THROW(load_tokenizer(dir / "missing.bin"), IoError);
}

TEST(TokenizerSentencePiece, Tok105_EncodeDecode_Data) {
    PALU_REQUIRE_DATA(path, "models/tok105/tok105.model");
    auto tok = load_tokenizer(path);
    ASSERT_EQ(tok->kind(), "sentencepiece");
    EXPECT_EQ(tok->n_vocab(), 105);
    const std::string text = "Once upon a time there was a cat.";
    auto ids = tok->encode(text, true);
    ASSERT_GT(ids.size(), 5u);
    EXPECT_EQ(ids[0], tok->bos_id());
    EXPECT_GE(tok->bos_id(), 0);
    EXPECT_EQ(tok->decode(ids), text);
    std::string streamed;
    for (size_t i = 1; i < ids.size(); ++i) streamed += tok->decode_piece(ids[i - 1], ids[i]);
    EXPECT_EQ(streamed, text);
    auto no_bos = tok->encode(text, false);
    EXPECT_EQ(no_bos.size() + 1, ids.size());
    EXPECT_THROW(tok->decode({100000}), UsageError);
}

TEST(TokenizerSentencePiece, NotAModel_ThrowsFormatError) {
    auto dir = test::make_temp_dir("badsp");
    write_bytes(dir / "x.model", "this is not a protobuf");
    EXPECT_THROW(load_tokenizer(dir / "x.model"), FormatError);
}

TEST(TokenizerFind, Stories260K_FindsTokBinBesideBinAndAboveHfDir_Data) {
    PALU_REQUIRE_DATA(dir, "models/stories260K");
    auto t1 = find_tokenizer_for_model(dir / "stories260K.bin", 512);
    EXPECT_EQ(t1->kind(), "llama2c");
    auto t2 = find_tokenizer_for_model(dir / "hf", 512);
    EXPECT_EQ(t2->kind(), "llama2c");
    auto t3 = find_tokenizer_for_model(dir / "hf/", 512);
    EXPECT_EQ(t3->kind(), "llama2c");
    try {
        find_tokenizer_for_model(dir / "hf", 999);
        FAIL() << "expected IoError";
    } catch (const IoError& e) {
        EXPECT_NE(std::string(e.what()).find("--tokenizer"), std::string::npos) << e.what();
    }
}
