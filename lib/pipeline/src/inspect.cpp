// palu pipeline: inspect stage. KV bytes per token = 2 (K,V) · n_layers · n_kv_heads · d_head ·
// bytes per element, batch 1 (MLA: n_layers · (kv_lora_rank + qk_rope_head_dim) · bytes, the
// latent cache). The element type is the checkpoint's K/V (MLA: kv_a_proj) weight dtype for float
// checkpoints (F32/F16/BF16) and F16 for quantized GGUF ones (llama.cpp's default cache type).
#include "palu/pipeline/inspect.h"

#include <algorithm>

#include "palu/core/format.h"
#include "palu/formats/model_loader.h"

namespace palu::pipeline {

namespace {

int64_t float_type_bytes(const std::string& t) {
    if (t == "F32") return 4;
    if (t == "F16" || t == "BF16") return 2;
    if (t == "F64") return 8;
    return 0;  // quantized or integer
}

}  // namespace

InspectResult run_inspect(const InspectParams& params) {
    auto src = formats::open_model(params.model_path);
    InspectResult r;
    r.path = params.model_path;
    r.format = src->format_name();
    r.config = src->config();
    std::string kv_type;
    for (const auto& t : src->tensors()) {
        int64_t n = 1;
        for (auto d : t.shape) n *= d;
        r.n_params += n;
        if (!(r.config.tie_word_embeddings && t.name == "lm_head.weight")) r.n_params_unique += n;
        r.n_tensors += 1;
        r.file_bytes += static_cast<int64_t>(t.n_bytes);
        r.storage_types[t.storage_type] += 1;
        if (kv_type.empty() && (t.name.find("self_attn.k_proj") != std::string::npos ||
                                t.name.find("self_attn.kv_a_proj") != std::string::npos))
            kv_type = t.storage_type;
    }
    int64_t b = float_type_bytes(kv_type);
    if (b == 0) {
        r.kv_dtype = "F16";
        r.kv_from_quantized = true;
        b = 2;
    } else {
        r.kv_dtype = kv_type;
    }
    r.kv_dtype_bytes = b;
    const auto& c = r.config;
    // An MLA cache holds the latent and the shared rotated key per token and layer.
    r.kv_bytes_per_token = c.is_mla()
                               ? c.n_layers * (c.mla->kv_lora_rank + c.mla->qk_rope_head_dim) * b
                               : 2 * c.n_layers * c.n_kv_heads * c.d_head * b;
    for (auto ctx : params.contexts) r.kv_bytes_at.emplace_back(ctx, ctx * r.kv_bytes_per_token);
    return r;
}

nlohmann::json to_json(const InspectResult& r) {
    const auto& c = r.config;
    nlohmann::json j;
    j["path"] = r.path;
    j["format"] = r.format;
    j["architecture"] = c.architecture;
    j["config"] = {{"d_model", c.d_model},
                   {"n_layers", c.n_layers},
                   {"n_heads", c.n_heads},
                   {"n_kv_heads", c.n_kv_heads},
                   {"d_head", c.d_head},
                   {"d_ff", c.d_ff},
                   {"n_vocab", c.n_vocab},
                   {"max_position_embeddings", c.max_position_embeddings},
                   {"rms_norm_eps", c.rms_norm_eps},
                   {"rope_theta", c.rope_theta},
                   {"rope_scaling", c.rope_scaling.type},
                   {"tie_word_embeddings", c.tie_word_embeddings},
                   {"qkv_bias", c.qkv_bias},
                   {"attention", c.n_kv_heads == c.n_heads ? "MHA" : "GQA"}};
    j["n_params"] = r.n_params;
    j["n_params_unique"] = r.n_params_unique;
    j["n_tensors"] = r.n_tensors;
    j["tensor_bytes"] = r.file_bytes;
    j["storage_types"] = r.storage_types;
    j["kv_cache"] = {{"dtype", r.kv_dtype},
                     {"dtype_assumed_for_quantized_weights", r.kv_from_quantized},
                     {"bytes_per_token", r.kv_bytes_per_token}};
    nlohmann::json at = nlohmann::json::object();
    for (auto& [ctx, bytes] : r.kv_bytes_at) at[std::to_string(ctx)] = bytes;
    j["kv_cache"]["bytes_at_context_batch1"] = at;
    return j;
}

std::string to_text(const InspectResult& r) {
    const auto& c = r.config;
    std::string types;
    for (auto& [t, n] : r.storage_types)
        types += strfmt("%s%s x%lld", types.empty() ? "" : ", ", t.c_str(), (long long)n);
    std::string s;
    s += strfmt("model         %s (%s)\n", r.path.c_str(), r.format.c_str());
    s += strfmt("architecture  %s, %s\n", c.architecture.c_str(),
                c.n_kv_heads == c.n_heads ? "MHA" : "GQA");
    s += strfmt(
        "dimensions    d_model %lld, layers %lld, heads %lld, kv heads %lld, d_head %lld, "
        "d_ff %lld, vocab %lld\n",
        (long long)c.d_model, (long long)c.n_layers, (long long)c.n_heads, (long long)c.n_kv_heads,
        (long long)c.d_head, (long long)c.d_ff, (long long)c.n_vocab);
    s += strfmt("rope          theta %g, scaling %s\n", c.rope_theta, c.rope_scaling.type.c_str());
    s += strfmt("parameters    %lld (%.1f M)%s\n", (long long)r.n_params_unique,
                r.n_params_unique / 1e6,
                r.n_params != r.n_params_unique ? " (tied lm_head stored twice in the file)" : "");
    s += strfmt("tied embed    %s\n", c.tie_word_embeddings ? "yes" : "no");
    s += strfmt("tensors       %lld, %s stored; %s\n", (long long)r.n_tensors,
                bytes_str(static_cast<double>(r.file_bytes)).c_str(), types.c_str());
    s += strfmt("KV cache      %s%s, %lld bytes/token (%s)\n", r.kv_dtype.c_str(),
                r.kv_from_quantized ? " (runtime cache type; weights are quantized)" : "",
                (long long)r.kv_bytes_per_token,
                bytes_str(static_cast<double>(r.kv_bytes_per_token)).c_str());
    for (auto& [ctx, bytes] : r.kv_bytes_at)
        s += strfmt("  at %6lldK ctx %s (batch 1)\n", (long long)(ctx / 1024),
                    bytes_str(static_cast<double>(bytes)).c_str());
    return s;
}

}  // namespace palu::pipeline
