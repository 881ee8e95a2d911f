// GELU with the exact erf (Hugging Face's "gelu"), forward and backward, for training:
// y = x * Phi(x), Phi the standard normal CDF. Free of Python and TensorFlow; written
// as plain loops over elements that the compiler vectorizes (erf from Abramowitz and
// Stegun 7.1.26, absolute error under 1.5e-7, and one exp shared by erf and the
// density). Elements are independent, so the op may split them among threads.
#pragma once

#include <cstdint>

namespace kbf {

// y[i] = gelu(x[i]) for i in [0, n).
void GeluForward(const float* x, float* y, int64_t n);

// dx[i] = dy[i] * gelu'(x[i]) for i in [0, n).
void GeluBackward(const float* dy, const float* x, float* dx, int64_t n);

}  // namespace kbf
