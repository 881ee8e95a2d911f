// The check of the C++ unit tests: CHECK(cond) reports a false condition with its file
// and line and counts it in kbf_test::failures (atomic: some tests check from threads);
// each test's main returns non-zero when any check failed.
#pragma once

#include <atomic>
#include <cstdio>

namespace kbf_test {
inline std::atomic<int> failures{0};
}  // namespace kbf_test

#define CHECK(cond)                                                                 \
  do {                                                                              \
    if (!(cond)) {                                                                  \
      std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      ++kbf_test::failures;                                                         \
    }                                                                               \
  } while (0)
