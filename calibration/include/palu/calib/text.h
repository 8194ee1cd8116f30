// palu calibration: text sources for calibration and evaluation.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace palu::calib {

enum class TextFormat { Auto, Wikitext, Jsonl, Plain };

/// Parses "auto|wikitext|jsonl|plain" (UsageError otherwise).
TextFormat parse_text_format(const std::string& s);
/// "auto", "wikitext", "jsonl", "plain".
const char* text_format_name(TextFormat f);

/// Loads a text corpus as one string:
///  - wikitext raw: rows joined with "\n\n" (the literature's convention);
///  - jsonl: the "text" field of each line, documents joined with "\n\n";
///  - plain: the file as is.
/// Auto picks jsonl for *.jsonl, wikitext for wiki.*.raw / *.tokens, plain otherwise.
/// Throws IoError if unreadable, FormatError if it yields no text.
std::string load_text(const std::filesystem::path& path, TextFormat format = TextFormat::Auto);

/// Reads raw little-endian int32 token ids (.i32). Throws on a size not a multiple of 4.
std::vector<int32_t> load_token_file(const std::filesystem::path& path);

}  // namespace palu::calib
