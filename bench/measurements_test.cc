#include "bench/measurements.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <regex>
#include <string>
#include <utility>
#include <vector>

namespace syncpool_bench {
namespace {

TEST(MeasurementsTest, NamesSayWorkloadAllocatorAndColumn) {
  benchmark_id id;
  ASSERT_TRUE(parse_benchmark_name("pair/pool_resource/64", &id));
  EXPECT_EQ(id.workload, "pair");
  EXPECT_EQ(id.allocator, "pool_resource");
  EXPECT_EQ(id.param, "64");
  EXPECT_EQ(id.threads, 1);

  ASSERT_TRUE(parse_benchmark_name("threads/malloc_free_glibc/real_time/threads:16", &id));
  EXPECT_EQ(id.allocator, "malloc_free_glibc");
  EXPECT_EQ(id.param, "16");
  EXPECT_EQ(id.threads, 16);

  ASSERT_TRUE(parse_benchmark_name("prodcons/pool_resource/mixed/real_time/threads:2", &id));
  EXPECT_EQ(id.param, "mixed");
  EXPECT_EQ(id.threads, 2);

  ASSERT_TRUE(parse_benchmark_name("idle/pool_resource/64/iterations:1/real_time", &id));
  EXPECT_EQ(id.param, "64");

  EXPECT_FALSE(parse_benchmark_name("pair", &id));
  EXPECT_FALSE(parse_benchmark_name("pair/", &id));
}

TEST(MeasurementsTest, OneThreadBenchmarksAreThoseThatStartNoThreads) {
  const auto one = [](const std::string& name) {
    benchmark_id id;
    EXPECT_TRUE(parse_benchmark_name(name, &id)) << name;
    return runs_on_one_thread(id);
  };
  EXPECT_TRUE(one("pair/pool_resource/64"));
  EXPECT_TRUE(one("batch/malloc_free_tcmalloc/lifo"));
  EXPECT_TRUE(one("resources/pool_resource/1000"));
  EXPECT_TRUE(one("threads/pool_resource/real_time/threads:1"));
  EXPECT_TRUE(one("server/new_delete_glibc/real_time/threads:1"));
  EXPECT_FALSE(one("threads/pool_resource/real_time/threads:2"));
  EXPECT_FALSE(one("churn/pool_resource/2/real_time"));
  EXPECT_FALSE(one("idle/pool_resource/64/iterations:1/real_time"));
  EXPECT_FALSE(one("prodcons/pool_resource/64/real_time/threads:2"));
}

TEST(MeasurementsTest, MedianMinMax) {
  const spread odd = median_min_max({5, 1, 3});
  EXPECT_EQ(odd.median, 3);
  EXPECT_EQ(odd.min, 1);
  EXPECT_EQ(odd.max, 5);
  const spread even = median_min_max({4, 1, 2, 10});
  EXPECT_EQ(even.median, 3);
  EXPECT_EQ(even.min, 1);
  EXPECT_EQ(even.max, 10);
  EXPECT_EQ(median_min_max({7}).median, 7);
  EXPECT_TRUE(std::isnan(median_min_max({}).median));
}

record run(const std::string& name, int repetition, double ns_per_op, double iterations = 1000) {
  record r;
  r.set("kind", "run");
  r.set("name", name);
  r.set("repetition", repetition);
  r.set("iterations", iterations);
  r.set("real_time_ns", ns_per_op * 2);
  r.set("counter.items_per_second", 1e9 / ns_per_op);
  return r;
}

benchmark_id id_of(const std::string& name) {
  benchmark_id id;
  EXPECT_TRUE(parse_benchmark_name(name, &id));
  return id;
}

TEST(MeasurementsTest, WarmupLeftOutThenMedianWithMinAndMax) {
  const std::string name = "pair/pool_resource/64";
  record other = run("pair/other/64", 1, 1.0);
  const std::vector<record> records = {run(name, 0, 100.0), run(name, 1, 12.0, 900),
                                       run(name, 2, 10.0, 1000), run(name, 3, 11.0, 1100), other};
  const result r = summarize_runs(id_of(name), "glibc", records, /*warmup=*/1);
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.repetitions, 3);
  EXPECT_DOUBLE_EQ(r.ns_per_op, 11.0);
  EXPECT_DOUBLE_EQ(r.ns_min, 10.0);
  EXPECT_DOUBLE_EQ(r.ns_max, 12.0);
  EXPECT_EQ(r.iterations, 1100);  // the repetition at the median
  EXPECT_EQ(r.binary, "glibc");

