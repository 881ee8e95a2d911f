// Masked-language-model masking (BERT's 15% / 80-10-10 scheme) of packed
// token ids. Free of Python and TensorFlow: the binding and the op call it.
//
// Every row draws from its own generator, keyed by (seed, row), so a row's
// masks depend only on the seed, its index and its tokens: the Python path and
// the TensorFlow op give the same masks for the same seed, on any thread count.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "core/splitmix64.h"

namespace kbf {

// What each vocabulary id is, for masking.
enum TokenKind : int32_t {
  kWordStart = 0,     // an ordinary token that starts a word
  kContinuation = 1,  // a "##" piece that continues the word before it
  kSpecial = 2,       // [CLS], [SEP], [PAD], [MASK], ...: never masked, never a random draw
};

struct MaskingOptions {
  float select_rate = 0.15f;   // fraction of maskable tokens chosen for prediction
  float mask_rate = 0.8f;      // of those, replaced by [MASK]
  float random_rate = 0.1f;    // replaced by a random non-special token; the rest are kept
  size_t max_predictions = 20; // cap of predictions per row (the width of the outputs)
  bool whole_word = false;     // choose whole words: a word's "##" pieces go together
  int32_t mask_id = -1;
};

// Where to write the outputs, row-major.
struct MaskingOutputs {
  int32_t* masked_ids;   // [batch, seq]: the ids with the chosen tokens replaced
  int32_t* positions;    // [batch, max_predictions]: chosen positions, ascending, then 0
  int32_t* labels;       // [batch, max_predictions]: original ids there, then 0
  float* weights;        // [batch, max_predictions]: 1 for a prediction, 0 for filler
};

// Checks the options and the vocabulary kinds; returns an error message or "".
std::string CheckMasking(const MaskingOptions& options, const int32_t* kinds, size_t vocab_size);

// Masks a batch of `batch` rows of `seq` ids. `input_mask` (may be null) marks
// real tokens with nonzero values; padding is never chosen. `kinds` has
// `vocab_size` entries. Returns an error message (an id outside the
// vocabulary, bad options) or "" on success; on error nothing useful is written.
std::string MaskBatch(const int32_t* ids, const int32_t* input_mask, size_t batch, size_t seq,
                      const int32_t* kinds, size_t vocab_size, const MaskingOptions& options,
                      uint64_t seed, const MaskingOutputs& out, size_t num_threads = 1);

}  // namespace kbf
