#include "masking.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "packing.h"

namespace kbf {

namespace {

// The generator state of one row: the seed and the row index, mixed.
uint64_t RowState(uint64_t seed, uint64_t row) {
  SplitMix64 mix(seed ^ (row * 0xD1B54A32D192ED03ULL));
  mix.Next();
  return mix.Next();
}

// A word (or, without whole-word masking, a token): positions [begin, end).
struct Unit {
  uint32_t begin;
  uint32_t end;
};

// `ordinary`: the non-special ids, from which random replacements are drawn.
void MaskRow(const int32_t* ids, const int32_t* input_mask, size_t seq, const int32_t* kinds,
             const std::vector<int32_t>& ordinary, const MaskingOptions& options,
             SplitMix64* rng, int32_t* masked, int32_t* positions, int32_t* labels,
             float* weights, std::vector<Unit>* units, std::vector<uint32_t>* chosen) {
  std::copy(ids, ids + seq, masked);
  const size_t cap = options.max_predictions;
  std::fill(positions, positions + cap, 0);
  std::fill(labels, labels + cap, 0);
  std::fill(weights, weights + cap, 0.0f);

  // Maskable tokens grouped into units.
  units->clear();
  size_t candidates = 0;
  bool previous_maskable = false;
  for (size_t i = 0; i < seq; ++i) {
    const bool real = input_mask == nullptr || input_mask[i] != 0;
    const int32_t kind = kinds[ids[i]];
    if (!real || kind == kSpecial) {
      previous_maskable = false;
      continue;
    }
    ++candidates;
    const auto pos = static_cast<uint32_t>(i);
    if (options.whole_word && kind == kContinuation && previous_maskable) {
      units->back().end = pos + 1;
    } else {
      units->push_back(Unit{pos, pos + 1});
    }
    previous_maskable = true;
  }
  if (candidates == 0 || cap == 0) return;

  // As BERT's create_pretraining_data: round(15% of the tokens), at least one,
  // at most the cap; units in random order, skipping any that would overflow.
  size_t target = static_cast<size_t>(
      std::llround(static_cast<double>(candidates) * static_cast<double>(options.select_rate)));
  target = std::min(cap, std::max<size_t>(1, target));
  chosen->clear();
  const size_t n = units->size();
  for (size_t i = 0; i < n && chosen->size() < target; ++i) {
    // Partial Fisher-Yates: draw unit i from the ones not yet drawn.
    const size_t j = i + static_cast<size_t>(rng->Below(n - i));
    std::swap((*units)[i], (*units)[j]);
    const Unit u = (*units)[i];
    const size_t length = u.end - u.begin;
    if (chosen->size() + length > target) continue;
    for (uint32_t p = u.begin; p < u.end; ++p) chosen->push_back(p);
  }
  std::sort(chosen->begin(), chosen->end());

  const double mask_below = static_cast<double>(options.mask_rate);
  const double random_below = mask_below + static_cast<double>(options.random_rate);
  for (size_t k = 0; k < chosen->size(); ++k) {
    const uint32_t p = (*chosen)[k];
    positions[k] = static_cast<int32_t>(p);
    labels[k] = ids[p];
    weights[k] = 1.0f;
    const double r = rng->Uniform();
    if (r < mask_below) {
      masked[p] = options.mask_id;
    } else if (r < random_below) {
      masked[p] = ordinary[rng->Below(ordinary.size())];
    }
  }
}

}  // namespace

std::string CheckMasking(const MaskingOptions& options, const int32_t* kinds, size_t vocab_size) {
  if (vocab_size == 0) return "the vocabulary is empty";
  if (options.mask_id < 0 || static_cast<size_t>(options.mask_id) >= vocab_size) {
    return "mask_id " + std::to_string(options.mask_id) + " is outside the vocabulary of " +
           std::to_string(vocab_size) + " tokens";
  }
  const auto rate_ok = [](float r) { return std::isfinite(r) && r >= 0.0f && r <= 1.0f; };
  if (!rate_ok(options.select_rate) || !rate_ok(options.mask_rate) ||
      !rate_ok(options.random_rate) || options.mask_rate + options.random_rate > 1.0f + 1e-6f) {
    return "masking rates must lie in [0, 1] with mask_rate + random_rate <= 1";
  }
  bool any_ordinary = false;
  for (size_t i = 0; i < vocab_size; ++i) {
    if (kinds[i] < kWordStart || kinds[i] > kSpecial) {
      return "token kind " + std::to_string(kinds[i]) + " of id " + std::to_string(i) +
             " is not 0, 1 or 2";
    }
    any_ordinary = any_ordinary || kinds[i] != kSpecial;
  }
  if (!any_ordinary) return "the vocabulary has only special tokens";
  return "";
}

std::string MaskBatch(const int32_t* ids, const int32_t* input_mask, size_t batch, size_t seq,
                      const int32_t* kinds, size_t vocab_size, const MaskingOptions& options,
                      uint64_t seed, const MaskingOutputs& out, size_t num_threads) {
  std::string error = CheckMasking(options, kinds, vocab_size);
  if (!error.empty()) return error;
  // Every id is checked before any is used as an index into `kinds`.
  for (size_t i = 0; i < batch * seq; ++i) {
    if (ids[i] < 0 || static_cast<size_t>(ids[i]) >= vocab_size) {
      return "token id " + std::to_string(ids[i]) + " at row " + std::to_string(i / seq) +
             ", position " + std::to_string(i % seq) + " is outside the vocabulary of " +
             std::to_string(vocab_size) + " tokens";
    }
  }
  std::vector<int32_t> ordinary;
  for (size_t i = 0; i < vocab_size; ++i) {
    if (kinds[i] != kSpecial) ordinary.push_back(static_cast<int32_t>(i));
  }
  const size_t cap = options.max_predictions;
  ParallelFor(batch, num_threads, [&](size_t, size_t begin, size_t end) {
    std::vector<Unit> units;
    std::vector<uint32_t> chosen;
    units.reserve(seq);
    chosen.reserve(seq);
    for (size_t row = begin; row < end; ++row) {
      SplitMix64 rng(RowState(seed, row));
      MaskRow(ids + row * seq, input_mask == nullptr ? nullptr : input_mask + row * seq, seq,
              kinds, ordinary, options, &rng, out.masked_ids + row * seq,
              out.positions + row * cap, out.labels + row * cap, out.weights + row * cap, &units,
              &chosen);
    }
  });
  return "";
}

}  // namespace kbf
