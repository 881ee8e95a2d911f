// The full BERT tokenizer: special tokens, basic tokenization, WordPiece.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "normalizer.h"
#include "vocab.h"

namespace kbf {

struct TokenizerOptions {
  bool lowercase = true;
  bool strip_accents = true;
  size_t max_input_chars_per_word = 100;
  std::string unk_token = "[UNK]";
  std::string continuation_prefix = "##";
  // Matched verbatim in the raw text and never split; those not in the
  // vocabulary are ignored.
  std::vector<std::string> special_tokens = {"[UNK]", "[SEP]", "[CLS]", "[PAD]", "[MASK]"};
};

// A token's span in the input, in code points: [begin, end).
struct Span {
  uint32_t begin;
  uint32_t end;
};

// Buffers reused across calls; one per thread.
struct Scratch {
  Words words;
};

class Tokenizer {
 public:
  Tokenizer(std::vector<std::string> vocab_tokens, TokenizerOptions options);

  // Appends the ids of `text` to `ids` (and their spans to `spans` when not
  // null). Returns false, touching nothing, when `text` is not valid UTF-8.
  bool Encode(std::string_view text, std::vector<int32_t>* ids, std::vector<Span>* spans,
              Scratch* scratch) const;

  const Vocab& vocab() const { return vocab_; }
  const TokenizerOptions& options() const { return options_; }
  int32_t unk_id() const { return unk_id_; }

 private:
  struct Special {
    std::string text;
    int32_t id;
  };
  // Length of the special token starting at text[pos] (longest wins), or 0.
  size_t MatchSpecial(std::string_view text, size_t pos, int32_t* id) const;
  void EncodeWords(const Words& words, std::vector<int32_t>* ids, std::vector<Span>* spans) const;
  void EncodeWord(std::string_view word, std::vector<int32_t>* ids,
                  std::vector<std::pair<uint32_t, uint32_t>>* pieces) const;

  TokenizerOptions options_;
  Vocab vocab_;
  BasicTokenizer basic_;
  int32_t unk_id_;
  std::vector<Special> specials_;  // longest first
  bool special_first_byte_[256] = {};
  int single_first_byte_ = -1;  // the first byte shared by all specials, or -1
};

}  // namespace kbf
