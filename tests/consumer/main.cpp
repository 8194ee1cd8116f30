// palu package check: a program built against the *installed* headers and libraries
// (find_package(palu) + palu::pipeline). With a model path it opens the model and prints its
// shape; without one it builds a uniform RankPlan for a small K/V shape and prints it as the
// ranks.json the CLI would write (a CUDA build also uses the kernels' header).
// tests/consumer/run.cmake checks the output.
#include <cstdio>

#include "palu/compress/rank_search.h"
#include "palu/core/error.h"
#include "palu/formats/model_loader.h"
#include "palu/pipeline/compress.h"
#ifdef PALU_CONSUMER_CUDA
#include "palu/kernels/latent_attention.h"
#endif

int main(int argc, char** argv) {
    try {
        if (argc > 1) {
            auto model = palu::formats::open_model(argv[1]);
            const palu::ModelConfig& c = model->config();
            std::printf("model %s: %lld layers, %lld kv heads, d_head %lld\n", argv[1],
                        static_cast<long long>(c.n_layers), static_cast<long long>(c.n_kv_heads),
                        static_cast<long long>(c.d_head));
            return 0;
        }
        // 2 layers, 4 KV heads of 16 dims, groups of 2 heads, half of the latent dims kept.
        const palu::compress::KvShape shape{.n_layers = 2, .n_kv_heads = 4, .d_head = 16};
        palu::compress::RankSearchParams params;
        params.method = palu::compress::RankSearchMethod::Uniform;
        params.group_size = 2;
        params.ratio = 0.5;
        const palu::compress::RankPlan plan = palu::compress::search_ranks(shape, nullptr, params);
        std::printf("%s\n", palu::compress::rank_plan_to_json(plan).dump().c_str());
        std::printf("default group size for 8 kv heads: %lld\n",
                    static_cast<long long>(palu::pipeline::default_group_size(8)));
#ifdef PALU_CONSUMER_CUDA
        std::printf("cuda: a 4-bit latent row of rank 64 is %lld bytes\n",
                    static_cast<long long>(palu::cuda::latent_row_bytes(64, 4)));
#endif
    } catch (const palu::Error& e) {
        std::fprintf(stderr, "E %s\n", e.what());
        return e.exit_code();
    }
    return 0;
}
