// Unit test of the training GELU core (csrc/core/gelu.cc), built with AddressSanitizer
// and UBSan by `make sanitize`: buffers of exactly their size from 0 elements up, the
// forward and backward against double-precision erf and exp, and the extremes (capped
// arguments, infinities, NaN).
#include <cmath>
#include <cstdio>
#include <limits>
#include <random>
#include <vector>

#include "core/gelu.h"
#include "tests/check.h"

namespace {

double Cdf(double x) { return 0.5 * (1.0 + std::erf(x / std::sqrt(2.0))); }
double Density(double x) { return std::exp(-0.5 * x * x) / std::sqrt(2.0 * M_PI); }

void CheckAgainstReference(const std::vector<float>& x) {
  const size_t n = x.size();
  std::vector<float> y(n), dy(n, 1.0f), dx(n);
  kbf::GeluForward(x.data(), y.data(), static_cast<int64_t>(n));
  kbf::GeluBackward(dy.data(), x.data(), dx.data(), static_cast<int64_t>(n));
  for (size_t i = 0; i < n; ++i) {
    const double want_y = x[i] * Cdf(x[i]);
    const double want_dx = Cdf(x[i]) + x[i] * Density(x[i]);
    CHECK(std::fabs(y[i] - want_y) <= 2e-7 * (1.0 + std::fabs(x[i])));
    CHECK(std::fabs(dx[i] - want_dx) <= 1e-6);
  }
}

}  // namespace

int main() {
  std::mt19937_64 rng(3);
  std::normal_distribution<float> normal(0.0f, 4.0f);
  for (size_t n : {0, 1, 3, 7, 8, 17, 1000}) {
    std::vector<float> x(n);
    for (float& f : x) f = normal(rng);
    CheckAgainstReference(x);
  }
  std::vector<float> grid;
  for (int i = -3000; i <= 3000; ++i) grid.push_back(static_cast<float>(i) / 100.0f);
  CheckAgainstReference(grid);
  CheckAgainstReference({0.0f, -0.0f, 1e-30f, -1e-8f, 11.99f, 12.0f, 12.01f, 1e4f, -1e4f});
  const float inf = std::numeric_limits<float>::infinity();
  std::vector<float> extremes = {inf, -inf, std::numeric_limits<float>::quiet_NaN()};
  std::vector<float> y(3);
  kbf::GeluForward(extremes.data(), y.data(), 3);
  CHECK(y[0] == inf);
  CHECK(std::isnan(y[2]));  // NaN in, NaN out (-inf * 0 is NaN too, as in TensorFlow)
  std::printf("gelu_test: %s\n", kbf_test::failures == 0 ? "OK" : "FAILED");
  return kbf_test::failures == 0 ? 0 : 1;
}
