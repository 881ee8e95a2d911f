// Unit test of the C++ core, built with AddressSanitizer and UBSan by
// `make sanitize`. Besides fixed cases it feeds random bytes and random code
// points through every path, so a read out of bounds shows up as an ASan
// report. Usage: core_test [vocab.txt]
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "core/packing.h"
#include "core/utf8.h"
#include "core/wordpiece.h"
#include "tests/check.h"

namespace {

std::vector<std::string> SmallVocab() {
  return {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "movie", "un", "##aff",
          "##able", "a", "b", "##b", ",", "!", "cafe", "中", "é", "##s", "x"};
}

std::vector<std::string> ReadVocab(const char* path) {
  std::vector<std::string> tokens;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
    tokens.push_back(line);
  }
  return tokens;
}

std::vector<int32_t> Ids(const kbf::Tokenizer& t, const std::string& text) {
  std::vector<int32_t> ids;
  kbf::Scratch scratch;
  CHECK(t.Encode(text, &ids, nullptr, &scratch));
  return ids;
}

void TestTokenizer() {
  kbf::Tokenizer t(SmallVocab(), kbf::TokenizerOptions{});
  CHECK((Ids(t, "The unaffable movie!") == std::vector<int32_t>{5, 7, 8, 9, 6, 14}));
  CHECK((Ids(t, "Café 中") == std::vector<int32_t>{15, 16}));
  CHECK((Ids(t, "abb") == std::vector<int32_t>{10, 12, 12}));
  CHECK((Ids(t, "abz") == std::vector<int32_t>{1}));  // no piece for "##z": the word is unknown
  CHECK((Ids(t, "a[SEP]b") == std::vector<int32_t>{10, 3, 11}));
  CHECK(Ids(t, "").empty());
  CHECK((Ids(t, std::string(101, 'x')) == std::vector<int32_t>{1}));  // over 100 chars
  std::vector<int32_t> ids;
  kbf::Scratch scratch;
  CHECK(!t.Encode(std::string("a\xff"), &ids, nullptr, &scratch));
  CHECK(!t.Encode(std::string("\xe2\x82"), &ids, nullptr, &scratch));
  CHECK(ids.empty());
}

void TestTruncation() {
  // The closed form against original BERT's pop loop, for every small case.
  for (size_t a = 0; a < 40; ++a) {
    for (size_t b = 0; b < 40; ++b) {
      for (size_t budget = 0; budget < 50; ++budget) {
        size_t x = a, y = b;
        while (x + y > budget) (x > y ? x : y) -= 1;
        kbf::Kept kept;
        CHECK(kbf::Truncate(a, b, budget, kbf::Truncation::kLongestFirst, &kept));
        CHECK(kept.first == x && kept.second == y);
        CHECK(kbf::Truncate(a, b, budget, kbf::Truncation::kRatio, &kept));
        CHECK(kept.first <= a && kept.second <= b && kept.first + kept.second <= budget);
        CHECK(kept.first + kept.second == std::min(a + b, budget));
      }
    }
  }
}

