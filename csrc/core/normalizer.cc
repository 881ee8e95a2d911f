#include "normalizer.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "unicode_tables.h"
#include "utf8.h"

namespace kbf {
namespace {

using unicode::Flags;

enum AsciiClass : uint8_t { kKeep, kSpace, kPunct, kDrop };

struct AsciiTable {
  AsciiClass cls[128];
  char lower[128];
  AsciiTable() {
    for (int c = 0; c < 128; ++c) {
      const uint8_t f = Flags(static_cast<char32_t>(c));
      cls[c] = (f & unicode::kRemoved)       ? kDrop
               : (f & unicode::kWhitespace)  ? kSpace
               : (f & unicode::kPunctuation) ? kPunct
                                             : kKeep;
      lower[c] = static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c);
    }
  }
};

const AsciiTable& Ascii() {
  static const AsciiTable table;
  return table;
}

}  // namespace

bool IsAscii(std::string_view text) {
  const char* p = text.data();
  size_t n = text.size();
  uint64_t any_high = 0;
  while (n >= 8) {
    uint64_t chunk;
    std::memcpy(&chunk, p, 8);
    any_high |= chunk;
    p += 8;
    n -= 8;
  }
  while (n > 0) {
    any_high |= static_cast<unsigned char>(*p++);
    --n;
  }
  return (any_high & 0x8080808080808080ULL) == 0;
}

namespace {

// A code point of the normalized text and the input code point it came from.
struct Char {
  char32_t cp;
  uint32_t origin;
};

// Sorts each run of non-starters by combining class, keeping order within a
// class: the canonical ordering step of NFD.
void CanonicalOrder(std::vector<Char>* chars) {
  auto ccc = [](const Char& c) { return unicode::CombiningClass(c.cp); };
  size_t i = 0;
  const size_t n = chars->size();
  while (i < n) {
    if (ccc((*chars)[i]) == 0) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < n && ccc((*chars)[j]) != 0) ++j;
    if (j - i > 1) {
      std::stable_sort(chars->begin() + static_cast<std::ptrdiff_t>(i),
                       chars->begin() + static_cast<std::ptrdiff_t>(j),
                       [&](const Char& a, const Char& b) { return ccc(a) < ccc(b); });
    }
    i = j;
  }
}

}  // namespace

BasicTokenizer::BasicTokenizer(bool lowercase, bool strip_accents)
    : lowercase_(lowercase), strip_accents_(strip_accents) {}

void BasicTokenizer::Split(std::string_view text, bool ascii, uint32_t origin,
                           bool track_origins, Words* out) const {
  if (ascii) {
    SplitAscii(text, origin, track_origins, out);
  } else {
    SplitUnicode(text, origin, track_origins, out);
  }
}

void BasicTokenizer::SplitAscii(std::string_view text, uint32_t origin, bool track_origins,
                                Words* out) const {
  const AsciiTable& table = Ascii();
  std::string& buffer = out->text;
  const size_t base = buffer.size();
  buffer.resize(base + text.size());  // the words never outgrow their text
  char* const start = buffer.data();
  char* write = start + base;
  bool in_word = false;
  auto end_here = [&]() { out->ends.push_back(static_cast<uint32_t>(write - start)); };
  for (size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    switch (table.cls[c]) {
      case kDrop:
        break;
      case kSpace:
        if (in_word) end_here();
        in_word = false;
        break;
      case kPunct:
        if (in_word) end_here();
        in_word = false;
        *write++ = static_cast<char>(c);
        if (track_origins) out->origins.push_back(origin + static_cast<uint32_t>(i));
        end_here();
        break;
      case kKeep:
        *write++ = lowercase_ ? table.lower[c] : static_cast<char>(c);
        if (track_origins) out->origins.push_back(origin + static_cast<uint32_t>(i));
        in_word = true;
        break;
    }
  }
  if (in_word) end_here();
  buffer.resize(static_cast<size_t>(write - start));
}

void BasicTokenizer::SplitUnicode(std::string_view text, uint32_t origin, bool track_origins,
                                  Words* out) const {
  // Clean and pad CJK ideographs with spaces.
  std::vector<Char> chars;
  chars.reserve(text.size() + 8);
  size_t pos = 0;
  uint32_t index = origin;
  while (pos < text.size()) {
    const char32_t cp = utf8::Decode(text, &pos);
    if (cp == utf8::kInvalid) break;  // callers validate; stop rather than loop
    const uint8_t f = Flags(cp);
    if (f & unicode::kRemoved) {
    } else if (f & unicode::kWhitespace) {
      chars.push_back({U' ', index});
    } else if (f & unicode::kCjk) {
      chars.push_back({U' ', index});
      chars.push_back({cp, index});
      chars.push_back({U' ', index});
    } else {
      chars.push_back({cp, index});
    }
    ++index;
  }

  // NFD, then drop non-spacing marks.
  if (strip_accents_) {
    std::vector<Char> decomposed;
    decomposed.reserve(chars.size() + 8);
    char32_t hangul[4];
    for (const Char& c : chars) {
      if (Flags(c.cp) & unicode::kHasDecomposition) {
        const unicode::Mapping m = unicode::Decompose(c.cp, hangul);
        for (size_t k = 0; k < m.size; ++k) decomposed.push_back({m.data[k], c.origin});
      } else {
        decomposed.push_back(c);
      }
    }
    CanonicalOrder(&decomposed);
    chars.clear();
    for (const Char& c : decomposed) {
      if (!(Flags(c.cp) & unicode::kNonspacingMark)) chars.push_back(c);
    }
  }

  if (lowercase_) {
    std::vector<Char> lowered;
    lowered.reserve(chars.size() + 8);
    for (const Char& c : chars) {
      if (Flags(c.cp) & unicode::kHasLowercase) {
        const unicode::Mapping m = unicode::Lowercase(c.cp);
        for (size_t k = 0; k < m.size; ++k) lowered.push_back({m.data[k], c.origin});
      } else {
        lowered.push_back(c);
      }
    }
    chars = std::move(lowered);
  }

  // Split on whitespace and punctuation.
  std::string& buffer = out->text;
  bool in_word = false;
  auto append = [&](const Char& c) {
    const size_t before = buffer.size();
    utf8::Append(c.cp, &buffer);
    if (track_origins) out->origins.insert(out->origins.end(), buffer.size() - before, c.origin);
  };
  for (const Char& c : chars) {
    const uint8_t f = Flags(c.cp);
    if (f & unicode::kWhitespace) {
      if (in_word) out->ends.push_back(static_cast<uint32_t>(buffer.size()));
      in_word = false;
    } else if (f & unicode::kPunctuation) {
      if (in_word) out->ends.push_back(static_cast<uint32_t>(buffer.size()));
      in_word = false;
      append(c);
      out->ends.push_back(static_cast<uint32_t>(buffer.size()));
    } else {
      append(c);
      in_word = true;
    }
  }
  if (in_word) out->ends.push_back(static_cast<uint32_t>(buffer.size()));
}

}  // namespace kbf
