// palu core tests: SHA-256 against the FIPS 180-2 appendix B test vectors and streaming splits.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <string>

#include "palu/core/error.h"
#include "palu/core/sha256.h"
#include "test_data.h"

using namespace palu;

TEST(Sha256, Fips180_2_OneBlockAbc) {
    EXPECT_EQ(sha256_hex("abc"),
              "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(Sha256, Fips180_2_TwoBlock448BitMessage) {
    EXPECT_EQ(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
              "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

TEST(Sha256, Fips180_2_MillionA) {
    Sha256 h;
    std::string chunk(1000, 'a');
    for (int i = 0; i < 1000; ++i) h.update(chunk);
    EXPECT_EQ(h.finish_hex(), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Sha256, EmptyMessage) {
    EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST(Sha256, StreamingSplitsGiveSameDigest_AllPaddingLengths) {
    // Every message length 0..200 around the 55/56/64-byte padding boundaries, fed in one piece
    // and in pieces of 1..13 bytes, gives the same digest.
    std::string msg;
    for (int n = 0; n <= 200; ++n) {
        std::string one = sha256_hex(msg);
        for (size_t step = 1; step <= 13; ++step) {
            Sha256 h;
            for (size_t i = 0; i < msg.size(); i += step)
                h.update(msg.data() + i, std::min(step, msg.size() - i));
            ASSERT_EQ(h.finish_hex(), one) << "n=" << n << " step=" << step;
        }
        msg.push_back(char('a' + n % 26));
    }
}

TEST(Sha256, FileMatchesInMemory) {
    auto dir = test::make_temp_dir("sha256");
    std::string content(3 * 1024 * 1024 + 17, '\0');
    for (size_t i = 0; i < content.size(); ++i) content[i] = char((i * 2654435761u) >> 13);
    {
        std::ofstream f(dir / "x.bin", std::ios::binary);
        f.write(content.data(), std::streamsize(content.size()));
    }
    EXPECT_EQ(sha256_file_hex(dir / "x.bin"), sha256_hex(content));
    EXPECT_THROW(sha256_file_hex(dir / "missing.bin"), IoError);
}
