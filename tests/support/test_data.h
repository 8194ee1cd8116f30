// palu tests: locating the shared, read-only test data (../shared/data or $PALU_TEST_DATA) and the
// model files that scripts fetch into <source>/models (git-ignored).
// Shared data: when PALU_TEST_DATA is set (CI) a missing file is a failure with instructions; when
// it is unset and the default path is absent (a user's clone) the test skips saying what it needs.
// Model files: when CI=true (the CI job, .ci/run) a missing file is a failure saying which script
// fetches it; otherwise the test skips with the same hint.
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

/// True when the environment variable CI has the value "true" (the CI job sets it): a missing
/// model file must fail, not skip.
bool model_file_required();
/// As model_file_required() for the CI variable's value `ci` (null: unset).
bool model_file_required(const char* ci);
/// <source>/`rel` when it exists, else nullopt.
std::optional<std::filesystem::path> find_model_file(const std::string& rel);
/// What a test says when model file `rel` (fetched by `how`) is missing: the failure message when
/// `required`, else the skip message.
std::string missing_model_file_message(const std::string& rel, const std::string& how,
                                       bool required);

/// The SmolLM2-135M-Instruct Q4_1 GGUF that scripts/get-smollm2.sh fetches, relative to the source.
inline constexpr const char* kSmolLM2Gguf = "models/smollm2/SmolLM2-135M-Instruct-Q4_1.gguf";

}  // namespace palu::test

/// Declares `var` as the path of shared data file `rel`, or skips / fails the test when absent.
#define PALU_REQUIRE_DATA(var, rel)                                                               \
    auto var##_opt = ::palu::test::find_data(rel);                                                \
    if (!var##_opt) {                                                                             \
        if (::palu::test::data_required())                                                        \
            FAIL() << "missing test data " << (::palu::test::data_root() / (rel))                 \
                   << " (PALU_TEST_DATA is set); point PALU_TEST_DATA at the shared data folder"; \
        GTEST_SKIP() << "needs " << (rel) << " under ../shared/data or $PALU_TEST_DATA";          \
    }                                                                                             \
    const std::filesystem::path var = *var##_opt

/// Declares `var` as the path of model file `rel` under the source tree (fetched by the command
/// `how`), or fails the test when CI=true / skips it otherwise, saying how to get the file.
#define PALU_REQUIRE_MODEL_FILE(var, rel, how)                                     \
    auto var##_opt = ::palu::test::find_model_file(rel);                           \
    if (!var##_opt) {                                                              \
        if (::palu::test::model_file_required())                                   \
            FAIL() << ::palu::test::missing_model_file_message(rel, how, true);    \
        GTEST_SKIP() << ::palu::test::missing_model_file_message(rel, how, false); \
    }                                                                              \
    const std::filesystem::path var = *var##_opt

/// Declares `var` as the path of the SmolLM2-135M-Instruct Q4_1 GGUF (scripts/get-smollm2.sh).
#define PALU_REQUIRE_SMOLLM2(var) \
    PALU_REQUIRE_MODEL_FILE(var, ::palu::test::kSmolLM2Gguf, "scripts/get-smollm2.sh")
