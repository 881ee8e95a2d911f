#include "vocab.h"

#include <cstring>
#include <stdexcept>
#include <utility>

namespace kbf {
namespace {

inline uint64_t Mix(uint64_t x) {
  x ^= x >> 33;
  x *= 0xFF51AFD7ED558CCDULL;
  x ^= x >> 33;
  x *= 0xC4CEB9FE1A85EC53ULL;
  x ^= x >> 33;
  return x;
}

uint64_t Hash(std::string_view s) {
  const char* p = s.data();
  size_t n = s.size();
  uint64_t h = 0x9E3779B97F4A7C15ULL ^ (n * 0xFF51AFD7ED558CCDULL);
  while (n >= 8) {
    uint64_t chunk;
    std::memcpy(&chunk, p, 8);
    h = (h ^ Mix(chunk)) * 0x9E3779B97F4A7C15ULL;
    p += 8;
    n -= 8;
  }
  uint64_t tail = 0;
  std::memcpy(&tail, p, n);
  return Mix(h ^ tail);
}

}  // namespace

void TokenTable::Grow() {
  std::vector<Slot> old = std::move(slots_);
  slots_.assign(old.empty() ? 64 : old.size() * 2, Slot{});
  const size_t mask = slots_.size() - 1;
  for (const Slot& s : old) {
    if (s.id < 0) continue;
    size_t i = s.hash & mask;
    while (slots_[i].id >= 0) i = (i + 1) & mask;
    slots_[i] = s;
  }
}

void TokenTable::Insert(std::string_view token, int32_t id) {
  if (id < 0) throw std::invalid_argument("token ids must be non-negative");
  if (token.size() > UINT32_MAX || pool_.size() + token.size() > UINT32_MAX) {
    throw std::length_error("vocabulary too large");
  }
  if ((count_ + 1) * 2 > slots_.size()) Grow();
  const uint64_t h = Hash(token);
  const size_t mask = slots_.size() - 1;
  size_t i = h & mask;
  while (slots_[i].id >= 0) {
    const Slot& s = slots_[i];
    if (s.hash == h && s.length == token.size() &&
        std::memcmp(pool_.data() + s.offset, token.data(), token.size()) == 0) {
      slots_[i].id = id;
      return;
    }
    i = (i + 1) & mask;
  }
  slots_[i] = Slot{h, static_cast<uint32_t>(pool_.size()), static_cast<uint32_t>(token.size()),
                   id};
  pool_.append(token);
  ++count_;
  if (token.size() > max_length_) max_length_ = token.size();
}

int32_t TokenTable::Find(std::string_view token) const {
  if (slots_.empty()) return -1;
  const uint64_t h = Hash(token);
  const size_t mask = slots_.size() - 1;
  for (size_t i = h & mask;; i = (i + 1) & mask) {
    const Slot& s = slots_[i];
    if (s.id < 0) return -1;
    if (s.hash == h && s.length == token.size() &&
        std::memcmp(pool_.data() + s.offset, token.data(), token.size()) == 0) {
      return s.id;
    }
  }
}

Vocab::Vocab(std::vector<std::string> tokens, std::string continuation_prefix)
    : tokens_(std::move(tokens)) {
  if (tokens_.size() > static_cast<size_t>(INT32_MAX)) throw std::length_error("vocabulary too large");
  for (size_t id = 0; id < tokens_.size(); ++id) {
    const std::string_view token = tokens_[id];
    whole_.Insert(token, static_cast<int32_t>(id));
    if (!continuation_prefix.empty() && token.size() > continuation_prefix.size() &&
        token.compare(0, continuation_prefix.size(), continuation_prefix) == 0) {
      continuation_.Insert(token.substr(continuation_prefix.size()), static_cast<int32_t>(id));
    }
  }
}

}  // namespace kbf
