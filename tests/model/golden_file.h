// palu tests: a minimal reader for the golden safetensors files of ../shared/data/golden (F32, F64,
// I32 tensors), used only to read expected values. It trusts its input (read-only reference data);
// checkpoints are read through palu::formats, never through this.
#pragma once

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

namespace palu::test {

struct GoldenTensor {
    std::string dtype;
    std::vector<int64_t> shape;
    std::vector<double> values;  // converted to double
};

inline std::map<std::string, GoldenTensor> read_golden_safetensors(const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    if (!in) throw std::runtime_error("cannot open " + p.string());
    uint64_t header_len = 0;
    in.read(reinterpret_cast<char*>(&header_len), 8);
    std::string header(header_len, '\0');
    in.read(header.data(), static_cast<std::streamsize>(header_len));
    const auto j = nlohmann::json::parse(header);
    std::vector<char> data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::map<std::string, GoldenTensor> out;
    for (const auto& [name, info] : j.items()) {
        if (name == "__metadata__") continue;
        GoldenTensor t;
        t.dtype = info.at("dtype").get<std::string>();
        t.shape = info.at("shape").get<std::vector<int64_t>>();
        const auto off = info.at("data_offsets").get<std::vector<uint64_t>>();
        const char* b = data.data() + off.at(0);
        const size_t nbytes = off.at(1) - off.at(0);
        if (t.dtype == "F32") {
            for (size_t i = 0; i < nbytes / 4; ++i) {
                float v;
                std::memcpy(&v, b + 4 * i, 4);
                t.values.push_back(v);
            }
        } else if (t.dtype == "F64") {
            for (size_t i = 0; i < nbytes / 8; ++i) {
                double v;
                std::memcpy(&v, b + 8 * i, 8);
                t.values.push_back(v);
            }
        } else if (t.dtype == "I32") {
            for (size_t i = 0; i < nbytes / 4; ++i) {
                int32_t v;
                std::memcpy(&v, b + 4 * i, 4);
                t.values.push_back(v);
            }
        } else {
            throw std::runtime_error("golden reader: unsupported dtype " + t.dtype);
        }
        out[name] = std::move(t);
    }
    return out;
}

}  // namespace palu::test
