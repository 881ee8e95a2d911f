// One AdamW update of a float32 variable and its two moments in a single pass over
// memory: decoupled weight decay, then Adam, with the arithmetic of TensorFlow's
// ApplyAdam (and Keras' Adam). Free of Python and TensorFlow: the op calls it on
// ranges of elements or rows from its thread pool; every element is computed on its
// own, so the results do not depend on the split. Also the sum of squares behind a
// global-norm clip, whose scale the update then applies (grad_scale).
#pragma once

#include <cstdint>
#include <vector>

namespace kbf {

struct AdamWStep {
  float lr;            // learning rate of this step (times any per-variable factor)
  float beta1_power;   // beta1^t, beta2^t for step t (1-based)
  float beta2_power;
  float beta1;
  float beta2;
  float epsilon;
  float decay;         // weight_decay * lr; var -= decay * var before the Adam step
  float grad_scale;    // the gradient is multiplied by it first (a global-norm clip)
};

// Elements [begin, end) of var, m, v, each updated with grad (the same size).
void AdamWDense(const AdamWStep& step, const float* grad, float* var, float* m, float* v,
                int64_t begin, int64_t end);

// A gradient given as rows of a [rows, width] variable: `slot[r]` is the row of
// `summed` holding row r's gradient, or -1 where the gradient is zero (the moments
// still decay and the variable still moves, as with a dense zero gradient).
struct RowGradient {
  std::vector<int64_t> slot;   // [rows]
  std::vector<float> summed;   // [distinct rows, width]
};

// Sums `count` gradient rows `values` ([count, width]) by their row `indices`.
// Returns false, leaving `out` unspecified, when an index is outside [0, rows);
// `bad` then holds the position of the first such index.
bool SumRowsByIndex(const int64_t* indices, int64_t count, const float* values, int64_t width,
                    int64_t rows, RowGradient* out, int64_t* bad);

// Rows [begin, end) of var, m, v ([rows, width]) updated with `gradient`.
void AdamWRows(const AdamWStep& step, const RowGradient& gradient, int64_t width, float* var,
               float* m, float* v, int64_t begin, int64_t end);

// The sum of squares of x[0, n), accumulated in double: one block of a global norm.
double SumOfSquares(const float* x, int64_t n);

}  // namespace kbf
