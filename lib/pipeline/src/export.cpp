// palu pipeline: the export stage (export.h).
#include "palu/pipeline/export.h"

#include <chrono>
#include <set>

#include "palu/core/error.h"
#include "palu/core/format.h"
#include "palu/core/log.h"
#include "palu/core/sysinfo.h"
#include "palu/formats/hf_config.h"
#include "palu/formats/hf_model.h"
#include "palu/formats/model_loader.h"
#include "palu/formats/palu_checkpoint.h"
#include "palu/formats/safetensors.h"
#include "palu/formats/staging.h"
#include "palu/linalg/matrix.h"
#include "palu/pipeline/run.h"

namespace palu::pipeline {

namespace fs = std::filesystem;
using formats::KvProj;
using nlohmann::json;
using ll = long long;

ExportTarget parse_export_target(const std::string& s) {
    if (s == "dense") return ExportTarget::Dense;
    if (s == "deepseek" || s == "mla") return ExportTarget::Deepseek;
    if (s == "gguf") return ExportTarget::Gguf;
    PALU_THROW(UsageError, "export: --to '%s': expected dense, deepseek or gguf", s.c_str());
}

DeepseekRuntime parse_deepseek_runtime(const std::string& s) {
    if (s == "any") return DeepseekRuntime::Any;
    if (s == "vllm") return DeepseekRuntime::Vllm;
    PALU_THROW(UsageError, "export: --target '%s': expected any or vllm", s.c_str());
}

bool vllm_accepts_mla_geometry(const MlaConfig& m) {
    for (int64_t w : kVllmMlaHeadSizes)
        if (m.kv_lora_rank + m.qk_rope_head_dim == w) return true;
    return false;
}

namespace {

Tensor load_shaped(const WeightSource& src, const std::string& name,
                   const std::vector<int64_t>& want, const char* because) {
    Tensor t = src.load_f32(name);
    PALU_CHECK(t.shape() == want, ShapeError,
               "export: %s: tensor '%s' has wrong shape; expected %s, got %s (%s)",
               src.path().c_str(), name.c_str(), shape_str(want).c_str(),
               shape_str(t.shape()).c_str(), because);
    return t;
}

// W [n_kv·d_head, d_model] = concat_g U_g·VT_g (f64 products, rounded once) and the bias.
void add_dense_projection(formats::TensorWriteList& out, const WeightSource& src, int64_t l,
                          KvProj which, const std::vector<int64_t>& ranks, DType dt) {
    const ModelConfig& c = src.config();
    int64_t sum_r = 0;
    for (int64_t r : ranks) sum_r += r;
    const int64_t n_groups = static_cast<int64_t>(ranks.size());
    const int64_t width = c.n_kv_heads / n_groups * c.d_head;
    const Tensor vt = load_shaped(src, formats::kv_vt_name(l, which), {sum_r, c.d_model},
                                  "head_wise_ranks, hidden_size");
    Eigen::Map<const RowMatrixXf> vt_m(vt.data(), sum_r, c.d_model);
    RowMatrixXf w(c.d_kv(), c.d_model);
    std::vector<float> bias;
    int64_t off = 0;
    for (int64_t g = 0; g < n_groups; ++g) {
        const int64_t r = ranks[static_cast<size_t>(g)];
        const Tensor u = load_shaped(src, formats::kv_u_name(l, which, g), {width, r},
                                     "head_wise_ranks, num_key_value_heads, head_dim");
        Eigen::Map<const RowMatrixXf> u_m(u.data(), width, r);
        const RowMatrixXd prod = u_m.cast<double>() * vt_m.middleRows(off, r).cast<double>();
        w.middleRows(g * width, width) = prod.cast<float>();
        off += r;
        const std::string bn = formats::kv_u_bias_name(l, which, g);
        const bool has_bias = src.has_tensor(bn);
        PALU_CHECK(has_bias == c.qkv_bias, FormatError,
                   "export: %s: tensor '%s': expected %s (config: q/k/v bias %s), got %s",
                   src.path().c_str(), bn.c_str(), c.qkv_bias ? "present" : "absent",
                   c.qkv_bias ? "on" : "off", has_bias ? "one" : "none");
        if (has_bias) {
            const Tensor b = load_shaped(src, bn, {width}, "num_key_value_heads, head_dim");
            bias.insert(bias.end(), b.vec().begin(), b.vec().end());
        }
    }
    out.add_f32(formats::kv_dense_weight_name(l, which), dt, {c.d_kv(), c.d_model}, w.data(),
                static_cast<size_t>(w.size()), "export");
    if (!bias.empty())
        out.add_f32(formats::kv_dense_bias_name(l, which), dt, {c.d_kv()}, bias.data(), bias.size(),
                    "export");
}

// A source tensor's storage when it is F16 or BF16, else F32 (f32, GGUF blocks, in memory).
DType float_storage_of(const WeightSource& src, const std::string& name) {
    const auto raw = src.raw_tensor(name);
    if (raw && (raw->dtype == DType::F16 || raw->dtype == DType::BF16)) return raw->dtype;
    return DType::F32;
}

// Whether the export ties lm_head to the embeddings. palu's engine uses a stored lm_head even when
// the config says tied, transformers ties it to embed_tokens: a tied source whose stored lm_head
// differs from the embeddings is exported untied, with that lm_head, so both run what palu ran.
bool export_ties_embeddings(const WeightSource& src) {
    const ModelConfig& c = src.config();
    if (!c.tie_word_embeddings || !src.has_tensor("lm_head.weight")) return c.tie_word_embeddings;
    return src.load_f32("lm_head.weight").vec() == src.load_f32("model.embed_tokens.weight").vec();
}

const char* runtime_name(DeepseekRuntime r) {
    return r == DeepseekRuntime::Vllm ? "vllm" : "any";
}

std::string vllm_sizes_str() {
    std::string out;
    for (int64_t w : kVllmMlaHeadSizes) out += (out.empty() ? "" : " or ") + std::to_string(w);
    return out;
}

}  // namespace

void export_dense(const WeightSource& src, const fs::path& out_dir, const DenseExportOptions& o) {
    const auto t0 = std::chrono::steady_clock::now();
    PALU_CHECK(formats::is_palu_checkpoint(src), UsageError,
               "export: %s is not a compressed palu checkpoint: expected tensor '%s', got none; "
               "hint: export the output of palu-compress",
               src.path().c_str(), formats::kv_vt_name(0, KvProj::K).c_str());
    PALU_CHECK(o.dtype == DType::F32 || o.dtype == DType::F16 || o.dtype == DType::BF16, UsageError,
               "export: --dtype %s is not supported: expected f32, f16 or bf16",
               dtype_name(o.dtype));
    const formats::PaluCheckpointInfo info = formats::read_palu_checkpoint(src);
    const ModelConfig& c = src.config();
    const formats::HfArchNames names = formats::hf_arch_names(c.architecture);

    formats::StagingDir stage(out_dir, o.overwrite, src.source_dir(), "export");
    formats::TensorWriteList tensors;
    size_t n_copied = 0;
    for (const auto& t : src.tensors()) {
        if (formats::is_kv_module_tensor(t.name)) continue;
        const auto raw = src.raw_tensor(t.name);
        PALU_CHECK(raw.has_value(), UsageError,
                   "export: %s: tensor '%s' (%s) cannot be copied: expected a safetensors "
                   "checkpoint",
                   src.path().c_str(), t.name.c_str(), t.storage_type.c_str());
        tensors.add_raw(t.name, raw->dtype, raw->shape, raw->bytes);
        ++n_copied;
    }
    for (int64_t l = 0; l < c.n_layers; ++l) {
        add_dense_projection(tensors, src, l, KvProj::K, info.k_ranks[static_cast<size_t>(l)],
                             o.dtype);
        add_dense_projection(tensors, src, l, KvProj::V, info.v_ranks[static_cast<size_t>(l)],
                             o.dtype);
    }
    const size_t n_tensors = tensors.size();
    formats::write_safetensors(stage.path(), tensors.take(), {{"format", "pt"}});

    json cfg = json::parse(src.config_json_text());
    cfg.erase("head_wise_ranks");
    cfg["model_type"] = c.architecture;
    cfg["architectures"] = {names.base_class};
    formats::PaluBlock block = info.block;
    block.exported = "dense";
    block.exported_dtype = formats::torch_dtype_name(o.dtype);
    cfg["palu"] = formats::to_json(block);
    formats::write_text_file(stage.path() / "config.json", formats::palu_config_text(cfg),
                             "export");

    const auto copied = formats::copy_tokenizer_files(src, stage.path(), "export");
    if (copied.empty())
        PALU_LOG_WARN("export", "%s has no tokenizer files; the export has none",
                      src.source_dir().string().c_str());
    stage.commit();
    PALU_LOG_INFO("export",
                  "wrote %s: dense %s k/v_proj for %lld layers, %zu tensors (%zu copied), %zu "
                  "tokenizer files; %.2f s, peak RSS %s",
                  stage.final_path().string().c_str(), dtype_name(o.dtype), (ll)c.n_layers,
                  n_tensors, n_copied, copied.size(), seconds_since(t0),
                  bytes_str(static_cast<double>(peak_rss_bytes())).c_str());
}

void run_export(const ExportParams& p) {
    PALU_CHECK(p.to == ExportTarget::Deepseek || p.deepseek.target == DeepseekRuntime::Any,
               UsageError, "export: --target applies to --to deepseek only");
    PALU_CHECK(!p.out_path.empty(), UsageError, "export: no output path; hint: pass --out");
    auto src = formats::open_model(p.model_path);
    if (p.to == ExportTarget::Deepseek)
        export_deepseek(*src, p.out_path, p.deepseek);
    else if (p.to == ExportTarget::Gguf)
        export_gguf(*src, p.out_path, p.gguf);
    else
        export_dense(*src, p.out_path, p.dense);
}

// ---- --to deepseek ------------------------------------------------------------------------------

json deepseek_export_config(const WeightSource& src, DType dt) {
    const ModelConfig& c = src.config();
    PALU_ASSERT(c.is_mla());
    json cfg = formats::hf_config_json(c, formats::torch_dtype_name(dt));
    // The dense MoE fields, rope_parameters and dtype come from hf_config_json; the embeddings
    // are tied only when the stored lm_head equals them (export_ties_embeddings).
    cfg["tie_word_embeddings"] = export_ties_embeddings(src);

    const json src_cfg =
        src.config_json_text().empty() ? json::object() : json::parse(src.config_json_text());
    json palu = src_cfg.contains("palu") && src_cfg["palu"].is_object()
                    ? src_cfg["palu"]
                    : json{{"format_version", formats::kPaluFormatVersion}, {"layout", "mla"}};
    palu["exported"] = "deepseek";
    palu["exported_dtype"] = formats::torch_dtype_name(dt);
    cfg["palu"] = palu;
    return cfg;
}

void export_deepseek(const WeightSource& src, const fs::path& out_dir,
                     const DeepseekExportOptions& o) {
    const auto t0 = std::chrono::steady_clock::now();
    const ModelConfig& c = src.config();
    if (!c.is_mla()) {
        const std::string what = formats::is_palu_checkpoint(src)
                                     ? "a palu-layout compressed checkpoint"
                                     : "a plain " + c.architecture + " model";
        PALU_THROW(UsageError,
                   "export: %s is %s, not an MLA checkpoint: --to deepseek needs an MLA "
                   "checkpoint; hint: make one with palu-compress --layout mla",
                   src.path().c_str(), what.c_str());
    }
    const MlaConfig& m = *c.mla;
    PALU_CHECK(m.rope_interleave, UsageError,
               "export: %s: rope_interleave is false: expected interleaved rope dims (what vLLM "
               "and SGLang assume for DeepSeek); hint: re-make the checkpoint with palu-compress "
               "--layout mla",
               src.path().c_str());
    const DType dt =
        o.dtype.value_or(float_storage_of(src, "model.layers.0.self_attn.q_proj.weight"));
    PALU_CHECK(dt == DType::F32 || dt == DType::F16 || dt == DType::BF16, UsageError,
               "export: --dtype %s is not supported: expected f32, f16 or bf16", dtype_name(dt));
    const int64_t width = m.kv_lora_rank + m.qk_rope_head_dim;
    if (!vllm_accepts_mla_geometry(m)) {
        PALU_CHECK(o.target != DeepseekRuntime::Vllm, UsageError,
                   "export: %s: --target vllm: kv_lora_rank %lld + qk_rope_head_dim %lld = %lld, "
                   "but vLLM's MLA kernels accept only %s; hint: make the checkpoint with "
                   "palu-compress --layout mla --kv-lora-rank %lld (or %lld), or drop --target",
                   src.path().c_str(), (ll)m.kv_lora_rank, (ll)m.qk_rope_head_dim, (ll)width,
                   vllm_sizes_str().c_str(), (ll)(kVllmMlaHeadSizes[0] - m.qk_rope_head_dim),
                   (ll)(kVllmMlaHeadSizes[1] - m.qk_rope_head_dim));
        PALU_LOG_INFO("export",
                      "note: kv_lora_rank %lld + qk_rope_head_dim %lld = %lld: transformers runs "
                      "it, vLLM's MLA kernels would refuse it (they accept %s)",
                      (ll)m.kv_lora_rank, (ll)m.qk_rope_head_dim, (ll)width,
                      vllm_sizes_str().c_str());
    }

    const bool tied = export_ties_embeddings(src);
    if (tied != c.tie_word_embeddings)
        PALU_LOG_INFO("export",
                      "note: %s is tied but stores an lm_head.weight that differs from the "
                      "embeddings (palu runs that lm_head): exported untied, with it",
                      src.path().c_str());
    const auto expected = formats::expected_hf_tensors(c, !tied);
    std::set<std::string> wanted;
    for (const auto& e : expected) wanted.insert(e.name);
    std::vector<std::string> dropped;
    for (const auto& t : src.tensors())
        if (!wanted.count(t.name)) dropped.push_back(t.name);

    formats::StagingDir stage(out_dir, o.overwrite, src.source_dir(), "export");
    formats::TensorWriteList tensors;
    size_t n_copied = 0;
    for (const auto& e : expected) {
        if (const auto raw = src.raw_tensor(e.name); raw && raw->dtype == dt) {
            tensors.add_raw(e.name, raw->dtype, raw->shape, raw->bytes);
            ++n_copied;
            continue;
        }
        const Tensor t = load_shaped(src, e.name, e.shape, e.because.c_str());
        tensors.add_f32(e.name, dt, t.shape(), t.data(), static_cast<size_t>(t.numel()), "export");
    }
    const size_t n_tensors = tensors.size();
    const uint64_t n_bytes = tensors.n_bytes();
    formats::write_safetensors(stage.path(), tensors.take(), {{"format", "pt"}});
    formats::write_text_file(stage.path() / "config.json",
                             formats::palu_config_text(deepseek_export_config(src, dt)), "export");
    const auto copied = formats::copy_tokenizer_files(src, stage.path(), "export");
    if (copied.empty())
        PALU_LOG_WARN("export", "%s has no tokenizer files; the export has none",
                      src.source_dir().string().c_str());
    if (!dropped.empty())
        PALU_LOG_WARN("export",
                      "%zu tensors of the source were left out (not DeepSeek-V3 tensors, or a "
                      "tied lm_head equal to the embeddings; first: '%s')",
                      dropped.size(), dropped.front().c_str());
    stage.commit();
    PALU_LOG_INFO("export",
                  "wrote %s: DeepSeek-V3 (MLA, kv_lora_rank %lld + rope %lld, target %s), %lld "
                  "layers, %zu %s tensors (%zu copied as stored), %s, %zu tokenizer files; %.2f s, "
                  "peak RSS %s",
                  stage.final_path().string().c_str(), (ll)m.kv_lora_rank, (ll)m.qk_rope_head_dim,
                  runtime_name(o.target), (ll)c.n_layers, n_tensors, dtype_name(dt), n_copied,
                  bytes_str(static_cast<double>(n_bytes)).c_str(), copied.size(), seconds_since(t0),
                  bytes_str(static_cast<double>(peak_rss_bytes())).c_str());
}

}  // namespace palu::pipeline
