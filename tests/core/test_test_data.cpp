// palu tests: the model-file lookup of tests/support/test_data.h (PALU_REQUIRE_MODEL_FILE,
// PALU_REQUIRE_SMOLLM2): skip outside CI, fail when CI=true, saying how to get the file.
#include <gtest/gtest-spi.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <optional>
#include <string>

#include "test_data.h"

namespace palu::test {
namespace {

// Sets an environment variable for the scope, restoring the previous value (or its absence).
class ScopedEnv {
   public:
    ScopedEnv(const char* name, const char* value) : name_(name) {
        if (const char* old = std::getenv(name)) old_ = old;
        if (value)
            ::setenv(name, value, 1);
        else
            ::unsetenv(name);
    }
    ~ScopedEnv() {
        if (old_)
            ::setenv(name_.c_str(), old_->c_str(), 1);
        else
            ::unsetenv(name_.c_str());
    }

   private:
    std::string name_;
    std::optional<std::string> old_;
};

constexpr const char* kAbsent = "models/palu-test-absent/absent.gguf";

TEST(TestData, ModelFileRequired_OnlyWhenCiIsTrue) {
    EXPECT_TRUE(model_file_required("true"));
    EXPECT_FALSE(model_file_required(nullptr));
    EXPECT_FALSE(model_file_required(""));
    EXPECT_FALSE(model_file_required("false"));
    EXPECT_FALSE(model_file_required("1"));
    {
        ScopedEnv ci("CI", "true");
        EXPECT_TRUE(model_file_required());
    }
    {
        ScopedEnv ci("CI", nullptr);
        EXPECT_FALSE(model_file_required());
    }
}

TEST(TestData, FindModelFile_UnderSourceRoot) {
    EXPECT_EQ(find_model_file("tests/CMakeLists.txt"), source_root() / "tests/CMakeLists.txt");
    EXPECT_EQ(find_model_file(kAbsent), std::nullopt);
}

TEST(TestData, MissingModelFileMessage_SaysHowToGetIt) {
    const std::string fail =
        missing_model_file_message(kSmolLM2Gguf, "scripts/get-smollm2.sh", true);
    const std::string skip =
        missing_model_file_message(kSmolLM2Gguf, "scripts/get-smollm2.sh", false);
    const std::string path = (source_root() / kSmolLM2Gguf).string();
    EXPECT_EQ(fail, "missing model file " + path + " (CI=true); run scripts/get-smollm2.sh");
    EXPECT_EQ(skip, "needs model file " + path + "; run scripts/get-smollm2.sh");
}

// The macro's two outcomes for a missing file, observed through GoogleTest's result reporter.
void require_absent_model_file() {
    PALU_REQUIRE_MODEL_FILE(path, kAbsent, "scripts/get-absent.sh");
    ADD_FAILURE() << "found " << path;
}

TEST(TestData, RequireModelFile_MissingFailsUnderCi) {
    ScopedEnv ci("CI", "true");
    EXPECT_FATAL_FAILURE(require_absent_model_file(), "(CI=true); run scripts/get-absent.sh");
}

TEST(TestData, RequireModelFile_MissingSkipsOutsideCi) {
    ScopedEnv ci("CI", nullptr);
    ::testing::TestPartResultArray results;
    {
        ::testing::ScopedFakeTestPartResultReporter reporter(
            ::testing::ScopedFakeTestPartResultReporter::INTERCEPT_ONLY_CURRENT_THREAD, &results);
        require_absent_model_file();
    }
    ASSERT_EQ(results.size(), 1);
    EXPECT_TRUE(results.GetTestPartResult(0).skipped());
    EXPECT_NE(std::string(results.GetTestPartResult(0).message()).find("run scripts/get-absent.sh"),
              std::string::npos)
        << results.GetTestPartResult(0).message();
}

TEST(TestData, RequireModelFile_PresentGivesItsPath) {
    ScopedEnv ci("CI", "true");
    PALU_REQUIRE_MODEL_FILE(path, "tests/CMakeLists.txt", "git checkout");
    EXPECT_EQ(path, source_root() / "tests/CMakeLists.txt");
}

}  // namespace
}  // namespace palu::test
