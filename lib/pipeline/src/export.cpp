// palu pipeline: the export stage (export.h).
#include "palu/pipeline/export.h"

#include <chrono>
#include <set>

#include "palu/core/error.h"
#include "palu/core/format.h"
#include "palu/core/log.h"
#include "palu/core/sysinfo.h"
#include "palu/formats/hf_config.h"
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
    if (s == "mla") return ExportTarget::Mla;
    if (s == "gguf") return ExportTarget::Gguf;
    PALU_THROW(UsageError, "export: --to '%s': expected dense, mla or gguf", s.c_str());
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
    PALU_CHECK(p.to != ExportTarget::Mla, UsageError,
               "export: --to mla is not implemented yet: expected dense or gguf");
    PALU_CHECK(!p.out_path.empty(), UsageError, "export: no output directory; hint: pass --out");
    auto src = formats::open_model(p.model_path);
    if (p.to == ExportTarget::Gguf) {
        export_gguf(*src, p.out_path, p.gguf);
        return;
    }
    export_dense(*src, p.out_path, p.dense);
}

}  // namespace palu::pipeline
