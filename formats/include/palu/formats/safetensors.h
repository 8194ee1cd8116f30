// palu formats: safetensors reader (mmap, validated before use), sharded checkpoints through
// model.safetensors.index.json, and the writer (single file or shards + index, atomic).
//
// File layout (https://github.com/huggingface/safetensors): u64 little-endian header length N,
// N bytes of JSON {name: {dtype, shape, data_offsets: [begin, end)}, "__metadata__": {str: str}},
// then the data buffer; offsets are relative to the start of the buffer (8 + N).
// Validation order and error anatomy: STYLE.md "Error policy".
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "palu/core/dtype.h"
#include "palu/core/tensor.h"

namespace palu::formats {

/// Largest header accepted (the reference implementation's limit).
inline constexpr uint64_t kSafetensorsMaxHeader = 100'000'000;

/// One tensor entry of a safetensors header.
struct SafetensorsTensorInfo {
    std::string name;
    DType dtype = DType::F32;
    std::vector<int64_t> shape;
    uint64_t begin = 0;  // byte offset of the first byte, relative to the data buffer
    uint64_t end = 0;    // one past the last byte, relative to the data buffer
    uint64_t n_bytes() const { return end - begin; }
    uint64_t numel() const;
};

/// A validated, memory-mapped (or in-memory) safetensors file. Move-only; tensor data stays valid
/// for the lifetime of the object.
class SafetensorsFile {
   public:
    /// Opens and validates `path` (mmap, no copy of the data). Throws IoError when the file
    /// cannot be opened or mapped, FormatError (message ends with an id such as
    /// "(MetadataIncompleteBuffer)") when it is malformed. Nothing is mapped before the header
    /// has been validated against the file size.
    static SafetensorsFile open(const std::filesystem::path& path);
    /// Validates an in-memory copy of a whole file; `display_name` names it in errors.
    static SafetensorsFile from_memory(std::vector<uint8_t> bytes, const std::string& display_name);

    SafetensorsFile(SafetensorsFile&&) noexcept;
    SafetensorsFile& operator=(SafetensorsFile&&) noexcept;
    ~SafetensorsFile();

    /// The path (or display name) the file was opened from.
    const std::string& path() const;
    /// Every tensor, sorted by name.
    const std::vector<SafetensorsTensorInfo>& tensors() const;
    /// nullptr when absent.
    const SafetensorsTensorInfo* find(const std::string& name) const;
    /// Throws FormatError naming the file when absent.
    const SafetensorsTensorInfo& info(const std::string& name) const;
    /// The `__metadata__` map (empty when absent).
    const std::map<std::string, std::string>& metadata() const;
    /// Raw little-endian bytes of a tensor (n_bytes long; alignment not guaranteed).
    std::span<const uint8_t> bytes(const std::string& name) const;
    std::span<const uint8_t> bytes(const SafetensorsTensorInfo& t) const;
    /// The tensor converted to f32 (palu::convert_to_f32), same shape.
    Tensor load_f32(const std::string& name) const;
    /// Offset of the data buffer in the file (8 + header length).
    uint64_t data_offset() const;
    /// Total file size in bytes.
    uint64_t file_size() const;

    struct Impl;  // implementation detail (safetensors.cpp)

   private:
    explicit SafetensorsFile(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

/// A safetensors checkpoint, single file or sharded via model.safetensors.index.json.
class SafetensorsCheckpoint {
   public:
    /// `path` is a directory (model.safetensors, else model.safetensors.index.json), an index
    /// .json file, or a single .safetensors file. Sharded: every shard referenced by the index
    /// must exist and every tensor must appear exactly once across shards, in the shard the
    /// index names. Throws IoError (missing files) or FormatError.
    static SafetensorsCheckpoint open(const std::filesystem::path& path);

    struct Entry {
        const SafetensorsTensorInfo* info;
        const SafetensorsFile* file;
    };

    /// The path the checkpoint was opened from (file or directory).
    const std::string& path() const { return path_; }
    bool sharded() const { return sharded_; }
    const std::vector<SafetensorsFile>& shards() const { return shards_; }
    /// Every tensor of every shard, sorted by name.
    const std::vector<Entry>& tensors() const { return entries_; }
    /// nullptr when absent.
    const Entry* find(const std::string& name) const;
    /// Throws FormatError when absent.
    const Entry& at(const std::string& name) const;
    std::span<const uint8_t> bytes(const std::string& name) const;
    Tensor load_f32(const std::string& name) const;
    /// `__metadata__` of the first shard (the writer puts the same map in every shard).
    const std::map<std::string, std::string>& metadata() const;

   private:
    std::string path_;
    bool sharded_ = false;
    std::vector<SafetensorsFile> shards_;
    std::vector<Entry> entries_;
};

/// A tensor to write: name, element type, shape and its raw little-endian bytes (held by the
/// caller until the write returns; n_bytes must equal numel * dtype_size).
struct TensorToWrite {
    std::string name;
    DType dtype = DType::F32;
    std::vector<int64_t> shape;
    std::span<const uint8_t> bytes;
};

/// Tensors to write, with the bytes of converted ones owned here until the write.
class TensorWriteList {
   public:
    /// Borrowed bytes (e.g. an mmap'd source), alive until the write returns.
    void add_raw(std::string name, DType dtype, std::vector<int64_t> shape,
                 std::span<const uint8_t> bytes);
    /// `n` f32 values stored as `dtype` (F32, F16 or BF16; round to nearest even). Non-finite
    /// values, or values that overflow the half type, would silently corrupt a model:
    /// NumericalError naming the tensor, prefixed by `stage`.
    void add_f32(std::string name, DType dtype, std::vector<int64_t> shape, const float* values,
                 size_t n, const char* stage);
    size_t size() const { return list_.size(); }
    uint64_t n_bytes() const;
    /// The list for write_safetensors; the owned bytes stay here (keep this object alive).
    std::vector<TensorToWrite> take() { return std::move(list_); }

   private:
    std::vector<std::unique_ptr<std::vector<uint8_t>>> storage_;
    std::vector<TensorToWrite> list_;
};

/// Writes one safetensors file at `path`: tensors sorted by name, `__metadata__` when non-empty,
/// the header padded with spaces so that the data buffer starts 8-byte aligned. Written to a
/// temporary name in the same directory and renamed into place. Throws UsageError on bad input
/// (duplicate names, byte count not matching shape), IoError on write failure.
void write_safetensors_file(const std::filesystem::path& path, std::vector<TensorToWrite> tensors,
                            const std::map<std::string, std::string>& metadata = {});

/// Writes a checkpoint into `dir` (created if needed): `model.safetensors` when the tensor bytes
/// fit in `max_shard_bytes` (0 = no limit), else `model-0000k-of-0000n.safetensors` shards (tensors
/// in name order, a new shard when the next tensor would overflow the current one) plus
/// `model.safetensors.index.json` with `metadata.total_size` and `weight_map`. Every file goes to a
/// temporary name first and all are renamed into place only after all were written.
/// Returns the paths written (shards first, then the index).
std::vector<std::filesystem::path> write_safetensors(
    const std::filesystem::path& dir, std::vector<TensorToWrite> tensors,
    const std::map<std::string, std::string>& metadata = {}, uint64_t max_shard_bytes = 0);

}  // namespace palu::formats
