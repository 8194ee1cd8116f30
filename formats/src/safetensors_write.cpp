// palu formats: safetensors writer. Inputs: named tensors (raw little-endian bytes held by the
// caller) and a __metadata__ map; outputs: model.safetensors, or model-NNNNN-of-MMMMM.safetensors
// shards plus model.safetensors.index.json, each written under a temporary name and renamed into
// place only once every file is complete. The reader side lives in safetensors.cpp.
#include <algorithm>
#include <system_error>

#include "io_util.h"
#include "palu/core/checked.h"
#include "palu/core/error.h"
#include "palu/core/format.h"
#include "palu/formats/safetensors.h"

namespace palu::formats {

namespace fs = std::filesystem;
using nlohmann::json;
using ull = unsigned long long;

namespace {

void check_and_sort(std::vector<TensorToWrite>& tensors, const std::string& dst) {
    std::sort(tensors.begin(), tensors.end(),
              [](const TensorToWrite& a, const TensorToWrite& b) { return a.name < b.name; });
    for (size_t i = 0; i < tensors.size(); ++i) {
        const auto& t = tensors[i];
        PALU_CHECK(t.name != "__metadata__", UsageError,
                   "formats: %s: '__metadata__' is reserved and cannot name a tensor", dst.c_str());
        PALU_CHECK(i == 0 || tensors[i - 1].name != t.name, UsageError,
                   "formats: %s: tensor '%s' given twice: expected unique names", dst.c_str(),
                   t.name.c_str());
        auto numel = numel_no_overflow(t.shape);
        auto n = numel ? mul_no_overflow(*numel, dtype_size(t.dtype)) : std::nullopt;
        PALU_CHECK(n.has_value() && *n == t.bytes.size(), UsageError,
                   "formats: %s: tensor '%s' shape %s %s: expected %llu bytes, got %zu",
                   dst.c_str(), t.name.c_str(), shape_str(t.shape).c_str(), dtype_name(t.dtype),
                   n ? static_cast<ull>(*n) : 0ull, t.bytes.size());
    }
}

// Writes sorted, checked tensors into `tmp` (not committed).
void write_file_body(detail::TempFile& tmp, const std::vector<const TensorToWrite*>& tensors,
                     const std::map<std::string, std::string>& metadata) {
    json h = json::object();
    if (!metadata.empty()) h["__metadata__"] = metadata;
    uint64_t off = 0;
    for (const auto* t : tensors) {
        h[t->name] = {{"dtype", dtype_name(t->dtype)},
                      {"shape", t->shape},
                      {"data_offsets", {off, off + t->bytes.size()}}};
        off += t->bytes.size();
    }
    std::string hs;
    try {
        hs = h.dump();
    } catch (const json::exception& e) {
        PALU_THROW(
            UsageError,
            "formats: %s: cannot encode header (tensor names and metadata must be UTF-8): %s",
            tmp.final_path().string().c_str(), e.what());
    }
    // Pad with spaces (valid JSON whitespace) so the data buffer starts 8-byte aligned.
    while ((8 + hs.size()) % 8 != 0) hs.push_back(' ');
    uint8_t len[8];
    uint64_t n = hs.size();
    for (int i = 0; i < 8; ++i) len[i] = static_cast<uint8_t>(n >> (8 * i));
    tmp.write(len, 8);
    tmp.write(hs.data(), hs.size());
    for (const auto* t : tensors)
        if (!t->bytes.empty()) tmp.write(t->bytes.data(), t->bytes.size());
    tmp.close();
}

}  // namespace

void write_safetensors_file(const fs::path& path, std::vector<TensorToWrite> tensors,
                            const std::map<std::string, std::string>& metadata) {
    check_and_sort(tensors, path.string());
    std::vector<const TensorToWrite*> ptrs;
    for (const auto& t : tensors) ptrs.push_back(&t);
    detail::TempFile tmp(path);
    write_file_body(tmp, ptrs, metadata);
    tmp.commit();
}

std::vector<fs::path> write_safetensors(const fs::path& dir, std::vector<TensorToWrite> tensors,
                                        const std::map<std::string, std::string>& metadata,
                                        uint64_t max_shard_bytes) {
    check_and_sort(tensors, dir.string());
    std::error_code ec;
    fs::create_directories(dir, ec);
    PALU_CHECK(!ec, IoError, "formats: %s: cannot create directory: %s", dir.string().c_str(),
               ec.message().c_str());

    uint64_t total = 0;
    for (const auto& t : tensors) total += t.bytes.size();
    // Greedy in name order: a new shard when the next tensor would overflow the current one.
    std::vector<std::vector<const TensorToWrite*>> shards(1);
    uint64_t cur = 0;
    if (max_shard_bytes != 0 && total > max_shard_bytes) {
        for (const auto& t : tensors) {
            if (!shards.back().empty() && cur + t.bytes.size() > max_shard_bytes) {
                shards.emplace_back();
                cur = 0;
            }
            shards.back().push_back(&t);
            cur += t.bytes.size();
        }
    } else {
        for (const auto& t : tensors) shards[0].push_back(&t);
    }

    std::vector<detail::TempFile> files;
    std::vector<fs::path> written;
    if (shards.size() == 1) {
        files.emplace_back(dir / detail::kSafetensorsSingleName);
        write_file_body(files.back(), shards[0], metadata);
    } else {
        const size_t n = shards.size();
        json weight_map = json::object();
        for (size_t i = 0; i < n; ++i) {
            std::string name = strfmt("model-%05zu-of-%05zu.safetensors", i + 1, n);
            files.emplace_back(dir / name);
            write_file_body(files.back(), shards[i], metadata);
            for (const auto* t : shards[i]) weight_map[t->name] = name;
        }
        json idx = {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
        std::string s = idx.dump(2) + "\n";
        files.emplace_back(dir / detail::kSafetensorsIndexName);
        files.back().write(s.data(), s.size());
        files.back().close();
    }
    // All files are complete on disk: rename them into place (index last).
    for (auto& f : files) {
        f.commit();
        written.push_back(f.final_path());
    }
    return written;
}

}  // namespace palu::formats
