// Unit test of what the TensorFlow kernel runs besides TensorFlow: vocab
// parsing, the shared tokenizer cache under concurrent first use, batch
// encoding from many threads at once (as tf.data's parallel map calls the
// kernel), and the error messages. Built with ASan/UBSan by `make sanitize-op`.
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "core/op_support.h"
#include "core/packing.h"
#include "tests/check.h"

namespace {

const char kVocab[] =
    "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nthe\nmovie\nis\ngood\nbad\n##s\n##ing\nrun\n"
    "caf\n##e\n,\n.\n!\nun\n##aff\n##able\n\xe4\xb8\xad\n";

// An in-memory file system for the cache's reader.
struct Files {
  std::map<std::string, std::string> contents;
  std::atomic<int> reads{0};

  kbf::TokenizerCache::ReadFile Reader() {
    return [this](const std::string& path, std::string* out, std::string* error) {
      ++reads;
      auto it = contents.find(path);
      if (it == contents.end()) {
        *error = path + ": not found";
        return false;
      }
      *out = it->second;
      return true;
    };
  }
};

void TestParseVocab() {
  std::vector<std::string> tokens;
  std::string error;
  CHECK(kbf::ParseVocab("a\r\nb \t\nc\xe3\x80\x80\nd", &tokens, &error));
  CHECK((tokens == std::vector<std::string>{"a", "b", "c", "d"}));
  CHECK(kbf::ParseVocab("a\n\nb\n", &tokens, &error));
  CHECK((tokens == std::vector<std::string>{"a", "", "b"}));
  CHECK(!kbf::ParseVocab("a\nb\n\xff\n", &tokens, &error));
  CHECK(error == "line 3: not valid UTF-8 (byte 4)");
  CHECK(!kbf::ParseVocab("", &tokens, &error));
  CHECK(error == "the vocabulary is empty");
  // As read_vocab: one empty line is one (empty) token.
  CHECK(kbf::ParseVocab("\n", &tokens, &error) && tokens.size() == 1 && tokens[0].empty());
  // A non-breaking space inside a token stays; only trailing whitespace goes.
  CHECK(kbf::ParseVocab("a\xc2\xa0" "b\xc2\xa0\n", &tokens, &error));
  CHECK(tokens.size() == 1 && tokens[0] == "a\xc2\xa0" "b");
}

void TestCheckVocabAndTruncation() {
  kbf::TokenizerOptions options;
  CHECK(kbf::CheckVocab({"[CLS]", "[SEP]", "[UNK]"}, options).empty());
  CHECK(kbf::CheckVocab({"[CLS]", "[UNK]"}, options) ==
        "the token '[SEP]' is not in the vocabulary");
  CHECK(kbf::ParseTruncation("longest_first") == kbf::Truncation::kLongestFirst);
  CHECK(kbf::ParseTruncation("only_first") == kbf::Truncation::kOnlyFirst);
  CHECK(kbf::ParseTruncation("ratio") == kbf::Truncation::kRatio);
  CHECK(kbf::ParseTruncation("only_second") == kbf::Truncation::kOnlySecond);
  CHECK(kbf::ParseTruncation("head_tail") == kbf::Truncation::kHeadTail);
  CHECK(!kbf::ParseTruncation("middle").has_value());
  CHECK(!kbf::ParseTruncation("").has_value());
}

void TestCacheErrors() {
  Files files;
  files.contents["bad"] = "x\n\xc3\n";
  files.contents["no_cls"] = "[SEP]\n[UNK]\n";
  kbf::TokenizerCache cache;
  std::string error;
  CHECK(cache.Get("missing", {}, files.Reader(), &error) == nullptr);
  CHECK(error == "missing: not found");
  CHECK(cache.Get("bad", {}, files.Reader(), &error) == nullptr);
  CHECK(error == "bad: line 2: not valid UTF-8 (byte 2)");
  CHECK(cache.Get("no_cls", {}, files.Reader(), &error) == nullptr);
  CHECK(error == "no_cls: the token '[CLS]' is not in the vocabulary");
  kbf::TokenizerOptions options;
  options.unk_token = "[NOPE]";
  files.contents["v"] = kVocab;
  CHECK(cache.Get("v", options, files.Reader(), &error) == nullptr);
  CHECK(cache.size() == 0);
}

std::string RandomText(std::mt19937* rng) {
  static const char* const kPieces[] = {
      "the ", "movie ", "is ", "running ", "caf\xc3\xa9 ", "unaffable", "!", ", ",
      "\xe4\xb8\xad", "[SEP]", "[MASK] ", "  ", "\t", "GOOD ", "x", "\xf0\x9f\x98\x80"};
  std::string text;
  const int words = static_cast<int>((*rng)() % 30);
  for (int i = 0; i < words; ++i) text += kPieces[(*rng)() % 16];
  if ((*rng)() % 40 == 0) text += "\xc3";  // truncated sequence: invalid UTF-8
  return text;
}

struct Encoded {
  kbf::BatchError error;
  size_t seq = 0;
  std::vector<int32_t> ids, mask, types;
};

Encoded Encode(const kbf::Tokenizer& tokenizer, const std::vector<std::string>& texts,
               const std::vector<std::string>& pairs, const kbf::BatchOptions& options) {
  std::vector<std::string_view> a(texts.begin(), texts.end());
  std::vector<std::string_view> b(pairs.begin(), pairs.end());
  Encoded out;
  out.error = kbf::EncodeBatch(tokenizer, a, b, options, [&](size_t n, size_t seq) {
    out.seq = seq;
    out.ids.assign(n * seq, -1);
    out.mask.assign(n * seq, -1);
    out.types.assign(n * seq, -1);
    return kbf::BatchBuffers{out.ids.data(), out.mask.data(), out.types.data(), nullptr};
  });
  if (!out.error.ok) out.error.message = kbf::DescribeBatchError(out.error, a, b);
  return out;
}

bool Same(const Encoded& x, const Encoded& y) {
  return x.error.ok == y.error.ok && x.error.message == y.error.message && x.seq == y.seq &&
         x.ids == y.ids && x.mask == y.mask && x.types == y.types;
}

// Many threads fetch the same two tokenizers (first use concurrent) and encode
// random batches; each result must equal the one computed alone.
void TestConcurrentCacheAndEncoding() {
  Files files;
  files.contents["vocab.txt"] = kVocab;
  kbf::TokenizerCache cache;
  kbf::TokenizerOptions uncased;
  kbf::TokenizerOptions cased;
  cased.lowercase = false;
  cased.strip_accents = false;

  std::vector<std::vector<std::string>> texts(64), pairs(64);
  std::mt19937 rng(7);
  for (size_t i = 0; i < texts.size(); ++i) {
    const size_t n = rng() % 40;  // empty batches too
    for (size_t k = 0; k < n; ++k) {
      texts[i].push_back(RandomText(&rng));
      pairs[i].push_back(RandomText(&rng));
    }
  }
  auto options_of = [](size_t i) {
    kbf::BatchOptions o;
    o.max_length = 8 + i % 24;
    o.truncation = static_cast<kbf::Truncation>(i % 4);
    o.pad_to_max_length = i % 3 == 0;
    o.pad_to_multiple_of = 1 + i % 5;
    o.num_threads = 1 + i % 3;
    return o;
  };
  std::string error;
  kbf::TokenizerCache reference_cache;
  std::vector<Encoded> want;
  for (size_t i = 0; i < texts.size(); ++i) {
    auto tokenizer = reference_cache.Get("vocab.txt", i % 2 ? cased : uncased, files.Reader(),
                                         &error);
    want.push_back(Encode(*tokenizer, texts[i], i % 3 ? pairs[i] : std::vector<std::string>(),
                          options_of(i)));
  }
  files.reads = 0;

  std::atomic<int> mismatches{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t]() {
      for (int round = 0; round < 4; ++round) {
        for (size_t k = 0; k < texts.size(); ++k) {
          const size_t i = (k + static_cast<size_t>(t) * 7) % texts.size();
          std::string thread_error;
          auto tokenizer = cache.Get("vocab.txt", i % 2 ? cased : uncased, files.Reader(),
                                     &thread_error);
          if (!tokenizer) {
            ++mismatches;
            continue;
          }
          const Encoded got = Encode(*tokenizer, texts[i],
                                     i % 3 ? pairs[i] : std::vector<std::string>(), options_of(i));
          if (!Same(got, want[i])) ++mismatches;
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  CHECK(mismatches == 0);
  CHECK(cache.size() == 2);
  CHECK(files.reads == 2);  // each tokenizer built once, however many threads asked
}

void TestErrorMessages() {
  Files files;
  files.contents["v"] = kVocab;
  kbf::TokenizerCache cache;
  std::string error;
  auto tokenizer = cache.Get("v", {}, files.Reader(), &error);
  kbf::BatchOptions options;
  Encoded e = Encode(*tokenizer, {"ok", "bad \xc3\x28"}, {}, options);
  CHECK(!e.error.ok && e.error.message == "texts[1] is not valid UTF-8 (byte 4)");
  e = Encode(*tokenizer, {"a", "b", "c"}, {"a", "b", "\xff"}, options);
  CHECK(!e.error.ok && e.error.message == "pairs[2] is not valid UTF-8 (byte 0)");
  options.max_length = 6;
  options.truncation = kbf::Truncation::kOnlySecond;
  e = Encode(*tokenizer, {"the movie is good"}, {"x"}, options);
  CHECK(!e.error.ok && e.error.message.rfind("texts[0]: cannot truncate", 0) == 0);
  e = Encode(*tokenizer, {}, {}, options);
  CHECK(e.error.ok && e.ids.empty());
  e = Encode(*tokenizer, {"", ""}, {"", ""}, options);
  CHECK(e.error.ok && e.seq == 3);
  // An error about the whole batch names no example.
  e = Encode(*tokenizer, {"a", "b"}, {"a"}, options);
  CHECK(!e.error.ok && e.error.message == "texts and pairs differ in length");
  options.max_length = 2;
  e = Encode(*tokenizer, {"a"}, {"b"}, options);
  CHECK(!e.error.ok && e.error.message == "max_length must be at least 3");
}

}  // namespace

int main() {
  TestParseVocab();
  TestCheckVocabAndTruncation();
  TestCacheErrors();
  TestErrorMessages();
  TestConcurrentCacheAndEncoding();
  if (kbf_test::failures) {
    std::fprintf(stderr, "%d check(s) failed\n", kbf_test::failures.load());
    return 1;
  }
  std::printf("op_support_test: all checks passed\n");
  return 0;
}
