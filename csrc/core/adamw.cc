#include "core/adamw.h"

#include <cmath>

#include "core/vector_clones.h"

namespace kbf {
namespace {

// The per-element constants, computed once per call as TensorFlow's ApplyAdam does.
struct Coefficients {
  float step_size;  // lr * sqrt(1 - beta2^t) / (1 - beta1^t)
  float one_minus_beta1;
  float one_minus_beta2;
  float epsilon;
  float decay;
  float grad_scale;
};

Coefficients CoefficientsOf(const AdamWStep& s) {
  return {s.lr * std::sqrt(1.0f - s.beta2_power) / (1.0f - s.beta1_power), 1.0f - s.beta1,
          1.0f - s.beta2, s.epsilon, s.decay, s.grad_scale};
}

// `n` elements; grad null means a zero gradient. The buffers never overlap (restrict),
// so the loop vectorizes.
void UpdateRange(const Coefficients& c, const float* __restrict grad, float* __restrict var,
                 float* __restrict m, float* __restrict v, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float g = grad != nullptr ? grad[i] * c.grad_scale : 0.0f;
    float x = var[i];
    x -= x * c.decay;
    float mi = m[i];
    float vi = v[i];
    mi += (g - mi) * c.one_minus_beta1;
    vi += (g * g - vi) * c.one_minus_beta2;
    x -= (mi * c.step_size) / (std::sqrt(vi) + c.epsilon);
    var[i] = x;
    m[i] = mi;
    v[i] = vi;
  }
}

}  // namespace

KBF_VECTOR_CLONES void AdamWDense(const AdamWStep& step, const float* grad, float* var,
                                    float* m, float* v, int64_t begin, int64_t end) {
  UpdateRange(CoefficientsOf(step), grad + begin, var + begin, m + begin, v + begin, end - begin);
}

bool SumRowsByIndex(const int64_t* indices, int64_t count, const float* values, int64_t width,
                    int64_t rows, RowGradient* out, int64_t* bad) {
  out->slot.assign(static_cast<size_t>(rows), -1);
  out->summed.clear();
  for (int64_t k = 0; k < count; ++k) {
    const int64_t row = indices[k];
    if (row < 0 || row >= rows) {
      *bad = k;
      return false;
    }
    int64_t& slot = out->slot[static_cast<size_t>(row)];
    if (slot < 0) {
      slot = static_cast<int64_t>(out->summed.size()) / (width > 0 ? width : 1);
      out->summed.resize(out->summed.size() + static_cast<size_t>(width), 0.0f);
    }
    float* target = out->summed.data() + slot * width;
    const float* source = values + k * width;
    for (int64_t j = 0; j < width; ++j) target[j] += source[j];
  }
  return true;
}

KBF_VECTOR_CLONES void AdamWRows(const AdamWStep& step, const RowGradient& gradient,
                                   int64_t width, float* var, float* m, float* v, int64_t begin,
                                   int64_t end) {
  const Coefficients c = CoefficientsOf(step);
  for (int64_t r = begin; r < end; ++r) {
    const int64_t slot = gradient.slot[static_cast<size_t>(r)];
    const int64_t base = r * width;
    const float* g = slot >= 0 ? gradient.summed.data() + slot * width : nullptr;
    UpdateRange(c, g, var + base, m + base, v + base, width);
  }
}

double SumOfSquares(const float* x, int64_t n) {
  // Four running sums (a fixed order, so the same input gives the same bits) let the
  // additions overlap.
  double sums[4] = {0.0, 0.0, 0.0, 0.0};
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    for (int k = 0; k < 4; ++k) sums[k] += static_cast<double>(x[i + k]) * x[i + k];
  }
  for (; i < n; ++i) sums[0] += static_cast<double>(x[i]) * x[i];
  return (sums[0] + sums[1]) + (sums[2] + sums[3]);
}

}  // namespace kbf
