// A program that uses an installed syncpool: built by CMake (find_package)
// and by pkg-config in CI. Prints the version it was compiled against, which
// CI compares with `pkg-config --modversion syncpool`; exits 0 when the pool
// reused its object.

#include <cstdio>
#include <memory>
#include <string>

#include "syncpool/syncpool.h"

int main() {
  syncpool::pool<std::string> buffers([] { return std::make_unique<std::string>(); },
                                      {.reset = [](std::string& s) { s.clear(); }});
  std::string* first = nullptr;
  {
    auto buf = buffers.borrow();
    buf->append("hello");
    first = buf.get();
  }
  auto again = buffers.borrow();
  std::printf("%s\n", SYNCPOOL_VERSION_STRING);
  return again.get() == first && again->empty() ? 0 : 1;
}
