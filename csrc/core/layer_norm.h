// Dropout, residual add and LayerNorm over rows, forward and backward, for
// training: z = residual + dropout(x); y = (z - mean(z)) / sqrt(var(z) + eps) * gamma + beta.
// Free of Python and TensorFlow: the op calls it on ranges of rows from its
// thread pool. Results do not depend on how the rows are split among threads.
#pragma once

#include <cstdint>

namespace kbf {

// Rows per block of the backward's gamma/beta partial sums. The blocks are summed in
// order afterwards, so the sums do not depend on the thread count.
constexpr int64_t kLayerNormBlockRows = 16;

// Which elements dropout keeps: element `index` (row * width + column) is kept when
// a hash of (seed, index) is at least rate * 2^32. rate must be in [0, 1).
uint64_t DropoutThreshold(float rate);
bool DropoutKeeps(uint64_t seed, uint64_t index, uint64_t threshold);

struct LayerNormForward {
  const float* residual;  // [rows, width]
  const float* x;         // [rows, width], dropped out, then added to residual
  const float* gamma;     // [width]
  const float* beta;      // [width]
  int64_t width;
  uint64_t seed;
  float rate;             // dropout rate in [0, 1); 0: nothing dropped
  float epsilon;
  float* y;               // [rows, width]
  float* mean;            // [rows]
  float* rstd;            // [rows]: 1 / sqrt(var + epsilon)
  uint8_t* keep;          // [rows, width]: 1 where x was kept
};

// Rows [begin, end) of the forward pass.
void DropoutAddLayerNorm(const LayerNormForward& f, int64_t begin, int64_t end);

struct LayerNormBackward {
  const float* dy;        // [rows, width]
  const float* residual;  // the forward's inputs and outputs
  const float* x;
  const float* gamma;
  const uint8_t* keep;
  const float* mean;
  const float* rstd;
  int64_t width;
  float rate;
  float* d_residual;      // [rows, width]
  float* dx;              // [rows, width]
  float* partials;        // [blocks, 2, width]: per block, dgamma then dbeta
};

// Blocks [begin, end) of kLayerNormBlockRows rows (the last may be short) of `rows`.
void DropoutAddLayerNormGrad(const LayerNormBackward& b, int64_t rows, int64_t begin,
                             int64_t end);

// dgamma and dbeta [width] from the partial sums of `blocks` blocks, in block order.
void SumLayerNormPartials(const float* partials, int64_t blocks, int64_t width, float* dgamma,
                          float* dbeta);

}  // namespace kbf
