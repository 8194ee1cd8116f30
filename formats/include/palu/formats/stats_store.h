// palu formats: the HDF5 store of calibration statistics (issue 4, stage "calibrate").
// Inputs: named f64/f32 arrays (Gram matrices Σ x xᵀ per layer, Fisher scores per k/v projection,
// scalars) plus provenance; output: one .h5 file that later runs (rank search, decompose, sweeps)
// reuse when model, data and settings match, and refuse with a clear message when they do not.
//
// File layout (format_version 1):
//   root attributes: format_version (int32), model_fingerprint (string), data_fingerprint
//   (string), n_tokens (int64), seed (int64), settings (string, free-form JSON);
//   datasets at any path ("gram/layer_3", "fisher/k/layer_3", "n_windows"), stored as IEEE
//   little-endian f64 or f32, any rank (rank 0 = scalar); non-empty arrays are chunked (<= 1 MiB
//   chunks) with the shuffle + deflate filters.
// HDF5 itself is private to palu_formats: nothing in this header needs its headers.
// Not thread-safe (the Debian HDF5 build is serial): use one store from one thread at a time.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace palu::formats {

/// The stats format this palu writes and reads.
inline constexpr int kStatsFormatVersion = 1;

/// Root attributes of a stats file.
struct StatsFileInfo {
    int format_version = kStatsFormatVersion;  // written as kStatsFormatVersion; as stored on read
    std::string model_fingerprint;             // fingerprint_model() of the calibrated model
    std::string data_fingerprint;              // e.g. fingerprint_file() of the calibration text
    int64_t n_tokens = 0;                      // calibration tokens seen
    int64_t seed = 0;                          // sampling seed
    std::string settings_json = "{}";          // free-form: sampler, seqlen, label shift, ...
};

enum class StatsDType { F32, F64 };

/// One dataset read back, values widened to f64 (exactly: f32 -> f64 is lossless).
struct StatsDataset {
    std::string name;
    std::vector<int64_t> shape;  // [] for a scalar
    StatsDType stored_type = StatsDType::F64;
    std::vector<double> values;  // numel(shape) values, row-major
};

/// Writes a stats file atomically: everything goes to a hidden temporary file beside `path`,
/// renamed onto `path` by commit(). Destroying the writer without commit() (an error, an
/// exception) removes the temporary file, so nothing half-written is ever left at `path`.
class StatsWriter {
   public:
    /// Creates the temporary file and writes the root attributes (format_version is always
    /// kStatsFormatVersion). `deflate_level` 0..9 (0: shuffle only; 1, the default, compresses
    /// dense f64 Gram matrices within 1% of level 4). Throws IoError when the directory
    /// is missing or not writable, UsageError for a level outside 0..9.
    StatsWriter(const std::filesystem::path& path, const StatsFileInfo& info,
                int deflate_level = 1);
    ~StatsWriter();
    StatsWriter(const StatsWriter&) = delete;
    StatsWriter& operator=(const StatsWriter&) = delete;

    /// Writes dataset `name` (components [A-Za-z0-9_.-] separated by '/', intermediate groups
    /// created) of shape `shape` (each dim >= 0; empty = scalar) from row-major `values`
    /// (numel(shape) of them). Throws UsageError (bad or duplicate name, already committed),
    /// ShapeError (value count != numel), IoError (HDF5 write failure).
    void write_f64(const std::string& name, std::span<const int64_t> shape,
                   std::span<const double> values);
    void write_f32(const std::string& name, std::span<const int64_t> shape,
                   std::span<const float> values);
    void write_f64(const std::string& name, const std::vector<int64_t>& shape,
                   const std::vector<double>& values) {
        write_f64(name, std::span<const int64_t>(shape), std::span<const double>(values));
    }
    void write_f32(const std::string& name, const std::vector<int64_t>& shape,
                   const std::vector<float>& values) {
        write_f32(name, std::span<const int64_t>(shape), std::span<const float>(values));
    }
    /// Closes the file and renames it onto `path` (replacing an existing file). Throws IoError;
    /// on failure the temporary file is removed and `path` is untouched.
    void commit();
    /// The temporary file being written (for tests).
    const std::filesystem::path& temp_path() const;

   private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

/// What the caller expects of an existing stats file. Empty fields are not checked.
struct StatsExpectation {
    std::string model_fingerprint;
    std::string data_fingerprint;
};

/// A stats file opened for reading.
class StatsStore {
   public:
    /// Opens and checks `path`: IoError when missing/unreadable, FormatError when not an HDF5
    /// file, lacking the root attributes, or of another format_version ("hint: re-run
    /// palu-calibrate"), UsageError when `expected` names another model or calibration data
    /// (both fingerprints in the message).
    static StatsStore open(const std::filesystem::path& path,
                           const StatsExpectation& expected = {});
    ~StatsStore();
    StatsStore(StatsStore&&) noexcept;
    StatsStore& operator=(StatsStore&&) noexcept;

    const StatsFileInfo& info() const;
    const std::filesystem::path& path() const;
    /// Every dataset's full name, sorted ("fisher/k/layer_0", "gram/layer_0", ...).
    std::vector<std::string> list() const;
    bool has(const std::string& name) const;
    /// Reads one dataset. Throws FormatError when absent or not an f32/f64 array.
    StatsDataset read(const std::string& name) const;
    /// Names of the filters applied to a dataset's chunks, in pipeline order ("shuffle",
    /// "deflate"); empty for unchunked datasets (scalars, empty arrays).
    std::vector<std::string> filters(const std::string& name) const;

   private:
    StatsStore();
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace palu::formats
