// palu calibration: BpeVocab from a Hugging Face tokenizer.json or from GGUF tokenizer.ggml.*
// metadata. Only the components byte-level BPE models of the Llama family use are accepted; any
// other component is a FormatError naming it, never a silent approximation.
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "palu/calib/bpe.h"
#include "palu/core/error.h"
#include "palu/formats/gguf.h"

namespace palu::calib {
namespace {

using nlohmann::json;

constexpr int64_t kMaxVocab = 1 << 22;  // ids beyond this are malformed input, not a real vocab

/// Escapes a literal string for PCRE2 (HF Split with {"String": ...}).
std::string regex_quote(const std::string& s) {
    std::string out;
    for (char c : s) {
        if (std::string_view("\\^$.|?*+()[]{}").find(c) != std::string_view::npos) out += '\\';
        out += c;
    }
    return out;
}

std::string str_field(const json& j, const char* key, const std::string& src) {
    PALU_CHECK(j.is_object() && j.contains(key) && j[key].is_string(), FormatError,
               "tokenizer: %s: expected string field '%s'", src.c_str(), key);
    return j[key].get<std::string>();
}

void add_pre_tokenizer(const json& p, const std::string& src, std::vector<PreTokenizerStep>& out) {
    if (p.is_null()) return;
    const std::string type = str_field(p, "type", src);
    if (type == "Sequence") {
        PALU_CHECK(p.contains("pretokenizers") && p["pretokenizers"].is_array(), FormatError,
                   "tokenizer: %s: pre_tokenizer Sequence without 'pretokenizers' array",
                   src.c_str());
        for (const auto& q : p["pretokenizers"]) add_pre_tokenizer(q, src, out);
    } else if (type == "ByteLevel") {
        PreTokenizerStep s;
        s.add_prefix_space = p.value("add_prefix_space", false);
        if (p.value("use_regex", true)) s.regex = kGpt2PreTokenizerRegex;
        out.push_back(s);
    } else if (type == "Split") {
        const std::string behavior = p.value("behavior", std::string("Isolated"));
        PALU_CHECK(behavior == "Isolated" && !p.value("invert", false), FormatError,
                   "tokenizer: %s: pre_tokenizer Split behavior '%s' (invert=%d) is not "
                   "supported: expected Isolated, invert=false",
                   src.c_str(), behavior.c_str(), static_cast<int>(p.value("invert", false)));
        PALU_CHECK(p.contains("pattern") && p["pattern"].is_object(), FormatError,
                   "tokenizer: %s: pre_tokenizer Split without 'pattern'", src.c_str());
        const json& pat = p["pattern"];
        PreTokenizerStep s;
        if (pat.contains("Regex") && pat["Regex"].is_string())
            s.regex = pat["Regex"].get<std::string>();
        else if (pat.contains("String") && pat["String"].is_string())
            s.regex = regex_quote(pat["String"].get<std::string>());
        else
            PALU_THROW(FormatError, "tokenizer: %s: Split pattern needs 'Regex' or 'String'",
                       src.c_str());
        PALU_CHECK(!s.regex.empty(), FormatError, "tokenizer: %s: Split pattern is empty",
                   src.c_str());
        out.push_back(s);
    } else if (type == "Digits") {
        out.push_back({p.value("individual_digits", false) ? R"(\p{N})" : R"(\p{N}+)"});
    } else {
        PALU_THROW(FormatError,
                   "tokenizer: %s: pre_tokenizer '%s' is not supported: expected ByteLevel, "
                   "Split, Digits or a Sequence of them",
                   src.c_str(), type.c_str());
    }
}

int32_t token_id_of(const BpeVocab& v, const std::string& text) {
    for (size_t i = 0; i < v.tokens.size(); ++i)
        if (v.tokens[i] == text) return static_cast<int32_t>(i);
    return -1;
}

/// "bos_token": "<s>" or {"content": "<s>", ...} in tokenizer_config.json.
std::string special_token_text(const json& cfg, const char* key) {
    if (!cfg.is_object() || !cfg.contains(key)) return {};
    const json& t = cfg[key];
    if (t.is_string()) return t.get<std::string>();
    if (t.is_object() && t.contains("content") && t["content"].is_string())
        return t["content"].get<std::string>();
    return {};
}

std::string read_file(const std::filesystem::path& path, const char* what) {
    std::ifstream f(path, std::ios::binary);
    PALU_CHECK(f.good(), IoError, "tokenizer: %s: cannot open %s", path.string().c_str(), what);
    std::ostringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

}  // namespace

BpeVocab bpe_vocab_from_tokenizer_json(std::string_view text, const std::string& src,
                                       std::string_view tokenizer_config_json) {
    json j;
    try {
        j = json::parse(text.begin(), text.end());
    } catch (const json::exception& e) {
        PALU_THROW(FormatError, "tokenizer: %s: not valid JSON: %s", src.c_str(), e.what());
    }
    PALU_CHECK(j.is_object() && j.contains("model") && j["model"].is_object(), FormatError,
               "tokenizer: %s: no 'model' object; expected a Hugging Face tokenizer.json",
               src.c_str());
    BpeVocab v;
    v.source = src;
    try {
        const json& m = j["model"];
        const std::string type = m.value("type", std::string("BPE"));
        PALU_CHECK(type == "BPE", FormatError,
                   "tokenizer: %s: model type '%s' is not supported: expected BPE (byte-level)",
                   src.c_str(), type.c_str());
        for (const char* k : {"continuing_subword_prefix", "end_of_word_suffix"})
            PALU_CHECK(!m.contains(k) || m[k].is_null() ||
                           (m[k].is_string() && m[k].get<std::string>().empty()),
                       FormatError, "tokenizer: %s: BPE '%s' is not supported", src.c_str(), k);
        PALU_CHECK(!m.contains("dropout") || m["dropout"].is_null(), FormatError,
                   "tokenizer: %s: BPE dropout is not supported", src.c_str());
        if (j.contains("normalizer") && !j["normalizer"].is_null()) {
            const json& nm = j["normalizer"];
            const bool empty_seq = nm.is_object() &&
                                   nm.value("type", std::string()) == "Sequence" &&
                                   nm.contains("normalizers") && nm["normalizers"].is_array() &&
                                   nm["normalizers"].empty();
            PALU_CHECK(empty_seq, FormatError,
                       "tokenizer: %s: normalizer %s is not supported: expected none", src.c_str(),
                       nm.dump().substr(0, 80).c_str());
        }
        PALU_CHECK(m.contains("vocab") && m["vocab"].is_object(), FormatError,
                   "tokenizer: %s: model.vocab is not an object", src.c_str());
        for (const auto& [tok, idj] : m["vocab"].items()) {
            PALU_CHECK(idj.is_number_integer(), FormatError,
                       "tokenizer: %s: vocab entry '%s' has a non-integer id", src.c_str(),
                       tok.c_str());
            const auto id = idj.get<int64_t>();
            PALU_CHECK(id >= 0 && id < kMaxVocab, FormatError,
                       "tokenizer: %s: vocab entry '%s' id %lld out of range: expected [0, %lld)",
                       src.c_str(), tok.c_str(), static_cast<long long>(id),
                       static_cast<long long>(kMaxVocab));
            if (static_cast<size_t>(id) >= v.tokens.size()) v.tokens.resize(id + 1);
            v.tokens[id] = tok;
        }
        if (m.contains("merges") && !m["merges"].is_null()) {
            PALU_CHECK(m["merges"].is_array(), FormatError,
                       "tokenizer: %s: model.merges is not an array", src.c_str());
            for (const auto& mj : m["merges"]) {
                if (mj.is_string()) {
                    const std::string s = mj.get<std::string>();
                    const size_t sp = s.find(' ');
                    PALU_CHECK(sp != std::string::npos && sp > 0 && sp + 1 < s.size() &&
                                   s.find(' ', sp + 1) == std::string::npos,
                               FormatError,
                               "tokenizer: %s: merge %zu '%s': expected two tokens separated by "
                               "one space",
                               src.c_str(), v.merges.size(), s.c_str());
                    v.merges.emplace_back(s.substr(0, sp), s.substr(sp + 1));
                } else {
                    PALU_CHECK(
                        mj.is_array() && mj.size() == 2 && mj[0].is_string() && mj[1].is_string(),
                        FormatError, "tokenizer: %s: merge %zu: expected \"a b\" or [\"a\", \"b\"]",
                        src.c_str(), v.merges.size());
                    v.merges.emplace_back(mj[0].get<std::string>(), mj[1].get<std::string>());
                }
            }
        }
        v.ignore_merges = m.value("ignore_merges", false);
        if (m.contains("unk_token") && m["unk_token"].is_string())
            v.unk_id = token_id_of(v, m["unk_token"].get<std::string>());

        if (j.contains("added_tokens") && j["added_tokens"].is_array()) {
            for (const auto& a : j["added_tokens"]) {
                PALU_CHECK(a.is_object() && a.contains("id") && a["id"].is_number_integer() &&
                               a.contains("content") && a["content"].is_string(),
                           FormatError,
                           "tokenizer: %s: added token without integer 'id' and "
                           "string 'content'",
                           src.c_str());
                const auto id = a["id"].get<int64_t>();
                PALU_CHECK(id >= 0 && id < kMaxVocab, FormatError,
                           "tokenizer: %s: added token id %lld out of range", src.c_str(),
                           static_cast<long long>(id));
                if (static_cast<size_t>(id) >= v.tokens.size()) v.tokens.resize(id + 1);
                v.tokens[id] = a["content"].get<std::string>();
                v.added_ids.push_back(static_cast<int32_t>(id));
            }
        }
        if (j.contains("pre_tokenizer"))
            add_pre_tokenizer(j["pre_tokenizer"], src, v.pre_tokenizer);
        if (j.contains("decoder") && !j["decoder"].is_null()) {
            const std::string dt = j["decoder"].value("type", std::string());
            PALU_CHECK(dt == "ByteLevel", FormatError,
                       "tokenizer: %s: decoder '%s' is not supported: expected ByteLevel",
                       src.c_str(), dt.c_str());
        }

        // BOS from the post-processor template ("single": [SpecialToken, Sequence A]).
        if (j.contains("post_processor") && j["post_processor"].is_object()) {
            const json& pp = j["post_processor"];
            std::vector<const json*> procs{&pp};
            if (pp.value("type", std::string()) == "Sequence" && pp.contains("processors") &&
                pp["processors"].is_array())
                for (const auto& q : pp["processors"]) procs.push_back(&q);
            for (const json* q : procs) {
                if (!q->is_object() || q->value("type", std::string()) != "TemplateProcessing")
                    continue;
                if (!q->contains("single") || !(*q)["single"].is_array() || (*q)["single"].empty())
                    continue;
                const json& first = (*q)["single"][0];
                if (!first.is_object() || !first.contains("SpecialToken")) continue;
                const json& st = first["SpecialToken"];
                if (!st.is_object() || !st.contains("id") || !st["id"].is_string()) continue;
                const std::string name = st["id"].get<std::string>();
                int32_t id = -1;
                if (q->contains("special_tokens") && (*q)["special_tokens"].is_object() &&
                    (*q)["special_tokens"].contains(name)) {
                    const json& e = (*q)["special_tokens"][name];
                    if (e.is_object() && e.contains("ids") && e["ids"].is_array() &&
                        !e["ids"].empty() && e["ids"][0].is_number_integer())
                        id = e["ids"][0].get<int32_t>();
                }
                if (id < 0) id = token_id_of(v, name);
                if (id >= 0) {
                    v.bos_id = id;
                    v.add_bos = true;
                }
            }
        }
    } catch (const json::exception& e) {
        PALU_THROW(FormatError, "tokenizer: %s: unexpected JSON structure: %s", src.c_str(),
                   e.what());
    }

    if (!tokenizer_config_json.empty()) {
        json cfg;
        try {
            cfg = json::parse(tokenizer_config_json.begin(), tokenizer_config_json.end());
        } catch (const json::exception& e) {
            PALU_THROW(FormatError,
                       "tokenizer: tokenizer_config.json beside %s: not valid JSON: %s",
                       src.c_str(), e.what());
        }
        if (v.bos_id < 0) v.bos_id = token_id_of(v, special_token_text(cfg, "bos_token"));
        v.eos_id = token_id_of(v, special_token_text(cfg, "eos_token"));
        if (!v.add_bos && cfg.is_object() && cfg.contains("add_bos_token") &&
            cfg["add_bos_token"].is_boolean())
            v.add_bos = cfg["add_bos_token"].get<bool>() && v.bos_id >= 0;
    }
    return v;
}

BpeVocab load_bpe_vocab_json(const std::filesystem::path& path) {
    const std::string text = read_file(path, "tokenizer.json");
    std::string cfg;
    const auto cfg_path = path.parent_path() / "tokenizer_config.json";
    if (std::filesystem::exists(cfg_path)) cfg = read_file(cfg_path, "tokenizer_config.json");
    return bpe_vocab_from_tokenizer_json(text, path.string(), cfg);
}

BpeVocab bpe_vocab_from_gguf(const formats::GgufFile& g) {
    const std::string src = g.path();
    const std::string model = g.get_string("tokenizer.ggml.model");
    PALU_CHECK(model == "gpt2", FormatError,
               "tokenizer: %s: tokenizer.ggml.model '%s' is not supported here: expected 'gpt2' "
               "(byte-level BPE)",
               src.c_str(), model.c_str());
    BpeVocab v;
    v.source = src;
    v.tokens = g.get_string_array("tokenizer.ggml.tokens");
    for (const std::string& m : g.get_string_array("tokenizer.ggml.merges")) {
        const size_t sp = m.find(' ');
        PALU_CHECK(sp != std::string::npos && sp > 0 && sp + 1 < m.size(), FormatError,
                   "tokenizer: %s: tokenizer.ggml.merges[%zu] '%s': expected two tokens "
                   "separated by a space",
                   src.c_str(), v.merges.size(), m.c_str());
        v.merges.emplace_back(m.substr(0, sp), m.substr(sp + 1));
    }
    if (g.find("tokenizer.ggml.token_type")) {
        const auto types = g.get_int_array("tokenizer.ggml.token_type");
        PALU_CHECK(types.size() == v.tokens.size(), FormatError,
                   "tokenizer: %s: tokenizer.ggml.token_type has %zu entries: expected %zu (one "
                   "per token)",
                   src.c_str(), types.size(), v.tokens.size());
        // 3 = CONTROL (special), 4 = USER_DEFINED: both are matched whole in the text, as
        // llama.cpp and transformers' GGUF loader do.
        for (size_t i = 0; i < types.size(); ++i)
            if (types[i] == 3 || types[i] == 4) v.added_ids.push_back(static_cast<int32_t>(i));
    }
    const std::string pre =
        g.find("tokenizer.ggml.pre") ? g.get_string("tokenizer.ggml.pre") : std::string("default");
    try {
        v.pre_tokenizer = gguf_pre_tokenizer_steps(pre);
    } catch (const FormatError& e) {
        PALU_THROW(FormatError, "%s (in %s)", e.what(), src.c_str());
    }
    v.ignore_merges = pre == "llama-bpe" || pre == "llama3" || pre == "llama-v3";
    auto opt_id = [&](const char* key) -> int32_t {
        return g.find(key) ? static_cast<int32_t>(g.get_int(key)) : -1;
    };
    v.bos_id = opt_id("tokenizer.ggml.bos_token_id");
    v.eos_id = opt_id("tokenizer.ggml.eos_token_id");
    v.unk_id = opt_id("tokenizer.ggml.unknown_token_id");
    if (const auto* ab = g.find("tokenizer.ggml.add_bos_token"))
        v.add_bos = ab->u != 0 || ab->i != 0;
    return v;
}

}  // namespace palu::calib
