// The umbrella header and the version macros.
//
//   ./bazelw test //tests:headers_test
//
// Only syncpool/syncpool.h is included: this file compiling is the test that
// it declares every public name. The version must be the same in
// syncpool/version.h, MODULE.bazel (read from the source root, where both
// `bazel test` and ctest run this test) and, under CMake, the project version
// (passed in as SYNCPOOL_CMAKE_PROJECT_VERSION).
//
// That pre-C++20 compiles stop at each header's #error is checked by CMake's
// compile_fail.cxx17_* tests (tests/CMakeLists.txt).

#include "syncpool/syncpool.h"

#include <chrono>
#include <fstream>
#include <memory>
#include <memory_resource>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace {

TEST(UmbrellaHeader, DeclaresEveryPublicName) {
  syncpool::pool<std::string> strings([] { return std::make_unique<std::string>("x"); });
  strings.put(strings.get());
  syncpool::pool_resource resource;
  std::pmr::vector<int> v({1, 2, 3}, &resource);
  syncpool::collector gc(std::chrono::hours(1));
  syncpool::flush_thread_cache();
  syncpool::collect();
  const syncpool::pool_stats s = strings.stats();
  const syncpool::pool_resource_stats rs = resource.stats();
  EXPECT_EQ(s.misses, 1u);
  EXPECT_GT(rs.total.misses, 0u);
  EXPECT_EQ(v.size(), 3u);
}

TEST(Version, MacrosAgreeWithEachOther) {
  const std::string dotted = std::to_string(SYNCPOOL_VERSION_MAJOR) + "." +
                             std::to_string(SYNCPOOL_VERSION_MINOR) + "." +
                             std::to_string(SYNCPOOL_VERSION_PATCH);
  EXPECT_EQ(SYNCPOOL_VERSION_STRING, dotted);
  EXPECT_EQ(SYNCPOOL_VERSION,
            SYNCPOOL_VERSION_MAJOR * 10000 + SYNCPOOL_VERSION_MINOR * 100 + SYNCPOOL_VERSION_PATCH);
  static_assert(SYNCPOOL_VERSION_MINOR < 100 && SYNCPOOL_VERSION_PATCH < 100,
                "SYNCPOOL_VERSION packs MINOR and PATCH into two digits each");
}

TEST(Version, MatchesTheBazelModule) {
  std::ifstream in("MODULE.bazel");
  ASSERT_TRUE(in) << "MODULE.bazel not found in the working directory";
  std::stringstream text;
  text << in.rdbuf();
  const std::string module = text.str();
  std::smatch m;
  ASSERT_TRUE(std::regex_search(
      module, m, std::regex(R"re(module\(\s*name\s*=\s*"syncpool"\s*,\s*version\s*=\s*"([^"]*)")re")))
      << "no module(name = \"syncpool\", version = ...) in MODULE.bazel";
  EXPECT_EQ(m[1].str(), SYNCPOOL_VERSION_STRING);
}

#ifdef SYNCPOOL_CMAKE_PROJECT_VERSION
TEST(Version, MatchesTheCMakeProject) {
  EXPECT_STREQ(SYNCPOOL_CMAKE_PROJECT_VERSION, SYNCPOOL_VERSION_STRING);
}
#endif

}  // namespace
