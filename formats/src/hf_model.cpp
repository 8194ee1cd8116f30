// palu formats: open_hf_model — HF directory / .safetensors -> WeightSource (HF names and layout,
// the names every other reader maps to). Shapes are checked against config.json up front so that a
// mismatched checkpoint fails at open time, naming the tensor and the config keys involved.
#include "palu/formats/hf_model.h"

#include <algorithm>

#include "palu/core/error.h"
#include "palu/core/format.h"
#include "palu/formats/model_loader.h"

namespace palu::formats {

namespace fs = std::filesystem;

std::vector<ExpectedTensor> expected_hf_tensors(const ModelConfig& c, bool with_lm_head) {
    using ll = long long;
    std::vector<ExpectedTensor> out;
    const std::string hd = strfmt("hidden_size=%lld", (ll)c.d_model);
    const std::string q = strfmt("num_attention_heads=%lld, head_dim=%lld, hidden_size=%lld",
                                 (ll)c.n_heads, (ll)c.d_head, (ll)c.d_model);
    const std::string kv = strfmt("num_key_value_heads=%lld, head_dim=%lld, hidden_size=%lld",
                                  (ll)c.n_kv_heads, (ll)c.d_head, (ll)c.d_model);
    const std::string ff =
        strfmt("intermediate_size=%lld, hidden_size=%lld", (ll)c.d_ff, (ll)c.d_model);
    const std::string voc =
        strfmt("vocab_size=%lld, hidden_size=%lld", (ll)c.n_vocab, (ll)c.d_model);
    auto add = [&](std::string name, std::vector<int64_t> shape, const std::string& why) {
        out.push_back(ExpectedTensor{std::move(name), std::move(shape), why});
    };
    auto add_attention = [&](const std::string& p) {
        add(p + "self_attn.q_proj.weight", {c.d_q(), c.d_model}, q);
        add(p + "self_attn.k_proj.weight", {c.d_kv(), c.d_model}, kv);
        add(p + "self_attn.v_proj.weight", {c.d_kv(), c.d_model}, kv);
        add(p + "self_attn.o_proj.weight", {c.d_model, c.d_q()}, q);
    };
    add("model.embed_tokens.weight", {c.n_vocab, c.d_model}, voc);
    add("model.norm.weight", {c.d_model}, hd);
    if (with_lm_head) add("lm_head.weight", {c.n_vocab, c.d_model}, voc);
    for (int64_t l = 0; l < c.n_layers; ++l) {
        const std::string p = strfmt("model.layers.%lld.", (ll)l);
        add(p + "input_layernorm.weight", {c.d_model}, hd);
        add(p + "post_attention_layernorm.weight", {c.d_model}, hd);
        if (c.is_mla()) {
            const MlaConfig& m = *c.mla;
            const std::string mq = strfmt(
                "num_attention_heads=%lld, qk_nope_head_dim=%lld, qk_rope_head_dim=%lld, "
                "kv_lora_rank=%lld, v_head_dim=%lld, hidden_size=%lld",
                (ll)c.n_heads, (ll)m.qk_nope_head_dim, (ll)m.qk_rope_head_dim, (ll)m.kv_lora_rank,
                (ll)m.v_head_dim, (ll)c.d_model);
            add(p + "self_attn.q_proj.weight", {c.d_q(), c.d_model}, mq);
            add(p + "self_attn.kv_a_proj_with_mqa.weight",
                {m.kv_lora_rank + m.qk_rope_head_dim, c.d_model}, mq);
            add(p + "self_attn.kv_a_layernorm.weight", {m.kv_lora_rank}, mq);
            add(p + "self_attn.kv_b_proj.weight",
                {c.n_heads * (m.qk_nope_head_dim + m.v_head_dim), m.kv_lora_rank}, mq);
            add(p + "self_attn.o_proj.weight", {c.d_model, c.n_heads * m.v_head_dim}, mq);
        } else {
            add_attention(p);
        }
        if (c.qkv_bias) {
            add(p + "self_attn.q_proj.bias", {c.d_q()}, q);
            add(p + "self_attn.k_proj.bias", {c.d_kv()}, kv);
            add(p + "self_attn.v_proj.bias", {c.d_kv()}, kv);
        }
        if (c.o_bias) add(p + "self_attn.o_proj.bias", {c.d_model}, hd);
        add(p + "mlp.gate_proj.weight", {c.d_ff, c.d_model}, ff);
        add(p + "mlp.up_proj.weight", {c.d_ff, c.d_model}, ff);
        add(p + "mlp.down_proj.weight", {c.d_model, c.d_ff}, ff);
        if (c.mlp_bias) {
            add(p + "mlp.gate_proj.bias", {c.d_ff}, ff);
            add(p + "mlp.up_proj.bias", {c.d_ff}, ff);
            add(p + "mlp.down_proj.bias", {c.d_model}, hd);
        }
    }
    std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
    return out;
}

namespace {

// k_proj / v_proj of a compressed palu checkpoint are stored as VT/U factors instead.
bool replaced_by_palu(const std::string& name) {
    for (const char* s : {".self_attn.k_proj.weight", ".self_attn.v_proj.weight",
                          ".self_attn.k_proj.bias", ".self_attn.v_proj.bias"}) {
        std::string_view suffix(s);
        if (name.size() >= suffix.size() &&
            name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0)
            return true;
    }
    return false;
}

}  // namespace

HfModel::HfModel(std::string path, fs::path config_path, HfConfig cfg, SafetensorsCheckpoint ckpt)
    : path_(std::move(path)),
      config_path_(std::move(config_path)),
      cfg_(std::move(cfg)),
      ckpt_(std::move(ckpt)) {}

std::unique_ptr<HfModel> HfModel::open(const fs::path& dir_or_file) {
    std::error_code ec;
    PALU_CHECK(fs::exists(dir_or_file, ec), IoError, "formats: %s: no such file or directory",
               dir_or_file.string().c_str());
    fs::path dir = fs::is_directory(dir_or_file) ? dir_or_file : dir_or_file.parent_path();
    if (dir.empty()) dir = ".";
    fs::path config_path = dir / "config.json";
    PALU_CHECK(
        fs::exists(config_path), IoError,
        "formats: %s: no config.json beside the weights: expected %s; hint: copy the model's "
        "config.json next to the .safetensors",
        dir_or_file.string().c_str(), config_path.string().c_str());
    HfConfig cfg = read_hf_config(config_path);
    // One shard of a sharded checkpoint stands for the whole checkpoint: open it via its index.
    fs::path weights = dir_or_file;
    const std::string fname = dir_or_file.filename().string();
    if (!fs::is_directory(dir_or_file) && fname.find("-of-") != std::string::npos &&
        fs::exists(dir / "model.safetensors.index.json"))
        weights = dir / "model.safetensors.index.json";
    SafetensorsCheckpoint ckpt = SafetensorsCheckpoint::open(weights);

    const ModelConfig& c = cfg.model;
    for (const auto& e : expected_hf_tensors(c, !c.tie_word_embeddings)) {
        const auto* t = ckpt.find(e.name);
        if (!t) {
            if (cfg.palu_compressed && replaced_by_palu(e.name)) continue;
            PALU_THROW(FormatError,
                       "formats: %s: tensor '%s' is missing: expected shape %s (config.json: %s) "
                       "(MissingTensor)",
                       dir_or_file.string().c_str(), e.name.c_str(), shape_str(e.shape).c_str(),
                       e.because.c_str());
        }
        PALU_CHECK(
            t->info->shape == e.shape, ShapeError,
            "formats: %s: tensor '%s' has wrong shape; expected %s, got %s (config.json: %s)",
            dir_or_file.string().c_str(), e.name.c_str(), shape_str(e.shape).c_str(),
            shape_str(t->info->shape).c_str(), e.because.c_str());
    }
    if (c.tie_word_embeddings) {
        if (const auto* t = ckpt.find("lm_head.weight")) {
            std::vector<int64_t> want{c.n_vocab, c.d_model};
            PALU_CHECK(t->info->shape == want, ShapeError,
                       "formats: %s: tensor 'lm_head.weight' has wrong shape; expected %s, got %s "
                       "(config.json: vocab_size=%lld, hidden_size=%lld)",
                       dir_or_file.string().c_str(), shape_str(want).c_str(),
                       shape_str(t->info->shape).c_str(), static_cast<long long>(c.n_vocab),
                       static_cast<long long>(c.d_model));
        }
    }
    return std::unique_ptr<HfModel>(
        new HfModel(dir_or_file.string(), config_path, std::move(cfg), std::move(ckpt)));
}

std::vector<StoredTensorInfo> HfModel::tensors() const {
    std::vector<StoredTensorInfo> out;
    out.reserve(ckpt_.tensors().size());
    for (const auto& e : ckpt_.tensors())
        out.push_back(StoredTensorInfo{e.info->name, e.info->shape, dtype_name(e.info->dtype),
                                       e.info->n_bytes()});
    return out;
}

bool HfModel::has_tensor(const std::string& name) const {
    return ckpt_.find(name) != nullptr;
}

Tensor HfModel::load_f32(const std::string& name) const {
    return ckpt_.load_f32(name);
}

std::optional<RawTensorBytes> HfModel::raw_tensor(const std::string& name) const {
    const auto* e = ckpt_.find(name);
    if (e == nullptr) return std::nullopt;
    return RawTensorBytes{e->info->dtype, e->info->shape, e->file->bytes(*e->info)};
}

std::unique_ptr<WeightSource> open_hf_model(const fs::path& dir_or_file) {
    return HfModel::open(dir_or_file);
}

}  // namespace palu::formats
