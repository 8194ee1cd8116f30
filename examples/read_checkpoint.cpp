// palu example: read a compressed checkpoint — its ranks per layer and head group, and the palu
// block of its config.json (how it was made, its KV-cache bytes per token) — through
// formats/palu_checkpoint.h, the one owner of that layout.
//
// Usage: palu_example_read_checkpoint COMPRESSED_DIR
#include <cstdio>
#include <string>
#include <vector>

#include "palu/core/error.h"
#include "palu/formats/model_loader.h"
#include "palu/formats/palu_checkpoint.h"

namespace {

std::string join(const std::vector<int64_t>& ranks) {
    std::string s;
    for (int64_t r : ranks) s += (s.empty() ? "" : "/") + std::to_string(r);
    return s;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s COMPRESSED_DIR\n", argv[0]);
        return 2;
    }
    try {
        const auto src = palu::formats::open_model(argv[1]);  // headers only; no weight is read
        if (!palu::formats::is_palu_checkpoint(*src)) {
            std::fprintf(stderr, "E %s is not a compressed palu checkpoint\n", argv[1]);
            return 3;
        }
        const palu::formats::PaluCheckpointInfo info = palu::formats::read_palu_checkpoint(*src);
        for (size_t l = 0; l < info.k_ranks.size(); ++l)
            std::printf("layer %zu: K ranks %s, V ranks %s\n", l, join(info.k_ranks[l]).c_str(),
                        join(info.v_ranks[l]).c_str());
        const palu::formats::PaluBlock& b = info.block;
        std::printf(
            "palu block: format_version %d, group size %lld, rank search '%s', "
            "decompose '%s', latent bits %d\n",
            b.format_version, static_cast<long long>(b.group_size), b.rank_search.method.c_str(),
            b.decompose.method.c_str(), b.latent_quant.bits);
        // The whole block as config.json holds it.
        std::printf("%s\n", palu::formats::to_json(b).dump(2).c_str());
    } catch (const palu::Error& e) {
        std::fprintf(stderr, "E %s\n", e.what());
        return e.exit_code();
    }
    return 0;
}
