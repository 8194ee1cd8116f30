// palu example: the low-rank decomposition of one k_proj, by hand.
//
// Input  a model (HF directory, .safetensors, .gguf or llama2.c .bin) and a layer index.
// Output the relative reconstruction error ‖W − U·VT‖²_F / ‖W‖²_F of the layer's k_proj at three
//        ranks per head group (plain SVD, no calibration data: the whitened SVD of
//        palu/compress/decompose.h would take the Cholesky factor of the input Gram as well).
//        Exits 1 if the error does not decrease with the rank (truncated SVD: it must).
//
// Usage: palu_example_decompose_layer MODEL [LAYER]
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "palu/compress/decompose.h"
#include "palu/core/error.h"
#include "palu/formats/model_loader.h"

int main(int argc, char** argv) {
    if (argc != 2 && argc != 3) {
        std::fprintf(stderr, "usage: %s MODEL [LAYER]\n", argv[0]);
        return 2;
    }
    const long long layer = argc == 3 ? std::atoll(argv[2]) : 0;
    try {
        // Lazy: the file is mapped, and only the tensor asked for is converted to f32.
        auto model = palu::formats::open_model(argv[1]);
        const palu::ModelConfig& c = model->config();
        const std::string name =
            "model.layers." + std::to_string(layer) + ".self_attn.k_proj.weight";
        const palu::Tensor w = model->load_f32(name);  // [n_kv_heads·d_head, d_model] row-major
        const palu::RowMatrixXf wm =
            Eigen::Map<const palu::RowMatrixXf>(w.data(), w.dim(0), w.dim(1));

        // Groups of up to 2 KV heads; ranks at 1/8, 1/4 and 1/2 of the group width s·d_head.
        const int64_t s = c.n_kv_heads % 2 == 0 ? 2 : 1;
        const int64_t width = s * c.d_head, n_groups = c.n_kv_heads / s;
        double previous = 2.0;  // errors are relative, at most 1
        for (int64_t rank : {width / 8, width / 4, width / 2}) {
            const std::vector<int64_t> ranks(static_cast<size_t>(n_groups), rank);
            const palu::compress::LowRankKV kv = palu::compress::decompose_projection(
                wm, /*bias=*/{}, ranks, c.d_head, s, palu::compress::DecomposeMethod::Plain,
                /*whitening=*/nullptr, name);
            // VT [Σ r_g, d_model] and U_g [s·d_head, r_g]: the error of the whole projection.
            const double err = (kv.reconstruct() - wm).squaredNorm() / wm.squaredNorm();
            std::printf("layer %lld k_proj group size %lld rank %lld: relative error %.6f\n", layer,
                        static_cast<long long>(s), static_cast<long long>(rank), err);
            if (!(err < previous)) {
                std::fprintf(stderr, "E error did not decrease with the rank\n");
                return 1;
            }
            previous = err;
        }
        std::printf("the error decreases with the rank\n");
    } catch (const palu::Error& e) {
        std::fprintf(stderr, "E %s\n", e.what());
        return e.exit_code();
    }
    return 0;
}
