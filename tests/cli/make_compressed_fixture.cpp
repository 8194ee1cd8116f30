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
#include "palu/pipeline/checkpoint.h"

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
                const std::string p = palu::strfmt("model.layers.%lld.self_attn.%c_proj",
                                                   static_cast<long long>(l), which);
                const palu::Tensor w = src->load_f32(p + ".weight");  // [n_kv·d_head, d_model]
                palu::RowMatrixXf wm =
                    Eigen::Map<const palu::RowMatrixXf>(w.data(), w.dim(0), w.dim(1));
                palu::Tensor b;
                if (src->has_tensor(p + ".bias")) b = src->load_f32(p + ".bias");
                auto kv = palu::compress::decompose_projection(
                    wm, b.span(), ranks, c.d_head, s, palu::compress::DecomposeMethod::Plain,
                    nullptr, p);
                (which == 'k' ? layers[l].k : layers[l].v) = std::move(kv);
            }
        }
        palu::pipeline::write_compressed_checkpoint(*src, layers, {{"group_size", s}}, argv[2]);
    } catch (const palu::Error& e) {
        std::fprintf(stderr, "E %s\n", e.what());
        return e.exit_code();
    }
    return 0;
}
