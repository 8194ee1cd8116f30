// palu tests: locating the shared, read-only test data (../shared/data or $PALU_TEST_DATA).
// When PALU_TEST_DATA is set (CI) a missing file is a failure with instructions; when it is unset
// and the default path is absent (a user's clone) the test skips saying what it needs.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <optional>
#include <string>

namespace palu::test {

/// Root of the shared data: $PALU_TEST_DATA, else <source>/../shared/data.
std::filesystem::path data_root();
/// True when PALU_TEST_DATA is set (missing files must fail, not skip).
bool data_required();
/// Full path of `rel` under the data root, or nullopt if absent.
std::optional<std::filesystem::path> find_data(const std::string& rel);
/// A fresh empty directory under the GoogleTest temp dir, unique per call.
std::filesystem::path make_temp_dir(const std::string& tag);
/// Source tree root (for committed fixtures such as tests/reference/*).
std::filesystem::path source_root();

}  // namespace palu::test

/// Declares `var` as the path of shared data file `rel`, or skips / fails the test when absent.
#define PALU_REQUIRE_DATA(var, rel)                                                                 \
    auto var##_opt = ::palu::test::find_data(rel);                                                  \
    if (!var##_opt) {                                                                               \
        if (::palu::test::data_required())                                                          \
            FAIL() << "missing test data " << (::palu::test::data_root() / (rel))                   \
                   << " (PALU_TEST_DATA is set); point PALU_TEST_DATA at the shared data folder";   \
        GTEST_SKIP() << "needs " << (rel) << " under ../shared/data or $PALU_TEST_DATA";            \
    }                                                                                               \
    const std::filesystem::path var = *var##_opt
