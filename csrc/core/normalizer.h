// BERT's basic tokenization: text cleaning, CJK splitting, accent stripping,
// lower-casing, and splitting on whitespace and punctuation.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace kbf {

// Words produced from a text, stored back to back.
struct Words {
  std::string text;                // normalized UTF-8 of all words
  std::vector<uint32_t> ends;      // end of word i in `text`
  std::vector<uint32_t> origins;   // per byte of `text`: code point index in the input

  void Clear() {
    text.clear();
    ends.clear();
    origins.clear();
  }
  size_t size() const { return ends.size(); }
  uint32_t Begin(size_t i) const { return i == 0 ? 0 : ends[i - 1]; }
};

// True when every byte is below 0x80.
bool IsAscii(std::string_view text);

class BasicTokenizer {
 public:
  BasicTokenizer(bool lowercase, bool strip_accents);

  // Appends the words of `text`, which must be valid UTF-8, to `out`. `origin`
  // is the code point index of text[0] in the caller's whole input; `ascii`
  // says that every byte of `text` is below 0x80.
  void Split(std::string_view text, bool ascii, uint32_t origin, bool track_origins,
             Words* out) const;

 private:
  void SplitAscii(std::string_view text, uint32_t origin, bool track_origins, Words* out) const;
  void SplitUnicode(std::string_view text, uint32_t origin, bool track_origins,
                    Words* out) const;

  bool lowercase_;
  bool strip_accents_;
};

}  // namespace kbf
