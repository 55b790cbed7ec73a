// Replays the fuzzer's checked-in corpus (tests/fuzz/corpus/) through the
// fuzz target, as an ordinary test of the suite: plain, under ASan and
// under TSan. A broken invariant aborts; the handler below names the input
// that did it first.

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <system_error>
#include <vector>

#include "gtest/gtest.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size);

namespace {

constexpr const char* kCorpus = "tests/fuzz/corpus";

std::string g_current;  // the input being replayed, for the crash handler

void name_the_input(int sig) {
  const char* prefix = "\nreplay_test: crashed on corpus input ";
  (void)!write(2, prefix, std::strlen(prefix));
  (void)!write(2, g_current.data(), g_current.size());
  (void)!write(2, "\n", 1);
  signal(sig, SIG_DFL);
  raise(sig);
}

TEST(FuzzCorpus, EveryInputKeepsEveryInvariant) {
  std::error_code ec;
  std::vector<std::filesystem::path> paths;
  for (const auto& entry : std::filesystem::directory_iterator(kCorpus, ec)) paths.push_back(entry.path());
  ASSERT_FALSE(ec) << kCorpus << ": " << ec.message();
  ASSERT_GE(paths.size(), 100u) << "the corpus is missing or was truncated";
  std::sort(paths.begin(), paths.end());
  signal(SIGABRT, name_the_input);
  signal(SIGSEGV, name_the_input);
  for (const auto& path : paths) {
    g_current = path.string();
    std::ifstream in(path, std::ios::binary);
    ASSERT_TRUE(in) << path;
    const std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    EXPECT_EQ(LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()), 0) << path;
  }
  signal(SIGABRT, SIG_DFL);
  signal(SIGSEGV, SIG_DFL);
  std::printf("replayed %zu corpus inputs\n", paths.size());
}

}  // namespace
