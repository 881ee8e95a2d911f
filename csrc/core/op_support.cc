#include "op_support.h"

#include <stdexcept>

#include "utf8.h"

namespace kbf {

namespace {

bool IsPythonSpace(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 ||
         c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 ||
         c == 0x202F || c == 0x205F || c == 0x3000;
}

// `line` without trailing whitespace; `line` is valid UTF-8.
std::string_view RightStrip(std::string_view line) {
  size_t keep = 0;  // bytes up to the end of the last non-space code point
  size_t pos = 0;
  while (pos < line.size()) {
    const char32_t c = utf8::Decode(line, &pos);
    if (!IsPythonSpace(c)) keep = pos;
  }
  return line.substr(0, keep);
}

// A key that tells apart every field of the options.
std::string CacheKey(const std::string& path, const TokenizerOptions& o) {
  std::string key;
  auto add = [&key](std::string_view field) {
    key += std::to_string(field.size());
    key += ':';
    key += field;
  };
  add(path);
  add(o.lowercase ? "1" : "0");
  add(o.strip_accents ? "1" : "0");
  add(std::to_string(o.max_input_chars_per_word));
  add(o.unk_token);
  add(o.continuation_prefix);
  for (const std::string& s : o.special_tokens) add(s);
  return key;
}

}  // namespace

bool ParseVocab(std::string_view contents, std::vector<std::string>* tokens, std::string* error) {
  const size_t bad = utf8::FindInvalid(contents);
  if (bad != std::string_view::npos) {
    size_t line = 1;
    for (size_t i = 0; i < bad; ++i) line += contents[i] == '\n';
    *error = "line " + std::to_string(line) + ": not valid UTF-8 (byte " + std::to_string(bad) + ")";
    return false;
  }
  tokens->clear();
  size_t begin = 0;
  while (true) {
    const size_t end = contents.find('\n', begin);
    const std::string_view line =
        contents.substr(begin, end == std::string_view::npos ? std::string_view::npos : end - begin);
    tokens->emplace_back(RightStrip(line));
    if (end == std::string_view::npos) break;
    begin = end + 1;
  }
  if (tokens->back().empty()) tokens->pop_back();  // the newline that ends the last line
  if (tokens->empty()) {
    *error = "the vocabulary is empty";
    return false;
  }
  return true;
}

std::string CheckVocab(const std::vector<std::string>& tokens, const TokenizerOptions& options) {
  for (const std::string& needed : {std::string("[CLS]"), std::string("[SEP]"), options.unk_token}) {
    bool found = false;
    for (const std::string& t : tokens) {
      if (t == needed) {
        found = true;
        break;
      }
    }
    if (!found) return "the token '" + needed + "' is not in the vocabulary";
  }
  return "";
}

std::shared_ptr<const Tokenizer> TokenizerCache::Get(const std::string& path,
                                                     const TokenizerOptions& options,
                                                     const ReadFile& read, std::string* error) {
  const std::string key = CacheKey(path, options);
  // Built under the lock: a vocabulary takes milliseconds, once per process,
  // and concurrent first calls then build it once.
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = tokenizers_.find(key);
  if (it != tokenizers_.end()) return it->second;
  std::string contents;
  if (!read(path, &contents, error)) return nullptr;
  std::vector<std::string> tokens;
  if (!ParseVocab(contents, &tokens, error)) {
    *error = path + ": " + *error;
    return nullptr;
  }
  const std::string problem = CheckVocab(tokens, options);
  if (!problem.empty()) {
    *error = path + ": " + problem;
    return nullptr;
  }
  std::shared_ptr<const Tokenizer> tokenizer;
  try {
    tokenizer = std::make_shared<const Tokenizer>(std::move(tokens), options);
  } catch (const std::exception& e) {
    *error = path + ": " + e.what();
    return nullptr;
  }
  tokenizers_.emplace(key, tokenizer);
  return tokenizer;
}

size_t TokenizerCache::size() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return tokenizers_.size();
}

TokenizerCache& TokenizerCache::Global() {
  static TokenizerCache* cache = new TokenizerCache();  // never destroyed: kernels may outlive exit
  return *cache;
}

}  // namespace kbf
