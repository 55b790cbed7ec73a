#include "bench/records.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>

namespace syncpool_bench {
namespace {

TEST(RecordsTest, LineRoundTripsTextAndExactNumbers) {
  record r;
  r.set("kind", "run");
  r.set("name", "threads/pool_resource/real_time/threads:2");
  r.set("real_time_ns", 0.1 + 0.2);
  r.set("counter.items_per_second", 1.2345678901234567e8);
  r.set("note", "a=b c");
  const record back = record::from_line(r.line());
  EXPECT_EQ(back.text("kind"), "run");
  EXPECT_EQ(back.text("name"), "threads/pool_resource/real_time/threads:2");
  EXPECT_EQ(back.number("real_time_ns"), 0.1 + 0.2);
  EXPECT_EQ(back.number("counter.items_per_second"), 1.2345678901234567e8);
  EXPECT_EQ(back.text("note"), "a=b c");
  EXPECT_EQ(back.fields(), r.fields());
}

TEST(RecordsTest, TabsAndLineBreaksInValuesBecomeSpaces) {
  record r;
  r.set("error", "line one\nline\ttwo\r");
  const std::string line = r.line();
  EXPECT_EQ(line.find('\n'), std::string::npos);
  EXPECT_EQ(record::from_line(line).text("error"), "line one line two ");
}

TEST(RecordsTest, MissingAndNonNumericFields) {
  const record r = record::from_line("kind=run\tn=12x\tempty=\tnoequals\t=novalue");
  EXPECT_EQ(r.text("kind"), "run");
  EXPECT_EQ(r.text("absent"), "");
  EXPECT_FALSE(r.number("absent").has_value());
  EXPECT_FALSE(r.number("n").has_value());
  EXPECT_FALSE(r.number("empty").has_value());
  EXPECT_FALSE(r.number("kind").has_value());
  EXPECT_EQ(r.fields().size(), 3u);  // kind, n, empty
}

TEST(RecordsTest, NonFiniteNumbersSurvive) {
  record r;
  r.set("nan", std::numeric_limits<double>::quiet_NaN());
  r.set("inf", std::numeric_limits<double>::infinity());
  const record back = record::from_line(r.line());
  ASSERT_TRUE(back.number("nan").has_value());
  EXPECT_TRUE(std::isnan(*back.number("nan")));
  EXPECT_EQ(back.number("inf"), std::numeric_limits<double>::infinity());
}

TEST(RecordsTest, ReadsOneRecordPerNonEmptyLine) {
  const std::vector<record> records =
      read_records("kind=context\tmalloc=glibc\n\nkind=run\tname=a\nkind=run\tname=b");
  ASSERT_EQ(records.size(), 3u);
  EXPECT_EQ(records[0].text("malloc"), "glibc");
  EXPECT_EQ(records[1].text("name"), "a");
  EXPECT_EQ(records[2].text("name"), "b");
  EXPECT_TRUE(read_records("").empty());
}

}  // namespace
}  // namespace syncpool_bench
