// palu formats: model and file fingerprints (see fingerprint.h for what is hashed and why).
#include "palu/formats/fingerprint.h"

#include <algorithm>
#include <string_view>

#include "palu/core/format.h"
#include "palu/core/sha256.h"

namespace palu::formats {

namespace {

bool is_kv_projection(const std::string& name) {
    return name.find(".self_attn.k_proj.") != std::string::npos ||
           name.find(".self_attn.v_proj.") != std::string::npos;
}

}  // namespace

std::string fingerprint_model(const WeightSource& model) {
    const ModelConfig& c = model.config();
    std::string text = "palu-model-fingerprint-v1\n";
    text += strfmt("architecture=%s\n", c.architecture.c_str());
    text += strfmt(
        "d_model=%lld n_layers=%lld n_heads=%lld n_kv_heads=%lld d_head=%lld d_ff=%lld "
        "n_vocab=%lld max_position_embeddings=%lld\n",
        (long long)c.d_model, (long long)c.n_layers, (long long)c.n_heads, (long long)c.n_kv_heads,
        (long long)c.d_head, (long long)c.d_ff, (long long)c.n_vocab,
        (long long)c.max_position_embeddings);
    text += strfmt("rms_norm_eps=%.17g rope_theta=%.17g\n", c.rms_norm_eps, c.rope_theta);
    text += strfmt("rope_scaling=%s factor=%.17g low=%.17g high=%.17g orig=%lld\n",
                   c.rope_scaling.type.c_str(), c.rope_scaling.factor,
                   c.rope_scaling.low_freq_factor, c.rope_scaling.high_freq_factor,
                   (long long)c.rope_scaling.original_max_position_embeddings);
    text +=
        strfmt("tie=%d qkv_bias=%d o_bias=%d mlp_bias=%d bos=%lld eos=", int(c.tie_word_embeddings),
               int(c.qkv_bias), int(c.o_bias), int(c.mlp_bias), (long long)c.bos_token_id);
    for (int64_t e : c.eos_token_ids) text += strfmt("%lld,", (long long)e);
    text += "\n";

    auto infos = model.tensors();
    std::sort(infos.begin(), infos.end(),
              [](const auto& a, const auto& b) { return a.name < b.name; });
    for (const auto& t : infos)
        text += strfmt("tensor %s %s %s\n", t.name.c_str(), shape_str(t.shape).c_str(),
                       t.storage_type.c_str());
    for (const auto& t : infos) {
        if (!is_kv_projection(t.name) && t.shape.size() != 1) continue;
        Tensor v = model.load_f32(t.name);
        // f32 values as little-endian bytes (the only byte order palu runs on).
        Sha256 h;
        h.update(v.data(), size_t(v.numel()) * sizeof(float));
        text += strfmt("data %s %s\n", t.name.c_str(), h.finish_hex().c_str());
    }
    return sha256_hex(text);
}

std::string fingerprint_file(const std::filesystem::path& path) {
    return sha256_file_hex(path);
}

}  // namespace palu::formats
