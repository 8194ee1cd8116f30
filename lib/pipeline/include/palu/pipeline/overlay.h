// palu pipeline: a dense WeightSource seen as its compressed checkpoint, in memory — for
// evaluating the compression without writing (palu-compress --eval, palu-sweep).
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

#include "palu/core/dtype.h"
#include "palu/core/weight_source.h"
#include "palu/formats/palu_checkpoint.h"
#include "palu/pipeline/decompose.h"

namespace palu::pipeline {

/// `base` with k/v_proj weights and biases replaced by the palu factor tensors of `layers`
/// (formats/palu_checkpoint.h names), every other tensor from `base`. Factor values are rounded
/// to `storage` (F32, F16, BF16) exactly as write_palu_checkpoint stores them, so a model
/// evaluated here equals the checkpoint written with that factor dtype. config_json_text() is the
/// config.json that checkpoint would have (palu block `block`, head_wise_ranks), so
/// formats::read_palu_checkpoint reads it. `base` and `layers` must outlive it.
class CompressedOverlay final : public WeightSource {
   public:
    CompressedOverlay(const WeightSource& base, const std::vector<CompressedLayer>& layers,
                      const formats::PaluBlock& block = {}, DType storage = DType::F32);
    const ModelConfig& config() const override { return base_->config(); }
    std::string format_name() const override { return base_->format_name() + "+palu"; }
    std::string path() const override { return base_->path() + " (compressed in memory)"; }
    std::vector<StoredTensorInfo> tensors() const override;
    bool has_tensor(const std::string& name) const override;
    Tensor load_f32(const std::string& name) const override;
    std::filesystem::path source_dir() const override { return base_->source_dir(); }
    std::string config_json_text() const override { return config_text_; }
    std::optional<RawTensorBytes> raw_tensor(const std::string& name) const override;

   private:
    const WeightSource* base_;
    const std::vector<CompressedLayer>* layers_;
    DType storage_;
    std::string config_text_;
    // name → (layer, k or v, group (-1: VT), bias)
    struct Ref {
        int64_t layer;
        formats::KvProj which;
        int64_t group;
        bool bias;
    };
    std::map<std::string, Ref> refs_;
    std::set<std::string> hidden_;
};

}  // namespace palu::pipeline
