# Compiles one file and judges the result; run by ctest (tests/CMakeLists.txt).
#
#   cmake -DCXX=compiler -DFLAGS="-std=c++20|-Iinclude" -DSOURCE=file.cc
#         [-DEXPECT="text"] -P expect_compile_error.cmake
#
# With EXPECT: passes only if the compile fails AND its first error line
# contains EXPECT, so that an unrelated error (a missing include path, a typo
# in the case) cannot pass for the check. Without EXPECT: passes only if the
# file compiles. FLAGS are separated by '|' (CMake would split on ';').
foreach(var CXX FLAGS SOURCE)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "expect_compile_error.cmake: -D${var}=... is missing")
  endif()
endforeach()
string(REPLACE "|" ";" flags "${FLAGS}")
execute_process(COMMAND "${CXX}" ${flags} -fsyntax-only "${SOURCE}"
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)

if(NOT DEFINED EXPECT OR EXPECT STREQUAL "")
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${SOURCE} must compile, but:\n${out}")
  endif()
  return()
endif()

if(rc EQUAL 0)
  message(FATAL_ERROR "${SOURCE} compiled, but must fail with: ${EXPECT}")
endif()
string(REGEX MATCH "[^\n]*error:[^\n]*" first_error "${out}")
string(FIND "${first_error}" "${EXPECT}" at)
if(at EQUAL -1)
  message(FATAL_ERROR "${SOURCE}: the first error must contain \"${EXPECT}\", but it is:\n"
                      "${first_error}\n\nWhole output:\n${out}")
endif()
message(STATUS "${SOURCE}: fails as it must: ${first_error}")
