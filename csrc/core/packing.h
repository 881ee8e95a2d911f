// Sentence-pair truncation, packing as [CLS] a [SEP] (b [SEP]), padding, and
// batch encoding on several threads.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "wordpiece.h"

namespace kbf {

// kHeadTail applies to single texts only: keep the first `head_tokens` and the
// last (budget - head_tokens) tokens (Sun et al., 2019). EncodeBatch refuses it
// for pairs. The other strategies apply to pairs; a single text under them is
// cut at the end.
enum class Truncation { kLongestFirst, kOnlyFirst, kOnlySecond, kRatio, kHeadTail };

// The strategy named `name` ("longest_first", "only_first", "only_second",
// "ratio", "head_tail"), or nothing when the name is unknown.
std::optional<Truncation> ParseTruncation(std::string_view name);

// The accepted names, quoted, for error messages: "'longest_first', ...".
const char* TruncationNames();

// Lengths of the two segments after truncation.
struct Kept {
  size_t first;
  size_t second;
};

// Shortens segments of lengths `first` and `second` to fit `budget` tokens.
// Returns false when the strategy cannot fit them (only_first / only_second
// with the other segment alone over budget).
bool Truncate(size_t first, size_t second, size_t budget, Truncation strategy, Kept* kept);

struct BatchOptions {
  size_t max_length = 128;
  Truncation truncation = Truncation::kLongestFirst;
  size_t head_tokens = 0;  // kHeadTail: tokens kept from the start (capped at the budget)
  bool pad_to_max_length = false;  // otherwise pad to the longest in the batch
  size_t pad_to_multiple_of = 1;
  bool offsets = false;
  size_t num_threads = 1;
};

// Where to write the outputs: row-major [batch, seq] (offsets: [batch, seq, 2]).
struct BatchBuffers {
  int32_t* input_word_ids;
  int32_t* input_mask;
  int32_t* input_type_ids;
  int32_t* offsets;  // may be null when offsets were not asked for
};

struct BatchError {
  static constexpr size_t kWholeBatch = static_cast<size_t>(-1);
  bool ok = true;
  size_t index = kWholeBatch;  // the example, or kWholeBatch for an error about the batch
  int segment = 0;             // 0: text, 1: pair
  bool invalid_utf8 = false;   // the example's text is not valid UTF-8
  std::string message;
};

// The message for a failed EncodeBatch, naming the example as encode_batch
// does: "texts[3] is not valid UTF-8 (byte 7)", "pairs[0]: cannot truncate ...".
// `texts` and `pairs` are the views EncodeBatch was given.
std::string DescribeBatchError(const BatchError& error, const std::vector<std::string_view>& texts,
                               const std::vector<std::string_view>& pairs);

// Tokenizes, truncates and packs a batch. `pairs` is empty or as long as
// `texts`. Once the sequence length is known, `allocate(batch, seq)` is called
// (on the calling thread) for the output buffers.
BatchError EncodeBatch(const Tokenizer& tokenizer, const std::vector<std::string_view>& texts,
                       const std::vector<std::string_view>& pairs, const BatchOptions& options,
                       const std::function<BatchBuffers(size_t, size_t)>& allocate);

// Runs fn(chunk, begin, end) over [0, n) split into contiguous chunks, one per
// thread, on up to `threads` threads. Returns the number of chunks.
size_t ParallelFor(size_t n, size_t threads,
                   const std::function<void(size_t, size_t, size_t)>& fn);

}  // namespace kbf
