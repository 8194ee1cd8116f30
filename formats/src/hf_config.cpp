// palu formats: HF config.json -> ModelConfig (llama, mistral, qwen2 and palu-compressed variants).
// Defaults for absent optional keys follow the transformers configuration classes of each family.
#include "palu/formats/hf_config.h"

#include <limits>

#include "io_util.h"
#include "palu/core/error.h"
#include "palu/core/format.h"

namespace palu::formats {

using nlohmann::json;

const std::vector<std::string>& supported_model_types() {
    static const std::vector<std::string> types = {
        "llama", "mistral", "qwen2", "palullama", "palumistral", "paluqwen2", "deepseek_v3"};
    return types;
}

namespace {

std::string join(const std::vector<std::string>& v) {
    std::string s;
    for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + v[i];
    return s;
}

std::string brief(const json& v) {
    return detail::brief_json(v);
}

// Typed accessors: every error names the key, the file and what was found.
struct Reader {
    const json& j;  // the object being read
    const std::string& src;
    std::string prefix;  // "" or "rope_scaling."

    const json* get(const char* key) const {
        auto it = j.find(key);
        if (it == j.end() || it->is_null()) return nullptr;
        return &*it;
    }
    [[noreturn]] void missing(const char* key) const {
        PALU_THROW(FormatError, "formats: %s: missing required key '%s%s' (ConfigMissingKey)",
                   src.c_str(), prefix.c_str(), key);
    }
    [[noreturn]] void wrong_type(const char* key, const char* expected, const json& v) const {
        PALU_THROW(FormatError, "formats: %s: key '%s%s': expected %s, got %s %s (ConfigWrongType)",
                   src.c_str(), prefix.c_str(), key, expected, v.type_name(), brief(v).c_str());
    }
    int64_t as_int(const char* key, const json& v) const {
        if (!v.is_number_integer()) wrong_type(key, "an integer", v);
        if (v.is_number_unsigned() &&
            v.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
            wrong_type(key, "an integer < 2^63", v);
        return v.get<int64_t>();
    }
    int64_t req_int(const char* key) const {
        auto* v = get(key);
        if (!v) missing(key);
        return as_int(key, *v);
    }
    int64_t opt_int(const char* key, int64_t dflt) const {
        auto* v = get(key);
        return v ? as_int(key, *v) : dflt;
    }
    double as_double(const char* key, const json& v) const {
        if (!v.is_number()) wrong_type(key, "a number", v);
        return v.get<double>();
    }
    double req_double(const char* key) const {
        auto* v = get(key);
        if (!v) missing(key);
        return as_double(key, *v);
    }
    double opt_double(const char* key, double dflt) const {
        auto* v = get(key);
        return v ? as_double(key, *v) : dflt;
    }
    bool opt_bool(const char* key, bool dflt) const {
        auto* v = get(key);
        if (!v) return dflt;
        if (!v->is_boolean()) wrong_type(key, "true or false", *v);
        return v->get<bool>();
    }
    std::string opt_string(const char* key, const std::string& dflt) const {
        auto* v = get(key);
        if (!v) return dflt;
        if (!v->is_string()) wrong_type(key, "a string", *v);
        return v->get<std::string>();
    }
};

RopeScaling parse_rope_scaling(const json& rs, const std::string& src, const char* key) {
    RopeScaling out;
    if (!rs.is_object())
        PALU_THROW(FormatError,
                   "formats: %s: key '%s': expected an object or null, got %s %s (ConfigWrongType)",
                   src.c_str(), key, rs.type_name(), brief(rs).c_str());
    Reader r{rs, src, std::string(key) + "."};
    // transformers writes "rope_type"; older configs use "type".
    std::string type = r.opt_string("rope_type", r.opt_string("type", ""));
    if (type.empty() && std::string(key) == "rope_parameters") type = "default";
    if (type.empty()) r.missing("rope_type");
    if (type == "default") return out;
    if (type == "linear") {
        out.type = "linear";
        out.factor = r.req_double("factor");
    } else if (type == "llama3") {
        out.type = "llama3";
        out.factor = r.req_double("factor");
        out.low_freq_factor = r.req_double("low_freq_factor");
        out.high_freq_factor = r.req_double("high_freq_factor");
        out.original_max_position_embeddings = r.req_int("original_max_position_embeddings");
        PALU_CHECK(
            out.high_freq_factor > out.low_freq_factor && out.original_max_position_embeddings > 0,
            FormatError,
            "formats: %s: %s (llama3): expected high_freq_factor > low_freq_factor and "
            "original_max_position_embeddings > 0, got %g, %g, %lld (ConfigInvalidValue)",
            src.c_str(), key, out.high_freq_factor, out.low_freq_factor,
            static_cast<long long>(out.original_max_position_embeddings));
    } else {
        PALU_THROW(FormatError,
                   "formats: %s: %s type '%s' is not supported: expected one of default, linear, "
                   "llama3 (UnsupportedRopeScaling)",
                   src.c_str(), key, type.c_str());
    }
    PALU_CHECK(out.factor > 0, FormatError,
               "formats: %s: %s.factor: expected > 0, got %g (ConfigInvalidValue)", src.c_str(),
               key, out.factor);
    return out;
}

// DeepSeek-V3 MLA in the dense form palu runs: plain q_proj, every layer a dense MLP, no biases,
// no rope scaling. Sets c.mla, d_head = qk_nope + qk_rope and n_kv_heads = n_heads.
void parse_deepseek_v3(const Reader& r, ModelConfig& c) {
    const std::string& src = r.src;
    auto unsupported = [&](const char* key, const json& v, const char* what) {
        PALU_THROW(FormatError,
                   "formats: %s: key '%s' = %s is not supported yet: expected %s (deepseek_v3) "
                   "(UnsupportedConfig)",
                   src.c_str(), key, brief(v).c_str(), what);
    };
    if (auto* v = r.get("q_lora_rank")) unsupported("q_lora_rank", *v, "null (a plain q_proj)");
    if (auto* v = r.get("rope_scaling")) unsupported("rope_scaling", *v, "null");
    if (auto* rp = r.get("rope_parameters")) {
        Reader rr{*rp, src, "rope_parameters."};
        const std::string type = rr.opt_string("rope_type", "default");
        if (type != "default") unsupported("rope_parameters", *rp, "rope_type default");
    }
    if (auto* v = r.get("attention_bias"); v && v->is_boolean() && v->get<bool>())
        unsupported("attention_bias", *v, "false");
    if (r.get("n_routed_experts")) {
        const int64_t k = r.opt_int("first_k_dense_replace", 3);
        PALU_CHECK(k >= c.n_layers, FormatError,
                   "formats: %s: key 'first_k_dense_replace' = %lld: MoE layers are not supported "
                   "yet: expected first_k_dense_replace >= num_hidden_layers = %lld or "
                   "n_routed_experts null (UnsupportedConfig)",
                   src.c_str(), static_cast<long long>(k), static_cast<long long>(c.n_layers));
    }
    MlaConfig m;
    m.kv_lora_rank = r.req_int("kv_lora_rank");
    m.qk_rope_head_dim = r.req_int("qk_rope_head_dim");
    m.qk_nope_head_dim = r.req_int("qk_nope_head_dim");
    m.v_head_dim = r.req_int("v_head_dim");
    m.rope_interleave = r.opt_bool("rope_interleave", true);
    for (int64_t v : {m.kv_lora_rank, m.qk_rope_head_dim, m.qk_nope_head_dim, m.v_head_dim})
        PALU_CHECK(v <= 65536, FormatError,
                   "formats: %s: MLA head sizes / kv_lora_rank: expected <= 65536, got %lld "
                   "(ConfigInvalidValue)",
                   src.c_str(), static_cast<long long>(v));
    c.d_head = m.qk_nope_head_dim + m.qk_rope_head_dim;
    c.n_kv_heads = c.n_heads;
    c.mla = m;
}

}  // namespace

HfConfig parse_hf_config(const json& j, const std::string& source) {
    const std::string& src = source;
    PALU_CHECK(j.is_object(), FormatError,
               "formats: %s: expected a JSON object, got %s (ConfigWrongType)", src.c_str(),
               j.type_name());
    Reader r{j, src, ""};
    HfConfig out;
    out.raw = j;
    auto* mt = r.get("model_type");
    PALU_CHECK(
        mt != nullptr, FormatError,
        "formats: %s: missing required key 'model_type': expected one of %s (ConfigMissingKey)",
        src.c_str(), join(supported_model_types()).c_str());
    if (!mt->is_string()) r.wrong_type("model_type", "a string", *mt);
    out.model_type = mt->get<std::string>();
    std::string arch = out.model_type;
    if (arch.rfind("palu", 0) == 0) {
        out.palu_compressed = true;
        arch = arch.substr(4);
    }
    const bool deepseek = !out.palu_compressed && arch == "deepseek_v3";
    PALU_CHECK(arch == "llama" || arch == "mistral" || arch == "qwen2" || deepseek, FormatError,
               "formats: %s: model_type '%s' is not supported: expected one of %s "
               "(UnsupportedArchitecture)",
               src.c_str(), out.model_type.c_str(), join(supported_model_types()).c_str());

    ModelConfig& c = out.model;
    c.architecture = arch;
    c.d_model = r.req_int("hidden_size");
    c.n_layers = r.req_int("num_hidden_layers");
    c.n_heads = r.req_int("num_attention_heads");
    c.n_kv_heads = r.opt_int("num_key_value_heads", c.n_heads);
    c.d_ff = r.req_int("intermediate_size");
    c.n_vocab = r.req_int("vocab_size");
    if (deepseek) {
        // DeepseekV3Config writes head_dim = qk_rope_head_dim; the real sizes come below.
    } else if (r.get("head_dim")) {
        c.d_head = r.req_int("head_dim");
    } else {
        PALU_CHECK(c.n_heads > 0 && c.d_model % c.n_heads == 0, ShapeError,
                   "formats: %s: no head_dim and hidden_size=%lld is not a multiple of "
                   "num_attention_heads=%lld; hint: set head_dim",
                   src.c_str(), static_cast<long long>(c.d_model),
                   static_cast<long long>(c.n_heads));
        c.d_head = c.d_model / c.n_heads;
    }
    // Bounds far above any real model keep later size arithmetic (n_heads * d_head, per-layer
    // tensor lists) free of overflow and absurd allocations for hostile configs.
    auto bounded = [&](const char* key, int64_t v, int64_t max) {
        PALU_CHECK(v <= max, FormatError,
                   "formats: %s: key '%s': expected <= %lld, got %lld (ConfigInvalidValue)",
                   src.c_str(), key, static_cast<long long>(max), static_cast<long long>(v));
    };
    constexpr int64_t kMaxDim = int64_t{1} << 24;
    bounded("hidden_size", c.d_model, kMaxDim);
    bounded("num_hidden_layers", c.n_layers, 4096);
    bounded("num_attention_heads", c.n_heads, 65536);
    bounded("num_key_value_heads", c.n_kv_heads, 65536);
    bounded("head_dim", c.d_head, 65536);
    bounded("intermediate_size", c.d_ff, kMaxDim);
    bounded("vocab_size", c.n_vocab, kMaxDim);
    const int64_t default_ctx = arch == "llama"         ? 2048
                                : arch == "qwen2"       ? 32768
                                : arch == "deepseek_v3" ? 4096
                                                        : 4096 * 32;
    c.max_position_embeddings = r.opt_int("max_position_embeddings", default_ctx);
    c.rms_norm_eps = r.opt_double("rms_norm_eps", 1e-6);
    c.rope_theta = r.opt_double("rope_theta", 10000.0);
    if (deepseek) parse_deepseek_v3(r, c);
    if (auto* rs = r.get("rope_scaling")) {
        c.rope_scaling = parse_rope_scaling(*rs, src, "rope_scaling");
    } else if (auto* rp = r.get("rope_parameters")) {
        // transformers >= 5 groups rope_theta and the scaling under rope_parameters.
        c.rope_scaling = parse_rope_scaling(*rp, src, "rope_parameters");
        Reader rr{*rp, src, "rope_parameters."};
        c.rope_theta = rr.opt_double("rope_theta", c.rope_theta);
    }
    c.tie_word_embeddings = r.opt_bool("tie_word_embeddings", false);
    const bool attention_bias = r.opt_bool("attention_bias", false);
    if (arch == "qwen2") {
        // Qwen2 always has q/k/v biases and no o_proj bias.
        c.qkv_bias = true;
        c.o_bias = false;
    } else {
        c.qkv_bias = attention_bias;
        c.o_bias = attention_bias;
    }
    c.mlp_bias = r.opt_bool("mlp_bias", false);
    std::string act = r.opt_string("hidden_act", "silu");
    PALU_CHECK(
        act == "silu", FormatError,
        "formats: %s: hidden_act '%s' is not supported: expected silu (UnsupportedActivation)",
        src.c_str(), act.c_str());

    c.bos_token_id = r.opt_int("bos_token_id", -1);
    c.eos_token_ids.clear();
    if (auto* e = r.get("eos_token_id")) {
        if (e->is_array()) {
            for (const auto& x : *e) c.eos_token_ids.push_back(r.as_int("eos_token_id[]", x));
        } else {
            c.eos_token_ids.push_back(r.as_int("eos_token_id", *e));
        }
    }
    c.validate(src);
    return out;
}

HfConfig parse_hf_config(std::string_view text, const std::string& source) {
    json j = detail::parse_json_strict(text, source, "config", "ConfigInvalidJson",
                                       "ConfigDuplicateKey");
    return parse_hf_config(j, source);
}

nlohmann::json read_hf_config_json(const std::filesystem::path& config_json) {
    std::string text = detail::read_text_file(config_json, 64ull << 20);
    return detail::parse_json_strict(text, config_json.string(), "config", "ConfigInvalidJson",
                                     "ConfigDuplicateKey");
}

HfConfig read_hf_config(const std::filesystem::path& config_json) {
    return parse_hf_config(read_hf_config_json(config_json), config_json.string());
}

HfArchNames hf_arch_names(const std::string& arch) {
    if (arch == "llama") return {"LlamaForCausalLM", "palullama", "PaluLlamaForCausalLM"};
    if (arch == "mistral") return {"MistralForCausalLM", "palumistral", "PaluMistralForCausalLM"};
    if (arch == "qwen2") return {"Qwen2ForCausalLM", "paluqwen2", "PaluQwenForCausalLM"};
    PALU_THROW(UsageError,
               "config: architecture '%s' is not supported: expected llama, mistral or qwen2",
               arch.c_str());
}

const char* torch_dtype_name(DType dt) {
    return dt == DType::F16 ? "float16" : dt == DType::BF16 ? "bfloat16" : "float32";
}

namespace {

// The keys every written config ends with: special token ids, torch_dtype, use_cache.
void put_common_tail(json& j, const ModelConfig& c, const std::string& torch_dtype) {
    j["bos_token_id"] = c.bos_token_id >= 0 ? json(c.bos_token_id) : json(nullptr);
    if (c.eos_token_ids.empty())
        j["eos_token_id"] = nullptr;
    else if (c.eos_token_ids.size() == 1)
        j["eos_token_id"] = c.eos_token_ids[0];
    else
        j["eos_token_id"] = c.eos_token_ids;
    j["torch_dtype"] = torch_dtype;
    j["use_cache"] = true;
}

// The dense DeepSeek-V3 form (runtimes-and-peers.md §C.1): plain q_proj, one MLA latent per
// layer, every layer a dense MLP — the MoE fields are neutral and first_k_dense_replace covers
// every layer, because DeepseekV3Config's defaults are MoE.
json deepseek_v3_config_json(const ModelConfig& c, const std::string& torch_dtype) {
    PALU_CHECK(!c.qkv_bias && !c.o_bias && !c.mlp_bias && c.rope_scaling.type == "none", UsageError,
               "config: a DeepSeek-V3 (MLA) config has no biases and no rope scaling here");
    const MlaConfig& m = *c.mla;
    json j;
    j["architectures"] = {"DeepseekV3ForCausalLM"};
    j["model_type"] = "deepseek_v3";
    j["hidden_size"] = c.d_model;
    j["intermediate_size"] = c.d_ff;
    j["num_hidden_layers"] = c.n_layers;
    j["num_attention_heads"] = c.n_heads;
    j["num_key_value_heads"] = c.n_heads;
    j["q_lora_rank"] = nullptr;
    j["kv_lora_rank"] = m.kv_lora_rank;
    j["qk_rope_head_dim"] = m.qk_rope_head_dim;
    j["qk_nope_head_dim"] = m.qk_nope_head_dim;
    j["v_head_dim"] = m.v_head_dim;
    j["head_dim"] = m.qk_rope_head_dim;  // as DeepseekV3Config writes it
    j["rope_interleave"] = m.rope_interleave;
    j["vocab_size"] = c.n_vocab;
    j["max_position_embeddings"] = c.max_position_embeddings;
    j["rms_norm_eps"] = c.rms_norm_eps;
    j["rope_theta"] = c.rope_theta;
    j["rope_scaling"] = nullptr;
    j["tie_word_embeddings"] = c.tie_word_embeddings;
    j["attention_bias"] = false;
    j["hidden_act"] = "silu";
    // Every layer below first_k_dense_replace. n_routed_experts is an integer, not null, because
    // vLLM's load_weights adds to it when it builds the expert mapping; 1 routed expert picked by
    // 1 token, no shared expert, sized like the dense MLP, describes no tensor at all.
    j["first_k_dense_replace"] = c.n_layers;
    j["moe_layer_freq"] = 1;
    j["n_routed_experts"] = 1;
    j["n_shared_experts"] = 0;
    j["num_experts_per_tok"] = 1;
    j["moe_intermediate_size"] = c.d_ff;
    j["n_group"] = 1;
    j["topk_group"] = 1;
    j["topk_method"] = "noaux_tc";
    j["scoring_func"] = "sigmoid";
    j["routed_scaling_factor"] = 1.0;
    j["norm_topk_prob"] = true;
    // No multi-token-prediction layers (DeepseekV3Config / vLLM default to 1 and then look for
    // model.layers.{num_hidden_layers}.*).
    j["num_nextn_predict_layers"] = 0;
    // transformers >= 5 reads rope_parameters, older transformers / vLLM rope_theta; both agree.
    j["rope_parameters"] = {{"rope_type", "default"}, {"rope_theta", c.rope_theta}};
    j["dtype"] = torch_dtype;
    put_common_tail(j, c, torch_dtype);
    return j;
}

}  // namespace

json hf_config_json(const ModelConfig& c, const std::string& torch_dtype) {
    if (c.is_mla()) return deepseek_v3_config_json(c, torch_dtype);
    const HfArchNames names = hf_arch_names(c.architecture);
    // parse_hf_config derives the bias flags from model_type + attention_bias; refuse what it
    // cannot express rather than write a config that reads back as another model.
    if (c.architecture == "qwen2") {
        PALU_CHECK(c.qkv_bias && !c.o_bias, UsageError,
                   "config: qwen2 config with qkv_bias=%d, o_bias=%d: expected q/k/v biases "
                   "and no o_proj bias (what config.json can express for qwen2)",
                   c.qkv_bias, c.o_bias);
    } else {
        PALU_CHECK(c.qkv_bias == c.o_bias, UsageError,
                   "config: %s config with qkv_bias=%d, o_bias=%d: expected both or neither "
                   "(config.json attention_bias)",
                   c.architecture.c_str(), c.qkv_bias, c.o_bias);
    }
    json j;
    j["architectures"] = {names.base_class};
    j["model_type"] = c.architecture;
    j["hidden_size"] = c.d_model;
    j["intermediate_size"] = c.d_ff;
    j["num_hidden_layers"] = c.n_layers;
    j["num_attention_heads"] = c.n_heads;
    j["num_key_value_heads"] = c.n_kv_heads;
    j["head_dim"] = c.d_head;
    j["vocab_size"] = c.n_vocab;
    j["max_position_embeddings"] = c.max_position_embeddings;
    j["rms_norm_eps"] = c.rms_norm_eps;
    j["rope_theta"] = c.rope_theta;
    const RopeScaling& rs = c.rope_scaling;
    if (rs.type == "none") {
        j["rope_scaling"] = nullptr;
    } else if (rs.type == "linear") {
        j["rope_scaling"] = {{"rope_type", "linear"}, {"factor", rs.factor}};
    } else if (rs.type == "llama3") {
        j["rope_scaling"] = {
            {"rope_type", "llama3"},
            {"factor", rs.factor},
            {"low_freq_factor", rs.low_freq_factor},
            {"high_freq_factor", rs.high_freq_factor},
            {"original_max_position_embeddings", rs.original_max_position_embeddings}};
    } else {
        PALU_THROW(UsageError,
                   "config: rope scaling '%s' is not supported: expected none, "
                   "linear or llama3",
                   rs.type.c_str());
    }
    j["tie_word_embeddings"] = c.tie_word_embeddings;
    if (c.architecture != "qwen2") j["attention_bias"] = c.qkv_bias;
    j["mlp_bias"] = c.mlp_bias;
    j["hidden_act"] = "silu";
    put_common_tail(j, c, torch_dtype);
    return j;
}

}  // namespace palu::formats
