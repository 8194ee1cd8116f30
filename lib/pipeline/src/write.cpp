// palu pipeline: the write stage (write.h).
#include "palu/pipeline/write.h"

namespace palu::pipeline {

namespace {

formats::PaluFactorsView view_of(const compress::LowRankKV& kv) {
    formats::PaluFactorsView v;
    v.ranks = kv.ranks;
    v.group_size = kv.group_size;
    v.d_model = kv.d_model;
    v.d_head = kv.d_head;
    v.vt = {kv.vt.data(), kv.vt.rows(), kv.vt.cols()};
    for (const auto& u : kv.u) v.u.push_back({u.data(), u.rows(), u.cols()});
    bool biased = false;
    for (const auto& b : kv.bias) biased = biased || !b.empty();
    if (biased)
        for (const auto& b : kv.bias) v.bias.emplace_back(b.data(), b.size());
    return v;
}

}  // namespace

std::vector<formats::PaluLayerView> factor_views(const std::vector<CompressedLayer>& layers) {
    std::vector<formats::PaluLayerView> out;
    out.reserve(layers.size());
    for (const auto& l : layers) out.push_back({view_of(l.k), view_of(l.v)});
    return out;
}

void write_compressed_checkpoint(const WeightSource& src,
                                 const std::vector<CompressedLayer>& layers,
                                 const formats::PaluBlock& block,
                                 const std::filesystem::path& out_dir,
                                 const formats::PaluWriteOptions& options) {
    formats::write_palu_checkpoint(src, factor_views(layers), block, out_dir, options);
}

}  // namespace palu::pipeline
