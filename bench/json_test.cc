#include "bench/json.h"

#include <gtest/gtest.h>

#include <cmath>
#include <string>

namespace syncpool_bench::json {
namespace {

// The shape of Google Benchmark's --benchmark_format=json output.
constexpr const char* kOutput = R"({
  "context": {"num_cpus": 2, "syncpool_bench_build": "opt", "caches": [{"size": 32768}]},
  "benchmarks": [
    {"name": "pair/pool_resource/64", "run_type": "iteration", "iterations": 1000,
     "real_time": 1.05e+01, "time_unit": "ns", "items_per_second": 9.5e7,
     "held_bytes": 65536, "error_occurred": false, "label": "a \"quoted\" \u00e9\\n"},
    {"name": "odd", "real_time": NaN, "cpu_time": -inf, "x": null, "list": []}
  ]
})";

TEST(JsonTest, ReadsGoogleBenchmarkOutput) {
  std::string error;
  const std::optional<value> doc = parse(kOutput, &error);
  ASSERT_TRUE(doc) << error;
  EXPECT_EQ(doc->find("context")->string_at("syncpool_bench_build"), "opt");
  EXPECT_EQ(doc->find("context")->number_at("num_cpus"), 2.0);
  const array* runs = doc->find("benchmarks")->as_array();
  ASSERT_NE(runs, nullptr);
  ASSERT_EQ(runs->size(), 2u);
  const value& run = (*runs)[0];
  EXPECT_EQ(run.string_at("name"), "pair/pool_resource/64");
  EXPECT_EQ(run.number_at("items_per_second"), 9.5e7);
  EXPECT_EQ(run.number_at("held_bytes"), 65536.0);
  EXPECT_FALSE(run.number_at("missing").has_value());
  ASSERT_NE(run.find("error_occurred")->boolean(), nullptr);
  EXPECT_FALSE(*run.find("error_occurred")->boolean());
  EXPECT_EQ(run.string_at("label"), "a \"quoted\" \xc3\xa9\\n");
  EXPECT_TRUE(std::isnan(*(*runs)[1].number_at("real_time")));
  EXPECT_TRUE(std::isinf(*(*runs)[1].number_at("cpu_time")));
  EXPECT_TRUE((*runs)[1].find("x")->is_null());
  EXPECT_TRUE((*runs)[1].find("list")->as_array()->empty());
}

TEST(JsonTest, RejectsMalformedInput) {
  for (const char* bad : {"", "{", "[1,]", "{\"a\" 1}", "[1] 2", "\"open", "{1: 2}"}) {
    std::string error;
    EXPECT_FALSE(parse(bad, &error)) << bad;
    EXPECT_FALSE(error.empty()) << bad;
  }
}

}  // namespace
}  // namespace syncpool_bench::json
