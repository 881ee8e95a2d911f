#include "wordpiece.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <utility>

#include "utf8.h"

namespace kbf {

Tokenizer::Tokenizer(std::vector<std::string> vocab_tokens, TokenizerOptions options)
    : options_(std::move(options)),
      vocab_(std::move(vocab_tokens), options_.continuation_prefix),
      basic_(options_.lowercase, options_.strip_accents) {
  unk_id_ = vocab_.Find(options_.unk_token);
  if (unk_id_ < 0) {
    throw std::invalid_argument("the unknown token '" + options_.unk_token +
                                "' is not in the vocabulary");
  }
  for (const std::string& s : options_.special_tokens) {
    const int32_t id = vocab_.Find(s);
    if (id < 0 || s.empty()) continue;
    specials_.push_back({s, id});
    special_first_byte_[static_cast<unsigned char>(s[0])] = true;
  }
  for (const Special& s : specials_) {
    const int first = static_cast<unsigned char>(s.text[0]);
    single_first_byte_ = (single_first_byte_ == -1 || single_first_byte_ == first) ? first : -2;
  }
  if (single_first_byte_ < 0) single_first_byte_ = -1;
  std::stable_sort(specials_.begin(), specials_.end(), [](const Special& a, const Special& b) {
    return a.text.size() > b.text.size();
  });
}

size_t Tokenizer::MatchSpecial(std::string_view text, size_t pos, int32_t* id) const {
  for (const Special& s : specials_) {
    if (text.size() - pos >= s.text.size() && text.compare(pos, s.text.size(), s.text) == 0) {
      *id = s.id;
      return s.text.size();
    }
  }
  return 0;
}

bool Tokenizer::Encode(std::string_view text, std::vector<int32_t>* ids, std::vector<Span>* spans,
                       Scratch* scratch) const {
  const bool ascii = IsAscii(text);
  if (!ascii && utf8::FindInvalid(text) != std::string_view::npos) return false;
  const bool track = spans != nullptr;
  Words& words = scratch->words;
  size_t start = 0;       // start of the current plain-text span
  uint32_t origin = 0;    // its code point index
  auto flush = [&](size_t end) {
    if (end > start) {
      const std::string_view part = text.substr(start, end - start);
      words.Clear();
      basic_.Split(part, ascii, origin, track, &words);
      EncodeWords(words, ids, spans);
      if (track) origin += static_cast<uint32_t>(utf8::CountCodePoints(part));
    }
  };
  if (!specials_.empty()) {
    for (size_t pos = 0; pos < text.size(); ++pos) {
      if (single_first_byte_ >= 0) {
        // All special tokens start alike (BERT's '['): let memchr find candidates.
        const void* hit = std::memchr(text.data() + pos, single_first_byte_, text.size() - pos);
        if (hit == nullptr) break;
        pos = static_cast<size_t>(static_cast<const char*>(hit) - text.data());
      } else if (!special_first_byte_[static_cast<unsigned char>(text[pos])]) {
        continue;
      }
      int32_t id;
      const size_t length = MatchSpecial(text, pos, &id);
      if (length == 0) continue;
      flush(pos);
      ids->push_back(id);
      if (track) {
        const auto n = static_cast<uint32_t>(utf8::CountCodePoints(text.substr(pos, length)));
        spans->push_back({origin, origin + n});
        origin += n;
      }
      pos += length - 1;
      start = pos + 1;
    }
  }
  flush(text.size());
  return true;
}

void Tokenizer::EncodeWords(const Words& words, std::vector<int32_t>* ids,
                            std::vector<Span>* spans) const {
  std::vector<std::pair<uint32_t, uint32_t>> pieces;
  for (size_t w = 0; w < words.size(); ++w) {
    const uint32_t begin = words.Begin(w);
    const std::string_view word(words.text.data() + begin, words.ends[w] - begin);
    if (spans == nullptr) {
      EncodeWord(word, ids, nullptr);
      continue;
    }
    pieces.clear();
    EncodeWord(word, ids, &pieces);
    for (const auto& [b, e] : pieces) {
      spans->push_back({words.origins[begin + b], words.origins[begin + e - 1] + 1});
    }
  }
}

void Tokenizer::EncodeWord(std::string_view word, std::vector<int32_t>* ids,
                           std::vector<std::pair<uint32_t, uint32_t>>* pieces) const {
  const size_t n = word.size();
  const auto unknown = [&]() {
    ids->push_back(unk_id_);
    if (pieces) pieces->push_back({0, static_cast<uint32_t>(n)});
  };
  // Most words are short; count characters only when the byte length could exceed the limit.
  if (n > options_.max_input_chars_per_word &&
      utf8::CountCodePoints(word) > options_.max_input_chars_per_word) {
    unknown();
    return;
  }
  const size_t mark = ids->size();
  const size_t piece_mark = pieces ? pieces->size() : 0;
  size_t start = 0;
  while (start < n) {
    const bool initial = start == 0;
    const size_t limit = initial ? vocab_.max_initial_length() : vocab_.max_continuation_length();
    size_t end = std::min(n, start + limit);
    int32_t id = -1;
    while (end > start) {
      // Only try ends on character boundaries.
      while (end > start && end < n && utf8::IsContinuationByte(static_cast<unsigned char>(word[end]))) {
        --end;
      }
      if (end == start) break;
      const std::string_view piece = word.substr(start, end - start);
      id = initial ? vocab_.FindInitial(piece) : vocab_.FindContinuation(piece);
      if (id >= 0) break;
      --end;
    }
    if (id < 0) {
      ids->resize(mark);
      if (pieces) pieces->resize(piece_mark);
      unknown();
      return;
    }
    ids->push_back(id);
    if (pieces) pieces->push_back({static_cast<uint32_t>(start), static_cast<uint32_t>(end)});
    start = end;
  }
}

}  // namespace kbf
