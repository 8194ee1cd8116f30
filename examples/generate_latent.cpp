// palu example: greedy generation on a compressed checkpoint with the latent KV cache.
//
// Input  a compressed palu checkpoint (palu-compress output) and optionally prompt token ids.
// Output the generated token ids, and the bytes per token the latent cache really stores (per-group
//        latents h = x·VTᵀ, keys and values rebuilt on the fly) next to a dense f32 K/V cache's.
//
// Usage: palu_example_generate_latent COMPRESSED_MODEL [TOKEN_ID ...]
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "palu/core/error.h"
#include "palu/formats/model_loader.h"
#include "palu/model/latent_cache.h"
#include "palu/model/transformer.h"

int main(int argc, char** argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: %s COMPRESSED_MODEL [TOKEN_ID ...]\n", argv[0]);
        return 2;
    }
    std::vector<int32_t> tokens = {1, 5, 9, 13};
    if (argc > 2) {
        tokens.clear();
        for (int i = 2; i < argc; ++i) tokens.push_back(static_cast<int32_t>(std::atoi(argv[i])));
    }
    const int64_t n_new = 8;
    try {
        auto src = palu::formats::open_model(argv[1]);
        palu::model::Transformer engine(*src);  // weights converted to f32 once
        engine.set_threads(1);
        // Latent caches for every layer: f32 latents (bits = 16, 8, 4, ... store them smaller).
        palu::model::LatentCacheOptions options;
        options.bits = 32;
        engine.set_cache_factory(palu::model::latent_cache_factory(engine.weights(), options));

        const int64_t n_prompt = static_cast<int64_t>(tokens.size());
        auto cache = engine.make_cache(/*n_batch=*/1, /*n_ctx_max=*/n_prompt + n_new);
        // Prefill: logits of the last prompt position only, [1, 1, n_vocab].
        palu::Tensor logits =
            engine.forward(tokens.data(), 1, n_prompt, *cache, /*last_only=*/true);
        const int64_t n_vocab = engine.config().n_vocab;
        for (int64_t i = 0; i < n_new; ++i) {
            const float* row = logits.data();
            tokens.push_back(static_cast<int32_t>(std::max_element(row, row + n_vocab) - row));
            if (i + 1 < n_new)
                logits = engine.forward(&tokens.back(), 1, 1, *cache);  // decode step
        }
        std::printf("tokens:");
        for (int32_t t : tokens) std::printf(" %d", t);
        std::printf("\n");

        // What a dense f32 cache of the same model would store: post-RoPE K and V of every head.
        const palu::ModelConfig& c = engine.config();
        const palu::model::DenseKvLayerCache dense_layer(c, 1, 1);
        const int64_t latent = cache->bytes_per_token();
        const int64_t dense = dense_layer.bytes_per_token() * c.n_layers;
        std::printf("KV cache bytes/token: latent %lld, dense %lld (x%.3f)\n",
                    static_cast<long long>(latent), static_cast<long long>(dense),
                    static_cast<double>(latent) / static_cast<double>(dense));
    } catch (const palu::Error& e) {
        std::fprintf(stderr, "E %s\n", e.what());
        return e.exit_code();
    }
    return 0;
}
