#include "bench/options.h"

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "bench/temp_dir_test_base.h"

namespace syncpool_bench {
namespace {

std::string parse(std::vector<std::string> args, options* opts) { return parse_args(args, opts); }

TEST(OptionsTest, Defaults) {
  options opts;
  ASSERT_EQ(parse({}, &opts), "");
  EXPECT_FALSE(opts.quick);
  EXPECT_EQ(opts.effective_repetitions(), 3);
  EXPECT_TRUE(opts.effective_warmup());
  EXPECT_DOUBLE_EQ(opts.effective_min_time(), 0.15);
}

TEST(OptionsTest, QuickIsOneShortRunWithoutWarmup) {
  options opts;
  ASSERT_EQ(parse({"--quick", "--out", "x"}, &opts), "");
  EXPECT_TRUE(opts.quick);
  EXPECT_EQ(opts.out_dir, "x");
  EXPECT_EQ(opts.effective_repetitions(), 1);
  EXPECT_FALSE(opts.effective_warmup());
  EXPECT_DOUBLE_EQ(opts.effective_min_time(), 0.01);
}

TEST(OptionsTest, ValuesInlineOrSeparate) {
  options opts;
  ASSERT_EQ(parse({"--threads=8", "--repetitions", "5", "--min-time=0.5", "--filter=pair|batch",
                   "--no-warmup"},
                  &opts),
            "");
  EXPECT_EQ(opts.threads, 8);
  EXPECT_EQ(opts.effective_repetitions(), 5);
  EXPECT_DOUBLE_EQ(opts.effective_min_time(), 0.5);
  EXPECT_EQ(opts.filter, "pair|batch");
  EXPECT_FALSE(opts.effective_warmup());
}

TEST(OptionsTest, ThreadsOutOfRangeStatesTheRealLimit) {
  for (const char* bad : {"0", "-1", "abc", "2x", "1025", "99999999999"}) {
    options opts;
    const std::string error = parse({"--threads", bad}, &opts);
    EXPECT_NE(error.find("from 1 to " + std::to_string(kMaxThreads)), std::string::npos)
        << bad << ": " << error;
    EXPECT_NE(error.find(bad), std::string::npos) << error;
  }
  options opts;
  EXPECT_EQ(parse({"--threads", std::to_string(kMaxThreads)}, &opts), "");
  EXPECT_EQ(opts.threads, kMaxThreads);
}

TEST(OptionsTest, BadArguments) {
  options opts;
  EXPECT_EQ(parse({"--bogus"}, &opts), "unknown argument --bogus");
  EXPECT_EQ(parse({"--out"}, &opts), "--out needs a value");
  EXPECT_EQ(parse({"--out="}, &opts), "--out needs a value");
  EXPECT_EQ(parse({"--quick=1"}, &opts), "--quick takes no value");
  EXPECT_NE(parse({"--repetitions", "0"}, &opts), "");
  EXPECT_NE(parse({"--min-time", "-1"}, &opts), "");
  EXPECT_NE(parse({"--min-time", "fast"}, &opts), "");
  EXPECT_EQ(parse({"--readme", "README.md"}, &opts), "--readme needs --out");
  options quick;
  EXPECT_NE(parse({"--quick", "--out", "x", "--readme", "README.md"}, &quick), "");
}

using OutDirTest = temp_dir_test;

TEST_F(OutDirTest, CreatesMissingDirectoriesAndLeavesNoProbe) {
  const std::filesystem::path dir = root_ / "a" / "b" / "c";
  EXPECT_EQ(prepare_out_dir(dir.string()), "");
  EXPECT_TRUE(std::filesystem::is_directory(dir));
  EXPECT_TRUE(std::filesystem::is_empty(dir));
  EXPECT_EQ(prepare_out_dir(dir.string() + "/"), "");  // exists already
}

TEST_F(OutDirTest, ProcFailsFastWithTheSystemsReason) {
  const auto start = std::chrono::steady_clock::now();
  const std::string error = prepare_out_dir("/proc/nope");
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(1));
  EXPECT_EQ(error.rfind("/proc/nope: ", 0), 0u) << error;
  EXPECT_NE(error.find("cannot create directory"), std::string::npos) << error;
}

TEST_F(OutDirTest, ARegularFileIsNoDirectory) {
  const std::filesystem::path file = root_ / "file";
  std::ofstream(file) << "x";
  const std::string expected = file.string() + ": Not a directory (a file of that name exists)";
  EXPECT_EQ(prepare_out_dir(file.string()), expected);
  EXPECT_EQ(prepare_out_dir((file / "sub").string()), expected);
}

}  // namespace
}  // namespace syncpool_bench
