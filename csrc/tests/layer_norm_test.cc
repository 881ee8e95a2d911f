// Unit test of the fused training LayerNorm core (csrc/core/layer_norm.cc), built with
// AddressSanitizer and UBSan by `make sanitize`. Every shape from 1 x 1 up, rows not a
// multiple of the block size, split into parts at random as the op's thread pool would:
// each buffer is exactly its size, so a read or write past it is an ASan report. The
// results are checked against a plain double-precision reference and must not depend on
// the split.
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "core/layer_norm.h"
#include "tests/check.h"

namespace {

struct Case {
  int64_t rows, width;
  float rate;
  std::vector<float> residual, x, gamma, beta, dy;
};

Case Random(std::mt19937_64& rng, int64_t rows, int64_t width, float rate) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  auto fill = [&](size_t n, float mean, float scale) {
    std::vector<float> v(n);
    for (float& f : v) f = mean + scale * normal(rng);
    return v;
  };
  const size_t n = static_cast<size_t>(rows * width);
  return {rows, width, rate, fill(n, 0, 1), fill(n, 0, 1), fill(width, 1, 0.2f),
          fill(width, 0, 0.2f), fill(n, 0, 1)};
}

// Runs [0, parts) split at random points, as a thread pool might split them.
template <typename F>
void InRandomParts(std::mt19937_64& rng, int64_t parts, F run) {
  int64_t begin = 0;
  while (begin < parts) {
    const int64_t end = std::min(parts, begin + 1 + static_cast<int64_t>(rng() % 5));
    run(begin, end);
    begin = end;
  }
}

void CheckCase(std::mt19937_64& rng, const Case& c) {
  const size_t n = static_cast<size_t>(c.rows * c.width);
  const size_t w = static_cast<size_t>(c.width);
  std::vector<float> y(n), mean(c.rows), rstd(c.rows);
  std::vector<uint8_t> keep(n);
  const uint64_t seed = rng();
  const kbf::LayerNormForward f{c.residual.data(), c.x.data(), c.gamma.data(), c.beta.data(),
                                c.width, seed, c.rate, 1e-6f, y.data(), mean.data(),
                                rstd.data(), keep.data()};
  InRandomParts(rng, c.rows, [&](int64_t b, int64_t e) { kbf::DropoutAddLayerNorm(f, b, e); });

  const int64_t blocks = (c.rows + kbf::kLayerNormBlockRows - 1) / kbf::kLayerNormBlockRows;
  std::vector<float> dr(n), dx(n), partials(static_cast<size_t>(blocks) * 2 * w), dg(w), db(w);
  const kbf::LayerNormBackward b{c.dy.data(), c.residual.data(), c.x.data(), c.gamma.data(),
                                 keep.data(), mean.data(), rstd.data(), c.width, c.rate,
                                 dr.data(), dx.data(), partials.data()};
  InRandomParts(rng, blocks, [&](int64_t lo, int64_t hi) {
    kbf::DropoutAddLayerNormGrad(b, c.rows, lo, hi);
  });
  kbf::SumLayerNormPartials(partials.data(), blocks, c.width, dg.data(), db.data());

  // Reference in double precision, with the op's own mask.
  const double scale = c.rate > 0 ? 1.0 / (1.0 - c.rate) : 1.0;
  std::vector<double> ref_dg(w, 0.0), ref_db(w, 0.0);
  for (int64_t i = 0; i < c.rows; ++i) {
    std::vector<double> z(w), normed(w);
    double mu = 0, var = 0;
    for (size_t j = 0; j < w; ++j) {
      const size_t k = static_cast<size_t>(i) * w + j;
      CHECK(keep[k] == (c.rate > 0 ? kbf::DropoutKeeps(seed, k, kbf::DropoutThreshold(c.rate))
                                   : 1));
      z[j] = c.residual[k] + c.x[k] * keep[k] * scale;
      mu += z[j];
    }
    mu /= c.width;
    for (size_t j = 0; j < w; ++j) var += (z[j] - mu) * (z[j] - mu);
    const double inv = 1.0 / std::sqrt(var / c.width + 1e-6);
    double mean_g = 0, mean_gn = 0;
    for (size_t j = 0; j < w; ++j) {
      const size_t k = static_cast<size_t>(i) * w + j;
      normed[j] = (z[j] - mu) * inv;
      CHECK(std::fabs(y[k] - (normed[j] * c.gamma[j] + c.beta[j])) < 1e-3);
      mean_g += c.dy[k] * c.gamma[j];
      mean_gn += c.dy[k] * c.gamma[j] * normed[j];
      ref_dg[j] += c.dy[k] * normed[j];
      ref_db[j] += c.dy[k];
    }
    mean_g /= c.width;
    mean_gn /= c.width;
    for (size_t j = 0; j < w; ++j) {
      const size_t k = static_cast<size_t>(i) * w + j;
      const double dz = inv * (c.dy[k] * c.gamma[j] - mean_g - normed[j] * mean_gn);
      CHECK(std::fabs(dr[k] - dz) < 1e-3 * (1 + std::fabs(dz)));
      CHECK(std::fabs(dx[k] - dz * keep[k] * scale) < 1e-3 * (1 + std::fabs(dz)));
    }
  }
  for (size_t j = 0; j < w; ++j) {
    CHECK(std::fabs(dg[j] - ref_dg[j]) < 1e-3 * (1 + std::fabs(ref_dg[j])));
    CHECK(std::fabs(db[j] - ref_db[j]) < 1e-3 * (1 + std::fabs(ref_db[j])));
  }

  // Another split gives bit-identical gamma/beta sums.
  std::vector<float> dg2(w), db2(w);
  InRandomParts(rng, blocks, [&](int64_t lo, int64_t hi) {
    kbf::DropoutAddLayerNormGrad(b, c.rows, lo, hi);
  });
  kbf::SumLayerNormPartials(partials.data(), blocks, c.width, dg2.data(), db2.data());
  CHECK(dg == dg2 && db == db2);
}

}  // namespace

int main() {
  std::mt19937_64 rng(20261202);
  const int64_t widths[] = {1, 2, 7, 32, 384};
  const int64_t rows[] = {1, 3, 16, 17, 33, 100};
  const float rates[] = {0.0f, 0.1f, 0.5f, 0.9f};
  for (int64_t width : widths)
    for (int64_t r : rows)
      for (float rate : rates) CheckCase(rng, Random(rng, r, width, rate));
  // Keep rate over many draws.
  const uint64_t threshold = kbf::DropoutThreshold(0.1f);
  int64_t kept = 0;
  for (uint64_t i = 0; i < 1000000; ++i) kept += kbf::DropoutKeeps(42, i, threshold);
  CHECK(std::fabs(static_cast<double>(kept) / 1e6 - 0.9) < 0.005);
  if (kbf_test::failures == 0) std::printf("layer_norm_test: all checks passed\n");
  return kbf_test::failures == 0 ? 0 : 1;
}
