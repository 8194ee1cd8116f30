// palu formats: atomic output directories. Everything a writer produces goes into a hidden
// staging directory beside the destination, renamed into place by commit(); destroying the
// StagingDir without commit() (any error) removes it, so the destination is never half-written.
#pragma once

#include <filesystem>
#include <string>

namespace palu::formats {

class StagingDir {
   public:
    /// Checks `out_dir` (empty or absent unless `overwrite`; never a folder holding `source_dir`,
    /// the model being read) and creates the staging directory. `stage` prefixes messages
    /// ("checkpoint", "export"). Throws UsageError (bad out_dir), IoError (not writable).
    StagingDir(const std::filesystem::path& out_dir, bool overwrite,
               const std::filesystem::path& source_dir, const char* stage);
    StagingDir(const StagingDir&) = delete;
    StagingDir& operator=(const StagingDir&) = delete;
    ~StagingDir();

    /// The staging directory to write into.
    const std::filesystem::path& path() const { return tmp_; }
    /// Where commit() puts it (absolute, normalised).
    const std::filesystem::path& final_path() const { return final_; }

    /// Moves the staged directory into place; an existing out_dir (checked empty or overwrite) is
    /// moved aside first and deleted only after the rename succeeded. Throws IoError.
    void commit();

   private:
    const char* stage_;
    std::filesystem::path final_, tmp_, backup_;
    bool committed_ = false;
};

/// Checks, before long work, that `out_dir` could be written: absent or empty (or `overwrite`),
/// its parent an existing writable directory. Throws UsageError / IoError with a hint.
void check_output_dir(const std::filesystem::path& out_dir, bool overwrite, const char* stage);

/// Writes `text` to `path` and fsyncs it (before a directory rename). Throws IoError.
void write_text_file(const std::filesystem::path& path, const std::string& text, const char* stage);

/// Writes `text` to `path` through a temporary file beside it renamed onto `path` (a reader never
/// sees half a file). Throws IoError.
void write_file_atomically(const std::filesystem::path& path, const std::string& text,
                           const char* stage);

/// Copies `src` into directory `dir` under its own name (replacing). Throws IoError.
void copy_file_into(const std::filesystem::path& src, const std::filesystem::path& dir,
                    const char* stage);

}  // namespace palu::formats
