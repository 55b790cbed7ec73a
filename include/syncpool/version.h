// syncpool/version.h
//
// syncpool's version, for code that must know which release it builds
// against. The same number is the CMake package version (CMakeLists.txt
// reads it from this file) and the Bazel module version (MODULE.bazel;
// tests/headers_test.cc checks that the two agree).
//
// Guarantees: SYNCPOOL_VERSION grows with every release, so it can be
// compared in #if.
//
// NOT guaranteed: any API stability before 1.0.0.
//
// Example:
//
//   #include "syncpool/version.h"
//   #if SYNCPOOL_VERSION < 100  // older than 0.1.0
//   #error "needs syncpool 0.1.0 or newer"
//   #endif

#ifndef SYNCPOOL_VERSION_H_
#define SYNCPOOL_VERSION_H_

#include "syncpool/internal/config.h"

#define SYNCPOOL_VERSION_MAJOR 0
#define SYNCPOOL_VERSION_MINOR 1
#define SYNCPOOL_VERSION_PATCH 0

// MAJOR * 10000 + MINOR * 100 + PATCH.
#define SYNCPOOL_VERSION \
  (SYNCPOOL_VERSION_MAJOR * 10000 + SYNCPOOL_VERSION_MINOR * 100 + SYNCPOOL_VERSION_PATCH)

// "MAJOR.MINOR.PATCH".
#define SYNCPOOL_VERSION_STRING                                                  \
  SYNCPOOL_INTERNAL_STR(SYNCPOOL_VERSION_MAJOR)                                  \
  "." SYNCPOOL_INTERNAL_STR(SYNCPOOL_VERSION_MINOR) "." SYNCPOOL_INTERNAL_STR( \
      SYNCPOOL_VERSION_PATCH)

#define SYNCPOOL_INTERNAL_STR(x) SYNCPOOL_INTERNAL_STR2(x)
#define SYNCPOOL_INTERNAL_STR2(x) #x

#endif  // SYNCPOOL_VERSION_H_
