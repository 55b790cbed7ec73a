// syncpool/internal/config.h
//
// Included first by every public header, so that a compile without C++20
// stops with one message that says what is missing, before the first
// `constinit` or `requires` turns into dozens of unrelated errors.

#ifndef SYNCPOOL_INTERNAL_CONFIG_H_
#define SYNCPOOL_INTERNAL_CONFIG_H_

// MSVC keeps __cplusplus at 199711L unless /Zc:__cplusplus is given;
// _MSVC_LANG always holds the language version there.
#if defined(_MSVC_LANG)
#define SYNCPOOL_INTERNAL_CPLUSPLUS _MSVC_LANG
#else
#define SYNCPOOL_INTERNAL_CPLUSPLUS __cplusplus
#endif

// Anything newer than C++17 passes: early C++20 modes (g++ 10's -std=c++2a
// says 201709L) have what syncpool uses.
#if SYNCPOOL_INTERNAL_CPLUSPLUS <= 201703L
#error "syncpool needs C++20 (-std=c++20)"
#endif

#endif  // SYNCPOOL_INTERNAL_CONFIG_H_
