#include "core/layer_norm.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/splitmix64.h"

namespace kbf {

uint64_t DropoutThreshold(float rate) {
  return static_cast<uint64_t>(std::ldexp(static_cast<double>(rate), 32));
}

bool DropoutKeeps(uint64_t seed, uint64_t index, uint64_t threshold) {
  // SplitMix64 as a counter hash: one draw per element, in any order.
  return (SplitMix64(seed + index * 0x9E3779B97F4A7C15ULL).Next() >> 32) >= threshold;
}

namespace {

float KeepScale(float rate) { return rate > 0.0f ? 1.0f / (1.0f - rate) : 1.0f; }

}  // namespace

void DropoutAddLayerNorm(const LayerNormForward& f, int64_t begin, int64_t end) {
  const int64_t w = f.width;
  const uint64_t threshold = DropoutThreshold(f.rate);
  const float scale = KeepScale(f.rate);
  for (int64_t i = begin; i < end; ++i) {
    const float* r = f.residual + i * w;
    const float* x = f.x + i * w;
    float* y = f.y + i * w;
    uint8_t* keep = f.keep + i * w;
    for (int64_t j = 0; j < w; ++j) {
      keep[j] = f.rate > 0.0f
                    ? DropoutKeeps(f.seed, static_cast<uint64_t>(i * w + j), threshold)
                    : 1;
    }
    float sum = 0.0f;
    for (int64_t j = 0; j < w; ++j) {
      y[j] = r[j] + x[j] * (static_cast<float>(keep[j]) * scale);
      sum += y[j];
    }
    const float mean = sum / static_cast<float>(w);
    float squares = 0.0f;
    for (int64_t j = 0; j < w; ++j) {
      const float c = y[j] - mean;
      squares += c * c;
    }
    const float rstd = 1.0f / std::sqrt(squares / static_cast<float>(w) + f.epsilon);
    for (int64_t j = 0; j < w; ++j) y[j] = (y[j] - mean) * rstd * f.gamma[j] + f.beta[j];
    f.mean[i] = mean;
    f.rstd[i] = rstd;
  }
}

void DropoutAddLayerNormGrad(const LayerNormBackward& b, int64_t rows, int64_t begin,
                             int64_t end) {
  const int64_t w = b.width;
  const float scale = KeepScale(b.rate);
  std::vector<float> normed(static_cast<size_t>(w));
  for (int64_t block = begin; block < end; ++block) {
    float* dgamma = b.partials + block * 2 * w;
    float* dbeta = dgamma + w;
    std::fill(dgamma, dgamma + 2 * w, 0.0f);
    const int64_t last = std::min(rows, (block + 1) * kLayerNormBlockRows);
    for (int64_t i = block * kLayerNormBlockRows; i < last; ++i) {
      const float* dy = b.dy + i * w;
      const float* r = b.residual + i * w;
      const float* x = b.x + i * w;
      const uint8_t* keep = b.keep + i * w;
      const float mean = b.mean[i];
      const float rstd = b.rstd[i];
      float mean_g = 0.0f;       // mean of dy * gamma
      float mean_g_norm = 0.0f;  // mean of dy * gamma * normalised z
      for (int64_t j = 0; j < w; ++j) {
        const float z = r[j] + x[j] * (static_cast<float>(keep[j]) * scale);
        normed[j] = (z - mean) * rstd;
        const float g = dy[j] * b.gamma[j];
        mean_g += g;
        mean_g_norm += g * normed[j];
        dgamma[j] += dy[j] * normed[j];
        dbeta[j] += dy[j];
      }
      mean_g /= static_cast<float>(w);
      mean_g_norm /= static_cast<float>(w);
      float* dr = b.d_residual + i * w;
      float* dx = b.dx + i * w;
      for (int64_t j = 0; j < w; ++j) {
        const float dz = rstd * (dy[j] * b.gamma[j] - mean_g - normed[j] * mean_g_norm);
        dr[j] = dz;
        dx[j] = dz * (static_cast<float>(keep[j]) * scale);
      }
    }
  }
}

void SumLayerNormPartials(const float* partials, int64_t blocks, int64_t width, float* dgamma,
                          float* dbeta) {
  std::fill(dgamma, dgamma + width, 0.0f);
  std::fill(dbeta, dbeta + width, 0.0f);
  for (int64_t block = 0; block < blocks; ++block) {
    const float* p = partials + block * 2 * width;
    for (int64_t j = 0; j < width; ++j) {
      dgamma[j] += p[j];
      dbeta[j] += p[width + j];
    }
  }
}

}  // namespace kbf
