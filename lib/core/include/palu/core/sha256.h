// palu core: SHA-256 (FIPS 180-4) for fingerprints of models, calibration data and stats files.
// Streaming: feed bytes with update(), get the 32-byte digest with finish().
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

namespace palu {

/// Incremental SHA-256. Not thread-safe; one object per stream.
class Sha256 {
   public:
    using Digest = std::array<uint8_t, 32>;

    Sha256();
    /// Appends `n` bytes at `data` to the message.
    void update(const void* data, size_t n);
    void update(std::string_view s) { update(s.data(), s.size()); }
    /// Pads, returns the digest and resets the object to the empty message.
    Digest finish();
    /// Lower-case hex of finish().
    std::string finish_hex();

   private:
    void compress(const uint8_t* block);  // one 64-byte block
    void reset();

    std::array<uint32_t, 8> h_;
    std::array<uint8_t, 64> buf_;
    size_t n_buf_ = 0;
    uint64_t n_total_ = 0;  // message length in bytes
};

/// Lower-case hex of 32 digest bytes.
std::string hex_digest(const Sha256::Digest& d);
/// SHA-256 of a byte string, lower-case hex.
std::string sha256_hex(std::string_view bytes);
/// SHA-256 of a file's bytes, streamed in 1 MiB blocks, lower-case hex.
/// Throws IoError when the file cannot be opened or read.
std::string sha256_file_hex(const std::filesystem::path& path);

}  // namespace palu
