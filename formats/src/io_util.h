// palu formats (private): strict JSON parsing shared by the safetensors header, the shard index and
// config.json readers, atomic file writing (temporary name + rename), and the file names the
// safetensors reader and writer share.
// nlohmann's behaviour on duplicate object keys is unspecified (it keeps the last), so duplicates
// are detected with a parser callback and reported as FormatError.
#pragma once

#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace palu::formats::detail {

/// File names in a Hugging Face checkpoint directory: one file, or the index of a sharded one.
inline constexpr const char* kSafetensorsSingleName = "model.safetensors";
inline constexpr const char* kSafetensorsIndexName = "model.safetensors.index.json";

/// Parses `text`; throws FormatError "formats: <source>: <what> is not valid JSON: ...
/// (<id_invalid>)" on a syntax error and "... duplicate key '<k>' ... (<id_duplicate>)" on a
/// repeated key in any object. `what` names the document in messages ("header", "index", "config").
nlohmann::json parse_json_strict(std::string_view text, const std::string& source, const char* what,
                                 const char* id_invalid, const char* id_duplicate);

/// Reads a whole (small) file; IoError when it cannot be read, FormatError when over `max_bytes`.
std::string read_text_file(const std::filesystem::path& path, uint64_t max_bytes);

/// A short rendering of a JSON value for error messages: scalars and flat arrays of scalars as
/// JSON (cut at ~60 characters), nested values as "<array of N>" / "<object of N>". Never
/// recurses, so hostile deeply nested input cannot overflow the stack here.
std::string brief_json(const nlohmann::json& j);

/// A read-only, private memory mapping of a whole file (RAII, move-only). Readers validate the
/// header with pread first and map only afterwards (STYLE.md). A zero-size file maps to nothing.
class MappedFile {
   public:
    MappedFile() = default;
    /// Maps `size` bytes of the open descriptor `fd`; IoError naming `source` on failure.
    static MappedFile map(int fd, size_t size, const std::string& source);
    MappedFile(MappedFile&& o) noexcept;
    MappedFile& operator=(MappedFile&& o) noexcept;
    MappedFile(const MappedFile&) = delete;
    MappedFile& operator=(const MappedFile&) = delete;
    ~MappedFile();

    const uint8_t* data() const { return data_; }
    size_t size() const { return size_; }

   private:
    const uint8_t* data_ = nullptr;
    size_t size_ = 0;
};

/// A file written under a temporary name next to its final path and renamed into place by
/// commit(); destroyed uncommitted, it removes itself (nothing half-written is left behind).
class TempFile {
   public:
    explicit TempFile(std::filesystem::path final_path);
    TempFile(TempFile&& o) noexcept;
    TempFile& operator=(TempFile&&) = delete;
    TempFile(const TempFile&) = delete;
    ~TempFile();

    /// Appends n bytes; IoError on failure.
    void write(const void* data, size_t n);
    /// Flushes to disk and closes (still under the temporary name).
    void close();
    /// close() if needed, then renames to the final path.
    void commit();
    const std::filesystem::path& final_path() const { return final_; }

   private:
    std::filesystem::path final_, tmp_;
    int fd_ = -1;
    bool committed_ = false;
};

}  // namespace palu::formats::detail
