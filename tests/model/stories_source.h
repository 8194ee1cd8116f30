// palu tests: opening stories260K for the golden tests.
// TODO(engine): replace with palu::formats::open_model once the HF safetensors and llama2.c
// readers are on main (#3); until then the HF directory is read with the test-only golden reader.
#pragma once

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <memory>

#include "golden_file.h"
#include "synthetic_model.h"

namespace palu::test {

inline std::unique_ptr<WeightSource> open_stories_model(const std::filesystem::path& dir) {
    auto src = std::make_unique<MemoryWeightSource>();
    std::ifstream in(dir / "config.json");
    const auto j = nlohmann::json::parse(in);
    ModelConfig& c = src->cfg;
    c.d_model = j.at("hidden_size");
    c.n_layers = j.at("num_hidden_layers");
    c.n_heads = j.at("num_attention_heads");
    c.n_kv_heads = j.at("num_key_value_heads");
    c.d_head = j.at("head_dim");
    c.d_ff = j.at("intermediate_size");
    c.n_vocab = j.at("vocab_size");
    c.rms_norm_eps = j.at("rms_norm_eps");
    c.rope_theta = j.at("rope_theta");
    c.tie_word_embeddings = j.at("tie_word_embeddings");
    for (auto& [name, t] : read_golden_safetensors(dir / "model.safetensors"))
        src->tensors_by_name[name] = Tensor(t.shape, std::vector<float>(t.values.begin(), t.values.end()));
    return src;
}

}  // namespace palu::test
