// palu tests: synthetic llama2.c legacy checkpoints written by the tests (never committed data).
// Each f32 is drawn from a fixed-seed generator, so every weight is distinct and a misplaced row
// cannot go unnoticed.
#pragma once

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "palu/formats/llama2c.h"

namespace palu::test {

/// A synthetic checkpoint: the file bytes and each section's values as stored (llama2.c layout).
struct Llama2cFixture {
    formats::Llama2cHeader header;
    std::vector<uint8_t> bytes;
    std::map<std::string, std::vector<float>> sections;  // llama2.c section name -> values
};

inline formats::Llama2cHeader tiny_llama2c_header(bool tied = true) {
    // dim 16, 4 heads of 4, 2 KV heads (GQA), 2 layers, FFN 24, vocab 32, 8 positions.
    return formats::Llama2cHeader{16, 24, 2, 4, 2, tied ? 32 : -32, 8};
}

inline Llama2cFixture make_llama2c_fixture(const formats::Llama2cHeader& h, uint32_t seed = 7) {
    Llama2cFixture f;
    f.header = h;
    const int64_t dim = h.dim, hidden = h.hidden_dim, L = h.n_layers;
    const int64_t d_head = dim / h.n_heads, d_kv = d_head * h.n_kv_heads;
    const int64_t n_vocab = h.vocab_size < 0 ? -int64_t(h.vocab_size) : h.vocab_size;
    std::vector<std::pair<std::string, int64_t>> plan = {
        {"token_embedding", n_vocab * dim},
        {"rms_att", L * dim},
        {"wq", L * dim * dim},
        {"wk", L * d_kv * dim},
        {"wv", L * d_kv * dim},
        {"wo", L * dim * dim},
        {"rms_ffn", L * dim},
        {"w1", L * hidden * dim},
        {"w2", L * dim * hidden},
        {"w3", L * hidden * dim},
        {"rms_final", dim},
        {"freq_cis_real", int64_t(h.seq_len) * d_head / 2},
        {"freq_cis_imag", int64_t(h.seq_len) * d_head / 2}};
    if (h.vocab_size < 0) plan.push_back({"wcls", n_vocab * dim});
    int32_t hdr[7] = {h.dim,        h.hidden_dim, h.n_layers, h.n_heads,
                      h.n_kv_heads, h.vocab_size, h.seq_len};
    f.bytes.resize(sizeof(hdr));
    std::memcpy(f.bytes.data(), hdr, sizeof(hdr));
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
    for (const auto& [name, n] : plan) {
        std::vector<float> v(static_cast<size_t>(n));
        for (auto& x : v) x = dist(rng);
        size_t at = f.bytes.size();
        f.bytes.resize(at + v.size() * sizeof(float));
        std::memcpy(f.bytes.data() + at, v.data(), v.size() * sizeof(float));
        f.sections[name] = std::move(v);
    }
    return f;
}

inline void write_bytes(const std::filesystem::path& p, const std::vector<uint8_t>& bytes) {
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
}

}  // namespace palu::test
