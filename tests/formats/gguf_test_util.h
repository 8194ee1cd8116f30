// palu formats tests: a hand-made GGUF header builder for malformed files the writer refuses to
// produce (corruption suite).
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace palu::test {

/// Appends little-endian GGUF fields one by one; no validation at all.
struct GgufBytes {
    std::vector<uint8_t> b;

    template <typename T>
    GgufBytes& put(T v) {
        uint8_t tmp[sizeof(T)];
        std::memcpy(tmp, &v, sizeof(T));
        b.insert(b.end(), tmp, tmp + sizeof(T));
        return *this;
    }
    GgufBytes& str(const std::string& s) {
        put<uint64_t>(s.size());
        b.insert(b.end(), s.begin(), s.end());
        return *this;
    }
    /// "GGUF", version, n_tensors, n_kv.
    GgufBytes& header(uint32_t version, uint64_t n_tensors, uint64_t n_kv) {
        b.insert(b.end(), {'G', 'G', 'U', 'F'});
        return put(version).put(n_tensors).put(n_kv);
    }
    GgufBytes& kv_u32(const std::string& key, uint32_t v) {
        return str(key).put<uint32_t>(4).put(v);
    }
    GgufBytes& kv_str(const std::string& key, const std::string& v) {
        return str(key).put<uint32_t>(8).str(v);
    }
    GgufBytes& tensor(const std::string& name, const std::vector<uint64_t>& ne, uint32_t type,
                      uint64_t offset) {
        str(name).put<uint32_t>(uint32_t(ne.size()));
        for (auto d : ne) put(d);
        return put(type).put(offset);
    }
    GgufBytes& pad_to(size_t alignment) {
        while (b.size() % alignment) b.push_back(0);
        return *this;
    }
    GgufBytes& zeros(size_t n) {
        b.insert(b.end(), n, 0);
        return *this;
    }
};

}  // namespace palu::test
