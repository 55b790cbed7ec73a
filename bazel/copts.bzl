"""Compiler flags shared by syncpool's own targets."""

# Our code is warning-clean with g++ 12 and clang 14; keep it that way.
SYNCPOOL_COPTS = [
    "-Wall",
    "-Wextra",
    "-Werror",
]
