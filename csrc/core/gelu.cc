#include "core/gelu.h"

#include <cmath>
#include <cstring>

#include "core/vector_clones.h"

namespace kbf {
namespace {

constexpr float kSqrtHalf = 0.70710678118654752f;
constexpr float kInvSqrtTwoPi = 0.39894228040143268f;

// |x| capped at 12, where erf(x / sqrt 2) is 1 in float. On non-negative floats the
// bit patterns order like the values, so an integer min caps without a branch (a
// float compare would keep one for NaN) and the loop still vectorizes.
inline float AbsCapped(float x) {
  float ax = std::fabs(x);
  int32_t bits;
  std::memcpy(&bits, &ax, sizeof bits);
  constexpr int32_t kTwelveBits = 0x41400000;
  bits = bits < kTwelveBits ? bits : kTwelveBits;
  std::memcpy(&ax, &bits, sizeof ax);
  return ax;
}

// e^a for a in [-72, 0]: 2^n * e^r with r in [-ln2 / 2, ln2 / 2] and a degree-6
// Taylor polynomial (relative error ~2e-7).
inline float ExpNonPositive(float a) {
  const float n = static_cast<float>(static_cast<int32_t>(a * 1.44269504f - 0.5f));
  const float r = (a - n * 0.693145751953125f) - n * 1.428606765330187e-06f;
  float p = 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

// Phi(x) = (1 + erf(x / sqrt 2)) / 2, and e^(-x^2 / 2) in `density`.
inline float NormalCdf(float x, float* density) {
  const float z = AbsCapped(x) * kSqrtHalf;
  const float t = 1.0f / (1.0f + 0.3275911f * z);
  const float poly =
      t * (0.254829592f +
           t * (-0.284496736f + t * (1.421413741f + t * (-1.453152027f + t * 1.061405429f))));
  *density = ExpNonPositive(-z * z);
  const float erf_abs = 1.0f - poly * *density;
  return 0.5f * (1.0f + std::copysign(erf_abs, x));
}

}  // namespace

KBF_VECTOR_CLONES void GeluForward(const float* __restrict x, float* __restrict y,
                                     int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    float density;
    y[i] = x[i] * NormalCdf(x[i], &density);
  }
}

KBF_VECTOR_CLONES void GeluBackward(const float* __restrict dy, const float* __restrict x,
                                      float* __restrict dx, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    float density;
    const float cdf = NormalCdf(x[i], &density);
    dx[i] = dy[i] * (cdf + x[i] * density * kInvSqrtTwoPi);
  }
}

}  // namespace kbf
