// bench/temp_dir_test_base.h
//
// syncpool_bench::temp_dir_test: a GoogleTest fixture with a fresh
// directory of its own, under Bazel's TEST_TMPDIR, removed after the test.

#ifndef SYNCPOOL_BENCH_TEMP_DIR_TEST_BASE_H_
#define SYNCPOOL_BENCH_TEMP_DIR_TEST_BASE_H_

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>

namespace syncpool_bench {

class temp_dir_test : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* tmp = std::getenv("TEST_TMPDIR");
    const ::testing::TestInfo* test = ::testing::UnitTest::GetInstance()->current_test_info();
    root_ = std::filesystem::path(tmp != nullptr ? tmp : "/tmp") /
            (std::string(test->name()) + "." + std::to_string(getpid()));
    std::filesystem::create_directories(root_);
  }
  void TearDown() override { std::filesystem::remove_all(root_); }

  std::filesystem::path root_;
};

}  // namespace syncpool_bench

#endif  // SYNCPOOL_BENCH_TEMP_DIR_TEST_BASE_H_
