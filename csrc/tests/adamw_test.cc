// Unit test of the one-pass AdamW core (csrc/core/adamw.cc), built with AddressSanitizer
// and UBSan by `make sanitize`. Every buffer is exactly its size, so a read or write past
// it is an ASan report. The dense update is checked against a double-precision
// reference, the row update against the dense one with the gradient scattered (it must
// be the same bits, however the rows are split), and out-of-range row indices must be
// refused with their position.
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "core/adamw.h"
#include "tests/check.h"

namespace {

std::vector<float> Normal(std::mt19937_64& rng, size_t n, float scale) {
  std::normal_distribution<float> normal(0.0f, scale);
  std::vector<float> v(n);
  for (float& f : v) f = normal(rng);
  return v;
}

kbf::AdamWStep Step(float decay, float scale) {
  return {1e-2f, 0.9f * 0.9f, 0.999f * 0.999f, 0.9f, 0.999f, 1e-6f, decay, scale};
}

// Splits [0, n) at random points, as a thread pool might.
template <typename F>
void InRandomParts(std::mt19937_64& rng, int64_t n, F run) {
  int64_t begin = 0;
  while (begin < n) {
    const int64_t end = std::min(n, begin + 1 + static_cast<int64_t>(rng() % 7));
    run(begin, end);
    begin = end;
  }
}

void CheckDenseAgainstReference(std::mt19937_64& rng, int64_t n, float decay, float scale) {
  const auto grad = Normal(rng, n, 1.0f);
  auto var = Normal(rng, n, 1.0f);
  auto m = Normal(rng, n, 0.1f);
  auto v = Normal(rng, n, 0.01f);
  for (float& x : v) x = std::fabs(x);
  const auto var0 = var, m0 = m, v0 = v;
  const kbf::AdamWStep s = Step(decay, scale);
  InRandomParts(rng, n, [&](int64_t b, int64_t e) {
    kbf::AdamWDense(s, grad.data(), var.data(), m.data(), v.data(), b, e);
  });
  const double step_size = 1e-2 * std::sqrt(1.0 - s.beta2_power) / (1.0 - s.beta1_power);
  for (int64_t i = 0; i < n; ++i) {
    const double g = static_cast<double>(grad[i]) * scale;
    const double mi = m0[i] + (g - m0[i]) * (1.0 - 0.9);
    const double vi = v0[i] + (g * g - v0[i]) * (1.0 - 0.999);
    const double x = var0[i] * (1.0 - decay) - mi * step_size / (std::sqrt(vi) + 1e-6);
    CHECK(std::fabs(m[i] - mi) <= 1e-6 * (1.0 + std::fabs(mi)));
    CHECK(std::fabs(v[i] - vi) <= 1e-6 * (1.0 + std::fabs(vi)));
    CHECK(std::fabs(var[i] - x) <= 1e-5 * (1.0 + std::fabs(x)));
  }
}

void CheckRowsEqualDense(std::mt19937_64& rng, int64_t rows, int64_t width, int64_t count) {
  std::vector<int64_t> indices(count);
  for (int64_t& i : indices) i = static_cast<int64_t>(rng() % static_cast<uint64_t>(rows));
  const auto values = Normal(rng, static_cast<size_t>(count * width), 1.0f);
  std::vector<float> dense(static_cast<size_t>(rows * width), 0.0f);
  for (int64_t k = 0; k < count; ++k) {
    for (int64_t j = 0; j < width; ++j) dense[indices[k] * width + j] += values[k * width + j];
  }
  auto var = Normal(rng, dense.size(), 1.0f);
  auto m = Normal(rng, dense.size(), 0.1f);
  auto v = Normal(rng, dense.size(), 0.01f);
  for (float& x : v) x = std::fabs(x);
  auto var2 = var, m2 = m, v2 = v;
  const kbf::AdamWStep s = Step(1e-3f, 0.7f);
  kbf::RowGradient gradient;
  int64_t bad = -1;
  CHECK(kbf::SumRowsByIndex(indices.data(), count, values.data(), width, rows, &gradient, &bad));
  InRandomParts(rng, rows, [&](int64_t b, int64_t e) {
    kbf::AdamWRows(s, gradient, width, var.data(), m.data(), v.data(), b, e);
  });
  kbf::AdamWDense(s, dense.data(), var2.data(), m2.data(), v2.data(), 0,
                  static_cast<int64_t>(dense.size()));
  CHECK(var == var2);
  CHECK(m == m2);
  CHECK(v == v2);
}

void CheckOutOfRangeIndices() {
  const std::vector<float> values(6, 1.0f);
  kbf::RowGradient gradient;
  int64_t bad = -1;
  const std::vector<int64_t> high = {0, 1, 4};
  CHECK(!kbf::SumRowsByIndex(high.data(), 3, values.data(), 2, 4, &gradient, &bad));
  CHECK(bad == 2);
  const std::vector<int64_t> negative = {-1, 0, 1};
  CHECK(!kbf::SumRowsByIndex(negative.data(), 3, values.data(), 2, 4, &gradient, &bad));
  CHECK(bad == 0);
  CHECK(kbf::SumRowsByIndex(high.data(), 0, values.data(), 2, 4, &gradient, &bad));
  CHECK(gradient.summed.empty() && gradient.slot.size() == 4);
}

void CheckSumOfSquares(std::mt19937_64& rng) {
  for (int64_t n : {0, 1, 3, 4, 5, 1000, 65537}) {
    const auto x = Normal(rng, static_cast<size_t>(n), 2.0f);
    double want = 0.0;
    for (float f : x) want += static_cast<double>(f) * f;
    const double got = kbf::SumOfSquares(x.data(), n);
    CHECK(std::fabs(got - want) <= 1e-12 * (1.0 + want));
  }
}

}  // namespace

int main() {
  std::mt19937_64 rng(7);
  for (int64_t n : {1, 2, 3, 7, 64, 1001}) {
    CheckDenseAgainstReference(rng, n, 0.0f, 1.0f);
    CheckDenseAgainstReference(rng, n, 1e-3f, 0.3f);
  }
  for (int64_t rows : {1, 5, 33}) {
    for (int64_t width : {1, 3, 16}) {
      for (int64_t count : {0, 1, 9, 40}) CheckRowsEqualDense(rng, rows, width, count);
    }
  }
  CheckOutOfRangeIndices();
  CheckSumOfSquares(rng);
  std::printf("adamw_test: %s\n", kbf_test::failures == 0 ? "OK" : "FAILED");
  return kbf_test::failures == 0 ? 0 : 1;
}
