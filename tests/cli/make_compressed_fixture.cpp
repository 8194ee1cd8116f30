// palu CLI tests: writes a compressed checkpoint of a dense model (Plain-SVD factors, equal ranks)
// so that palu-export's tests have an input before palu-compress exists.
// Usage: palu_test_make_compressed MODEL OUT_DIR GROUP_SIZE RANK
#include <cstdio>
#include <cstdlib>
#include <string>

#include "palu/compress/decompose.h"
#include "palu/core/error.h"
#include "palu/core/format.h"
#include "palu/formats/model_loader.h"
#include "palu/formats/palu_checkpoint.h"
#include "palu/pipeline/write.h"

int main(int argc, char** argv) {
    if (argc != 5) {
        std::fprintf(stderr, "usage: %s MODEL OUT_DIR GROUP_SIZE RANK\n", argv[0]);
        return 2;
    }
    try {
        auto src = palu::formats::open_model(argv[1]);
        const palu::ModelConfig& c = src->config();
        const int64_t s = std::atoll(argv[3]);
        const int64_t rank = std::atoll(argv[4]);
        PALU_CHECK(s > 0 && c.n_kv_heads % s == 0, palu::UsageError, "bad group size %lld",
                   static_cast<long long>(s));
        const std::vector<int64_t> ranks(static_cast<size_t>(c.n_kv_heads / s), rank);
        std::vector<palu::pipeline::CompressedLayer> layers(static_cast<size_t>(c.n_layers));
        for (int64_t l = 0; l < c.n_layers; ++l) {
            for (char which : {'k', 'v'}) {
                const auto proj =
                    which == 'k' ? palu::formats::KvProj::K : palu::formats::KvProj::V;
                const std::string p = palu::formats::kv_proj_prefix(l, proj);
                const palu::Tensor w = src->load_f32(palu::formats::kv_dense_weight_name(l, proj));
                palu::RowMatrixXf wm =
                    Eigen::Map<const palu::RowMatrixXf>(w.data(), w.dim(0), w.dim(1));
                palu::Tensor b;
                const std::string bias = palu::formats::kv_dense_bias_name(l, proj);
                if (src->has_tensor(bias)) b = src->load_f32(bias);
                auto kv = palu::compress::decompose_projection(
                    wm, b.span(), ranks, c.d_head, s, palu::compress::DecomposeMethod::Plain,
                    nullptr, p);
                (which == 'k' ? layers[l].k : layers[l].v) = std::move(kv);
            }
        }
        palu::formats::PaluBlock block;
        block.group_size = s;
        block.rank_search.method = "fixed";
        block.decompose.method = "plain";
        palu::pipeline::write_compressed_checkpoint(*src, layers, block, argv[2]);
    } catch (const palu::Error& e) {
        std::fprintf(stderr, "E %s\n", e.what());
        return e.exit_code();
    }
    return 0;
}