// Random UTF-8 (valid or not) through single and batch encoding.
void TestRandomInput(const kbf::Tokenizer& t, int rounds) {
  std::mt19937_64 rng(12345);
  std::uniform_int_distribution<int> byte(0, 255), length(0, 64), kind(0, 3);
  std::uniform_int_distribution<uint32_t> scalar(0, 0x10FFFF);
  for (int r = 0; r < rounds; ++r) {
    std::vector<std::string> texts(16);
    for (std::string& s : texts) {
      const int n = length(rng);
      for (int i = 0; i < n; ++i) {
        switch (kind(rng)) {
          case 0:
            s.push_back(static_cast<char>(byte(rng)));
            break;
          case 1: {
            const char32_t cp = scalar(rng);
            if (cp < 0xD800 || cp > 0xDFFF) kbf::utf8::Append(cp, &s);
            break;
          }
          default:
            s.push_back(static_cast<char>('a' + byte(rng) % 26));
        }
      }
    }
    std::vector<std::string_view> views(texts.begin(), texts.end());
    std::vector<std::string_view> pairs(views.rbegin(), views.rend());
    kbf::BatchOptions options;
    options.max_length = 1 + static_cast<size_t>(r % 40);
    options.truncation = static_cast<kbf::Truncation>(r % 5);  // kHeadTail: 4
    options.head_tokens = static_cast<size_t>(r % 7);
    options.num_threads = 1 + static_cast<size_t>(r % 3);
    options.offsets = r % 2 == 0;
    std::vector<int32_t> ids, mask, types, offsets;
    auto allocate = [&](size_t batch, size_t seq) {
      ids.assign(batch * seq, -1);
      mask.assign(batch * seq, -1);
      types.assign(batch * seq, -1);
      offsets.assign(batch * seq * 2, -1);
      return kbf::BatchBuffers{ids.data(), mask.data(), types.data(), offsets.data()};
    };
    const kbf::BatchError error = kbf::EncodeBatch(t, views, r % 2 ? pairs : std::vector<std::string_view>{},
                                                   options, allocate);
    bool all_valid = true;
    for (const auto& v : views) all_valid &= kbf::utf8::FindInvalid(v) == std::string_view::npos;
    if (options.max_length < (r % 2 ? 3u : 2u) ||
        (r % 2 && options.truncation == kbf::Truncation::kHeadTail)) {
      CHECK(!error.ok);
      continue;
    }
    if (all_valid && error.ok) {
      for (int32_t v : ids) CHECK(v >= 0);
      for (int32_t v : mask) CHECK(v == 0 || v == 1);
    }
    if (!all_valid) CHECK(!error.ok);
    for (const std::string& s : texts) {
      std::vector<int32_t> single;
      std::vector<kbf::Span> spans;
      kbf::Scratch scratch;
      if (t.Encode(s, &single, &spans, &scratch)) {
        CHECK(spans.size() == single.size());
        const size_t chars = kbf::utf8::CountCodePoints(s);
        for (const kbf::Span& span : spans) CHECK(span.begin <= span.end && span.end <= chars);
      }
    }
  }
}

// head_tail keeps the first head_tokens and the last budget - head_tokens; pairs refuse it.
void TestHeadTail(const kbf::Tokenizer& t) {
  const std::vector<std::string_view> texts = {"a b a b a b the movie", "the movie"};
  kbf::BatchOptions options;
  options.max_length = 6;
  options.truncation = kbf::Truncation::kHeadTail;
  options.head_tokens = 1;
  std::vector<int32_t> ids, mask, types;
  auto allocate = [&](size_t batch, size_t seq) {
    ids.assign(batch * seq, -1);
    mask.assign(batch * seq, -1);
    types.assign(batch * seq, -1);
    return kbf::BatchBuffers{ids.data(), mask.data(), types.data(), nullptr};
  };
  CHECK(kbf::EncodeBatch(t, texts, {}, options, allocate).ok);
  CHECK((ids == std::vector<int32_t>{2, 10, 11, 5, 6, 3, 2, 5, 6, 3, 0, 0}));
  options.head_tokens = 9;  // more than the budget: the head alone
  CHECK(kbf::EncodeBatch(t, texts, {}, options, allocate).ok);
  CHECK((std::vector<int32_t>(ids.begin(), ids.begin() + 6) ==
         std::vector<int32_t>{2, 10, 11, 10, 11, 3}));
  const kbf::BatchError error = kbf::EncodeBatch(t, texts, texts, options, allocate);
  CHECK(!error.ok && error.index == kbf::BatchError::kWholeBatch);
  CHECK(kbf::DescribeBatchError(error, texts, texts) ==
        "truncation 'head_tail' applies to single texts, not to pairs");
}

}  // namespace

int main(int argc, char** argv) {
  TestTokenizer();
  TestTruncation();
  kbf::Tokenizer small(SmallVocab(), kbf::TokenizerOptions{});
  TestHeadTail(small);
  TestRandomInput(small, 3000);
  if (argc > 1) {
    kbf::TokenizerOptions cased;
    cased.lowercase = cased.strip_accents = false;
    TestRandomInput(kbf::Tokenizer(ReadVocab(argv[1]), kbf::TokenizerOptions{}), 3000);
    TestRandomInput(kbf::Tokenizer(ReadVocab(argv[1]), cased), 1000);
  }
  if (kbf_test::failures) {
    std::fprintf(stderr, "%d failed, 0 passed\n", kbf_test::failures.load());
    return 1;
  }
  std::printf("core_test: all checks passed\n");
  return 0;
}
