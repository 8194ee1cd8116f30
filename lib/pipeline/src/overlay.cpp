// palu pipeline: CompressedOverlay (overlay.h).
#include "palu/pipeline/overlay.h"

#include <algorithm>

#include "palu/core/error.h"
#include "palu/formats/hf_config.h"

namespace palu::pipeline {

using formats::KvProj;

CompressedOverlay::CompressedOverlay(const WeightSource& base,
                                     const std::vector<CompressedLayer>& layers,
                                     const formats::PaluBlock& block, DType storage)
    : base_(&base), layers_(&layers), storage_(storage) {
    const ModelConfig& c = base.config();
    PALU_CHECK(static_cast<int64_t>(layers.size()) == c.n_layers, ShapeError,
               "compress: %zu compressed layers for a model of %lld layers", layers.size(),
               static_cast<long long>(c.n_layers));
    PALU_CHECK(storage == DType::F32 || storage == DType::F16 || storage == DType::BF16, UsageError,
               "compress: factor storage %s: expected F32, F16 or BF16", dtype_name(storage));
    nlohmann::json head_wise = nlohmann::json::object();
    for (int64_t l = 0; l < c.n_layers; ++l)
        for (const KvProj which : {KvProj::K, KvProj::V}) {
            hidden_.insert(formats::kv_dense_weight_name(l, which));
            hidden_.insert(formats::kv_dense_bias_name(l, which));
            const CompressedLayer& cl = layers[static_cast<size_t>(l)];
            const compress::LowRankKV& kv = which == KvProj::K ? cl.k : cl.v;
            head_wise[formats::kv_proj_prefix(l, which)] = kv.ranks;
            refs_[formats::kv_vt_name(l, which)] = Ref{l, which, -1, false};
            for (int64_t g = 0; g < kv.n_groups(); ++g) {
                refs_[formats::kv_u_name(l, which, g)] = Ref{l, which, g, false};
                if (!kv.bias.empty() && !kv.bias[static_cast<size_t>(g)].empty())
                    refs_[formats::kv_u_bias_name(l, which, g)] = Ref{l, which, g, true};
            }
        }
    const std::string own = base.config_json_text();
    nlohmann::json cfg =
        own.empty() ? formats::hf_config_json(c, "float32") : nlohmann::json::parse(own);
    const formats::HfArchNames names = formats::hf_arch_names(c.architecture);
    cfg["model_type"] = names.palu_type;
    cfg["architectures"] = {names.palu_class};
    cfg["head_wise_ranks"] = std::move(head_wise);
    cfg["palu"] = formats::to_json(block);
    config_text_ = cfg.dump();
}

std::vector<StoredTensorInfo> CompressedOverlay::tensors() const {
    std::vector<StoredTensorInfo> out;
    for (auto& t : base_->tensors())
        if (!hidden_.count(t.name)) out.push_back(std::move(t));
    for (const auto& [name, ref] : refs_) {
        const Tensor t = load_f32(name);
        out.push_back({name, t.shape(), dtype_name(storage_),
                       static_cast<uint64_t>(t.numel()) * dtype_size(storage_)});
    }
    std::sort(out.begin(), out.end(),
              [](const StoredTensorInfo& a, const StoredTensorInfo& b) { return a.name < b.name; });
    return out;
}

bool CompressedOverlay::has_tensor(const std::string& name) const {
    if (refs_.count(name)) return true;
    return !hidden_.count(name) && base_->has_tensor(name);
}

std::optional<RawTensorBytes> CompressedOverlay::raw_tensor(const std::string& name) const {
    if (refs_.count(name) || hidden_.count(name)) return std::nullopt;
    return base_->raw_tensor(name);
}

Tensor CompressedOverlay::load_f32(const std::string& name) const {
    const auto it = refs_.find(name);
    if (it == refs_.end()) {
        PALU_CHECK(!hidden_.count(name), FormatError,
                   "compress: tensor '%s' is replaced by low-rank factors", name.c_str());
        return base_->load_f32(name);
    }
    const Ref& r = it->second;
    const CompressedLayer& cl = (*layers_)[static_cast<size_t>(r.layer)];
    const compress::LowRankKV& kv = r.which == KvProj::K ? cl.k : cl.v;
    Tensor t;
    if (r.group < 0) {
        t = Tensor({kv.vt.rows(), kv.vt.cols()});
        std::copy(kv.vt.data(), kv.vt.data() + kv.vt.size(), t.data());
    } else if (r.bias) {
        const auto& b = kv.bias[static_cast<size_t>(r.group)];
        t = Tensor({static_cast<int64_t>(b.size())}, b);
    } else {
        const RowMatrixXf& u = kv.u[static_cast<size_t>(r.group)];
        t = Tensor({u.rows(), u.cols()});
        std::copy(u.data(), u.data() + u.size(), t.data());
    }
    round_to_storage(t.data(), static_cast<size_t>(t.numel()), storage_);
    return t;
}

}  // namespace palu::pipeline
