// Token strings to ids: an open-addressing hash table over a string pool.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace kbf {

class TokenTable {
 public:
  // Adds `token` with `id`; a repeated token takes the later id.
  void Insert(std::string_view token, int32_t id);
  // The id of `token`, or -1.
  int32_t Find(std::string_view token) const;
  // Length in bytes of the longest token.
  size_t max_length() const { return max_length_; }

 private:
  struct Slot {
    uint64_t hash = 0;
    uint32_t offset = 0;
    uint32_t length = 0;
    int32_t id = -1;
  };
  void Grow();

  std::vector<Slot> slots_;
  std::string pool_;
  size_t count_ = 0;
  size_t max_length_ = 0;
};

// A WordPiece vocabulary: id i is line i of vocab.txt.
class Vocab {
 public:
  // `tokens[i]` gets id i. Tokens starting with `continuation_prefix` also
  // serve as word-internal pieces.
  Vocab(std::vector<std::string> tokens, std::string continuation_prefix);

  int32_t Find(std::string_view token) const { return whole_.Find(token); }
  int32_t FindInitial(std::string_view piece) const { return whole_.Find(piece); }
  int32_t FindContinuation(std::string_view piece) const { return continuation_.Find(piece); }
  size_t max_initial_length() const { return whole_.max_length(); }
  size_t max_continuation_length() const { return continuation_.max_length(); }

  size_t size() const { return tokens_.size(); }
  const std::string& Token(size_t id) const { return tokens_[id]; }

 private:
  std::vector<std::string> tokens_;
  TokenTable whole_;
  TokenTable continuation_;
};

}  // namespace kbf
