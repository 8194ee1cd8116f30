// palu calibration: text corpora and token files for calibration and evaluation.
// WikiText raw follows the Hugging Face `wikitext-2-raw-v1` dataset the literature evaluates on:
// its rows are the lines of wiki.*.raw with their trailing "\n" kept, and a whitespace-only line
// (" \n" in the raw file) is the empty row ""; perplexity scripts (GPTQ, Palu, SVD-LLM) then
// tokenize "\n\n".join(rows). load_text reproduces that string byte for byte.
#include "palu/calib/text.h"

#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "palu/core/error.h"

namespace palu::calib {
namespace {

namespace fs = std::filesystem;

std::string read_all(const fs::path& path) {
    PALU_CHECK(fs::exists(path), IoError, "text: %s: no such file", path.string().c_str());
    PALU_CHECK(!fs::is_directory(path), IoError, "text: %s: is a directory, expected a file",
               path.string().c_str());
    std::ifstream f(path, std::ios::binary);
    PALU_CHECK(f.good(), IoError, "text: %s: cannot open for reading", path.string().c_str());
    std::ostringstream ss;
    ss << f.rdbuf();
    PALU_CHECK(!f.bad(), IoError, "text: %s: read error", path.string().c_str());
    return ss.str();
}

bool is_blank(std::string_view s) {
    return s.find_first_not_of(" \t\r\n\f\v") == std::string_view::npos;
}

bool ends_with(const std::string& s, std::string_view suffix) {
    return s.size() >= suffix.size() &&
           s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string wikitext_join(const std::string& raw) {
    std::string out;
    out.reserve(raw.size() * 2);
    bool first = true;
    size_t pos = 0;
    while (pos < raw.size()) {
        size_t nl = raw.find('\n', pos);
        const size_t end = nl == std::string::npos ? raw.size() : nl + 1;
        std::string_view row(raw.data() + pos, end - pos);
        if (!first) out += "\n\n";
        first = false;
        if (!is_blank(row)) out.append(row);
        pos = end;
    }
    return out;
}

std::string jsonl_join(const std::string& raw, const std::string& name) {
    std::string out;
    size_t pos = 0;
    int64_t line_no = 0, n_docs = 0;
    while (pos < raw.size()) {
        size_t nl = raw.find('\n', pos);
        const size_t end = nl == std::string::npos ? raw.size() : nl;
        std::string_view line(raw.data() + pos, end - pos);
        pos = end + 1;
        ++line_no;
        if (is_blank(line)) continue;
        nlohmann::json j;
        try {
            j = nlohmann::json::parse(line.begin(), line.end());
        } catch (const nlohmann::json::exception& e) {
            PALU_THROW(FormatError, "text: %s:%lld: not valid JSON: %s", name.c_str(),
                       static_cast<long long>(line_no), e.what());
        }
        PALU_CHECK(j.is_object() && j.contains("text") && j["text"].is_string(), FormatError,
                   "text: %s:%lld: expected an object with a string \"text\" field", name.c_str(),
                   static_cast<long long>(line_no));
        const auto& t = j["text"].get_ref<const std::string&>();
        if (t.empty()) continue;
        if (n_docs++ > 0) out += "\n\n";
        out += t;
    }
    return out;
}

}  // namespace

TextFormat parse_text_format(const std::string& s) {
    if (s == "auto") return TextFormat::Auto;
    if (s == "wikitext") return TextFormat::Wikitext;
    if (s == "jsonl") return TextFormat::Jsonl;
    if (s == "plain") return TextFormat::Plain;
    PALU_THROW(UsageError, "text: format '%s' unknown: expected auto, wikitext, jsonl or plain",
               s.c_str());
}

const char* text_format_name(TextFormat f) {
    switch (f) {
        case TextFormat::Auto: return "auto";
        case TextFormat::Wikitext: return "wikitext";
        case TextFormat::Jsonl: return "jsonl";
        case TextFormat::Plain: return "plain";
    }
    return "auto";
}

std::string load_text(const fs::path& path, TextFormat format) {
    const std::string name = path.filename().string();
    if (format == TextFormat::Auto) {
        if (ends_with(name, ".jsonl"))
            format = TextFormat::Jsonl;
        else if ((name.rfind("wiki.", 0) == 0 && ends_with(name, ".raw")) ||
                 ends_with(name, ".tokens"))
            format = TextFormat::Wikitext;
        else
            format = TextFormat::Plain;
    }
    const std::string raw = read_all(path);
    std::string text;
    switch (format) {
        case TextFormat::Wikitext: text = wikitext_join(raw); break;
        case TextFormat::Jsonl: text = jsonl_join(raw, path.string()); break;
        default: text = raw; break;
    }
    PALU_CHECK(!is_blank(text), FormatError,
               "text: %s: no text: the file yields only whitespace (%zu bytes read)",
               path.string().c_str(), raw.size());
    return text;
}

std::vector<int32_t> load_token_file(const fs::path& path) {
    const std::string raw = read_all(path);
    PALU_CHECK(raw.size() % 4 == 0, FormatError,
               "text: %s: token file size %zu bytes is not a multiple of 4 (int32 ids)",
               path.string().c_str(), raw.size());
    PALU_CHECK(!raw.empty(), FormatError, "text: %s: no tokens: the file is empty",
               path.string().c_str());
    std::vector<int32_t> ids(raw.size() / 4);
    for (size_t i = 0; i < ids.size(); ++i) {
        const auto* b = reinterpret_cast<const unsigned char*>(raw.data() + 4 * i);
        const uint32_t u = static_cast<uint32_t>(b[0]) | (static_cast<uint32_t>(b[1]) << 8) |
                           (static_cast<uint32_t>(b[2]) << 16) |
                           (static_cast<uint32_t>(b[3]) << 24);
        ids[i] = static_cast<int32_t>(u);
    }
    return ids;
}

}  // namespace palu::calib