  const result all = summarize_runs(id_of(name), "glibc", records, /*warmup=*/0);
  EXPECT_EQ(all.repetitions, 4);
  EXPECT_DOUBLE_EQ(all.ns_max, 100.0);
}

TEST(MeasurementsTest, ErrorsLimitsAndMissingRuns) {
  const std::string name = "resources/synchronized_pool/10000/iterations:1";
  record failed = run(name, 0, 1.0);
  failed.set("error", "limit: stopped at 1024 live instances");
  const result limit = summarize_runs(id_of(name), "glibc", {failed}, 0);
  EXPECT_FALSE(limit.ok());
  EXPECT_TRUE(limit.limit);
  EXPECT_FALSE(limit.failed());

  failed.set("error", "segfault");
  const result error = summarize_runs(id_of(name), "glibc", {failed}, 0);
  EXPECT_TRUE(error.failed());

  EXPECT_TRUE(summarize_runs(id_of(name), "glibc", {}, 0).failed());
  // Only a warm-up ran.
  EXPECT_TRUE(summarize_runs(id_of(name), "glibc", {run(name, 0, 1.0)}, 1).failed());

  record no_items;
  no_items.set("kind", "run");
  no_items.set("name", name);
  no_items.set("repetition", 0);
  EXPECT_TRUE(summarize_runs(id_of(name), "glibc", {no_items}, 0).failed());
}

TEST(MeasurementsTest, EveryRowOfAColumnRunsTheMedianIterationsInItsMemoryRun) {
  const auto make = [](std::string allocator, std::string param, int threads, double iterations,
                       std::string error = "") {
    result r;
    r.workload = "prodcons";
    r.allocator = std::move(allocator);
    r.param = std::move(param);
    r.threads = threads;
    r.iterations = iterations;  // summed over the threads, as reported
    r.error = std::move(error);
    return r;
  };
  const std::vector<result> results = {
      make("pool_resource", "64", 2, 2000),
      make("synchronized_pool", "64", 2, 200),  // slow: 100 per thread
      make("malloc_free_glibc", "64", 2, 600),
      make("broken", "64", 2, 1e9, "segfault"),  // not counted
      make("pool_resource", "mixed", 2, 80),
      make("pool_resource", "mixed", 1, 0.5),  // at least 1
  };
  const std::map<std::string, long> it = memory_run_iterations(results);
  ASSERT_EQ(it.size(), 3u);
  EXPECT_EQ(it.at(column_key(results[0])), 300);  // median of 1000, 100, 300
  EXPECT_EQ(it.at(column_key(results[1])), 300);
  EXPECT_EQ(it.at(column_key(results[4])), 40);
  EXPECT_EQ(it.at(column_key(results[5])), 1);
  EXPECT_NE(column_key(results[4]), column_key(results[5]));
}

TEST(MeasurementsTest, AMemoryRunLastsAsLongAsItsShareOfTheTimedRun) {
  result r;
  r.workload = "prodcons";
  r.allocator = "synchronized_pool";
  r.param = "64";
  r.threads = 2;
  r.iterations = 200;  // 100 per thread in about min_time
  // The column's median row ran 1,000 per thread: ten times the work.
  EXPECT_DOUBLE_EQ(memory_run_seconds(r, 1000, 0.5), 5.0);
  EXPECT_DOUBLE_EQ(memory_run_seconds(r, 50, 0.5), 0.25);
  r.error = "segfault";
  EXPECT_EQ(memory_run_seconds(r, 1000, 0.5), 0);
}

TEST(MeasurementsTest, MemoryRunFilterMatchesTheFixedIterationName) {
  const auto matches = [](const std::string& name, const std::string& renamed) {
    return std::regex_search(renamed, std::regex(memory_run_filter(name), std::regex::extended));
  };
  EXPECT_TRUE(matches("pair/pool_resource/64", "pair/pool_resource/64/iterations:123"));
  EXPECT_FALSE(matches("pair/pool_resource/64", "pair/pool_resource/640/iterations:123"));
  EXPECT_FALSE(matches("pair/pool_resource/64", "pair/pool_resource_mimalloc/64/iterations:1"));
  EXPECT_TRUE(matches("threads/pool_resource/real_time/threads:2",
                      "threads/pool_resource/iterations:77/real_time/threads:2"));
  EXPECT_FALSE(matches("threads/pool_resource/real_time/threads:2",
                       "threads/pool_resource/iterations:77/real_time/threads:16"));
  EXPECT_TRUE(matches("idle/pool_resource/64/iterations:1/real_time",
                      "idle/pool_resource/64/iterations:1/real_time"));
}

TEST(MeasurementsTest, MemoryCountersComeFromTheMemoryRun) {
  result r;
  record mem = run("x/y/iterations:5", 0, 1.0);
  mem.set("counter.peak_rss_kib", 2048);
  mem.set("counter.held_collected_bytes", 0);
  mem.set("counter.rss_per_resource_kib", 47.5);
  take_memory_counters({mem}, &r);
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(r.peak_rss_kib, 2048);
  EXPECT_EQ(r.held_collected_bytes, 0);
  EXPECT_EQ(r.rss_per_resource_kib, 47.5);
  EXPECT_FALSE(r.held_bytes.has_value());

  result missing;
  take_memory_counters({}, &missing);
  EXPECT_TRUE(missing.failed());
}

}  // namespace
}  // namespace syncpool_bench
