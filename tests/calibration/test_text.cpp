// palu calibration tests: text sources (wikitext raw, JSON lines, plain, int32 token files).
#include <gtest/gtest.h>

#include <fstream>
#include <functional>

#include "palu/calib/text.h"
#include "palu/core/error.h"
#include "test_data.h"

using namespace palu;
using namespace palu::calib;

namespace {

std::filesystem::path write(const std::string& name, const std::string& data) {
    auto dir = test::make_temp_dir("text");
    std::ofstream f(dir / name, std::ios::binary);
    f << data;
    return dir / name;
}

template <class Err>
std::string error_of(const std::function<void()>& fn) {
    try {
        fn();
    } catch (const Err& e) {
        return e.what();
    }
    ADD_FAILURE() << "expected exception not thrown";
    return {};
}

}  // namespace

TEST(Text, ParseFormat) {
    EXPECT_EQ(parse_text_format("auto"), TextFormat::Auto);
    EXPECT_EQ(parse_text_format("wikitext"), TextFormat::Wikitext);
    EXPECT_EQ(parse_text_format("jsonl"), TextFormat::Jsonl);
    EXPECT_EQ(parse_text_format("plain"), TextFormat::Plain);
    EXPECT_THROW(parse_text_format("csv"), UsageError);
}

TEST(Text, Wikitext_RowsJoinedWithBlankRowsEmpty) {
    // The raw layout: " \n" blank lines around headings and paragraphs, each line ending " \n".
    auto p = write("wiki.test.raw", " \n = Title = \n \n Body one . \n Body two . \n");
    // Rows: "", " = Title = \n", "", " Body one . \n", " Body two . \n" joined with "\n\n".
    EXPECT_EQ(load_text(p), "\n\n = Title = \n\n\n\n\n Body one . \n\n\n Body two . \n");
    EXPECT_EQ(load_text(p, TextFormat::Plain), " \n = Title = \n \n Body one . \n Body two . \n");
    // No trailing newline: the last row has none either.
    EXPECT_EQ(load_text(write("x.txt", "a\nb"), TextFormat::Wikitext), "a\n\n\nb");
}

TEST(Text, Jsonl_TextFieldsJoined) {
    auto p = write("c.jsonl",
                   "{\"text\": \"first doc\", \"url\": \"u\"}\n\n{\"text\": \"second\\ndoc\"}\r\n"
                   "{\"text\": \"\"}\n");
    EXPECT_EQ(load_text(p), "first doc\n\nsecond\ndoc");
}

TEST(Text, Jsonl_MalformedLine_FormatErrorWithLineNumber) {
    auto p = write("bad.jsonl", "{\"text\": \"ok\"}\n{\"text\": broken}\n");
    auto msg = error_of<FormatError>([&] { load_text(p); });
    EXPECT_NE(msg.find("bad.jsonl:2"), std::string::npos) << msg;
    auto p2 = write("bad2.jsonl", "{\"text\": \"ok\"}\n\n{\"content\": \"x\"}\n");
    msg = error_of<FormatError>([&] { load_text(p2); });
    EXPECT_NE(msg.find("bad2.jsonl:3"), std::string::npos) << msg;
    EXPECT_NE(msg.find("\"text\""), std::string::npos) << msg;
    auto p3 = write("bad3.jsonl", "[1, 2]\n");
    EXPECT_THROW(load_text(p3), FormatError);
}

TEST(Text, EmptyOrMissing_ClearErrors) {
    auto msg = error_of<FormatError>([&] { load_text(write("empty.txt", "")); });
    EXPECT_NE(msg.find("no text"), std::string::npos) << msg;
    EXPECT_NE(msg.find("empty.txt"), std::string::npos) << msg;
    EXPECT_THROW(load_text(write("blank.txt", " \n\t\n")), FormatError);
    EXPECT_THROW(load_text(write("wiki.test.raw", " \n \n")), FormatError);
    EXPECT_THROW(load_text(write("e.jsonl", "{\"text\": \"\"}\n")), FormatError);
    const auto missing = test::make_temp_dir("text") / "nope.txt";
    msg = error_of<IoError>([&] { load_text(missing); });
    EXPECT_NE(msg.find(missing.string()), std::string::npos) << msg;
    EXPECT_THROW(load_token_file(missing), IoError);
}

TEST(Text, TokenFile_LittleEndianInt32) {
    std::string raw;
    for (int32_t v : {1, 300, -1, 0x01020304}) {
        const auto u = static_cast<uint32_t>(v);
        for (int b = 0; b < 4; ++b) raw.push_back(static_cast<char>((u >> (8 * b)) & 0xFF));
    }
    EXPECT_EQ(load_token_file(write("t.i32", raw)), (std::vector<int32_t>{1, 300, -1, 0x01020304}));
    auto msg = error_of<FormatError>([&] { load_token_file(write("odd.i32", raw + "xy")); });
    EXPECT_NE(msg.find("not a multiple of 4"), std::string::npos) << msg;
    EXPECT_THROW(load_token_file(write("zero.i32", "")), FormatError);
}

TEST(Text, RealFiles_Data) {
    PALU_REQUIRE_DATA(wiki, "text/wikitext-2/wiki.test.raw");
    PALU_REQUIRE_DATA(c4, "text/c4/c4_sample_500.jsonl");
    PALU_REQUIRE_DATA(ts, "text/tinystories/tinystories_validation_head.txt");
    const std::string w = load_text(wiki);
    // 4358 lines -> 4358 rows -> 4357 separators; the text starts with the empty first row.
    EXPECT_EQ(w.rfind("\n\n = Robert Boulter = \n\n", 0), 0u);
    EXPECT_EQ(load_text(c4).find("\n\n") != std::string::npos, true);
    EXPECT_FALSE(load_text(ts).empty());
}
