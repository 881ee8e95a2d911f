// What the TensorFlow kernel needs besides TensorFlow: reading vocab.txt and
// a process-wide cache of built tokenizers. Kept free of TensorFlow so that a
// plain C++ test can run it under AddressSanitizer.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "wordpiece.h"

namespace kbf {

// The tokens of a vocab.txt, as keras_bert_ft.tokenization.read_vocab reads
// them: split on "\n", trailing whitespace (Python's str.isspace) removed,
// the empty line after the final newline dropped. Returns false and sets
// `error` when the contents are not UTF-8 or hold no token.
bool ParseVocab(std::string_view contents, std::vector<std::string>* tokens, std::string* error);

// Checks what the batch encoder relies on: [CLS], [SEP] and the unknown token
// are in the vocabulary. Returns an empty string when they are.
std::string CheckVocab(const std::vector<std::string>& tokens, const TokenizerOptions& options);

// Built tokenizers, one per (vocab path, options), shared by every thread.
class TokenizerCache {
 public:
  // Reads the file at a path into `contents`; returns false with `error` set.
  using ReadFile = std::function<bool(const std::string& path, std::string* contents,
                                      std::string* error)>;

  // The tokenizer for `path` and `options`, built on first use with `read`.
  // Returns null and sets `error` when the file cannot be read or parsed.
  std::shared_ptr<const Tokenizer> Get(const std::string& path, const TokenizerOptions& options,
                                       const ReadFile& read, std::string* error);

  size_t size() const;

  // The cache the kernel uses.
  static TokenizerCache& Global();

 private:
  mutable std::mutex mutex_;
  std::unordered_map<std::string, std::shared_ptr<const Tokenizer>> tokenizers_;
};

}  // namespace kbf
