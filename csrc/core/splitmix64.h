// SplitMix64: a tiny 64-bit generator, the same on every platform. Its output for
// state s + k * 0x9E3779B97F4A7C15 depends on (s, k) only, which makes it a counter
// hash as well (the masking draws per row, the training dropout per element).
#pragma once

#include <cstdint>

namespace kbf {

class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t state) : state_(state) {}
  uint64_t Next() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }
  // Uniform in [0, 1) with 53 bits.
  double Uniform() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }
  // Uniform in [0, n) for n > 0 (the modulo bias is below 2^-40 for n < 2^24).
  uint64_t Below(uint64_t n) { return Next() % n; }

 private:
  uint64_t state_;
};

}  // namespace kbf
