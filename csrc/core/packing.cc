#include "packing.h"

#include <algorithm>
#include <memory>
#include <mutex>
#include <thread>

#include "utf8.h"

namespace kbf {

bool Truncate(size_t first, size_t second, size_t budget, Truncation strategy, Kept* kept) {
  *kept = {first, second};
  if (first + second <= budget) return true;
  switch (strategy) {
    case Truncation::kLongestFirst: {
      // Original BERT pops from the longer segment, the second on ties. The
      // closed form: the shorter keeps all it has if the longer can take the
      // rest; otherwise they meet in the middle with the first rounding up.
      const size_t shorter = std::min(first, second);
      if (shorter * 2 <= budget) {
        if (first <= second) {
          kept->second = budget - first;
        } else {
          kept->first = budget - second;
        }
      } else {
        kept->first = (budget + 1) / 2;
        kept->second = budget / 2;
      }
      return true;
    }
    case Truncation::kOnlyFirst:
      if (second > budget) return false;
      kept->first = budget - second;
      return true;
    case Truncation::kOnlySecond:
      if (first > budget) return false;
      kept->second = budget - first;
      return true;
    case Truncation::kHeadTail:  // one segment: EncodeBatch splits what the first keeps
      kept->first = budget - std::min(second, budget);
      kept->second = budget - kept->first;
      return true;
    case Truncation::kRatio: {
      // Each segment keeps its share of the budget, rounded to nearest, and at
      // least one token when it has any and the budget allows.
      const size_t total = first + second;
      const size_t share = (budget * first * 2 + total) / (total * 2);
      size_t low = budget > second ? budget - second : 0;
      size_t high = std::min(first, budget);
      if (first > 0 && budget >= 2) low = std::max<size_t>(low, 1);
      if (second > 0 && budget >= 2) high = std::min(high, budget - 1);
      kept->first = std::clamp(share, low, std::max(low, high));
      kept->second = budget - kept->first;
      return true;
    }
  }
  return false;
}

std::optional<Truncation> ParseTruncation(std::string_view name) {
  if (name == "longest_first") return Truncation::kLongestFirst;
  if (name == "only_first") return Truncation::kOnlyFirst;
  if (name == "only_second") return Truncation::kOnlySecond;
  if (name == "ratio") return Truncation::kRatio;
  if (name == "head_tail") return Truncation::kHeadTail;
  return std::nullopt;
}

const char* TruncationNames() {
  return "'longest_first', 'only_first', 'only_second', 'ratio', 'head_tail'";
}

std::string DescribeBatchError(const BatchError& error, const std::vector<std::string_view>& texts,
                               const std::vector<std::string_view>& pairs) {
  const std::vector<std::string_view>& views = error.segment == 0 ? texts : pairs;
  if (error.index >= views.size()) return error.message;  // about the batch, not one example
  const std::string where =
      std::string(error.segment == 0 ? "texts" : "pairs") + "[" + std::to_string(error.index) + "]";
  if (error.invalid_utf8) {
    return where + " is not valid UTF-8 (byte " +
           std::to_string(utf8::FindInvalid(views[error.index])) + ")";
  }
  return where + ": " + error.message;
}

size_t ParallelFor(size_t n, size_t threads,
                   const std::function<void(size_t, size_t, size_t)>& fn) {
  threads = std::max<size_t>(1, std::min(threads, n));
  if (threads == 1) {
    fn(0, 0, n);
    return 1;
  }
  std::vector<std::thread> workers;
  workers.reserve(threads - 1);
  const size_t chunk = (n + threads - 1) / threads;
  for (size_t t = 1; t < threads; ++t) {
    const size_t begin = std::min(n, t * chunk);
    const size_t end = std::min(n, begin + chunk);
    workers.emplace_back([&fn, t, begin, end]() { fn(t, begin, end); });
  }
  fn(0, 0, std::min(n, chunk));
  for (std::thread& w : workers) w.join();
  return threads;
}

namespace {

// The tokens of one chunk of examples. Aligned so that threads growing their
// own vectors never share a cache line.
struct alignas(128) Chunk {
  std::vector<int32_t> ids;   // each example's first then second segment
  std::vector<Span> spans;    // parallel to ids when offsets are wanted
  Scratch scratch;
  BatchError error;
};

struct Example {
  uint32_t chunk;
  size_t start;      // into the chunk's ids
  size_t first;      // tokens of the first segment before truncation
  size_t second;
  Kept kept;
  size_t head;       // of kept.first, how many come from the start (the rest from the end)
};

// Buffers of one call. They are kept between calls: handing their memory back
// to the system and faulting it in again cost more than the tokenizing, and
// the unmapping stalls the other threads (TLB shootdowns).
struct Workspace {
  std::vector<Example> examples;
  std::vector<Chunk> chunks;
};

// Above this many bytes a workspace is freed after use rather than kept.
constexpr size_t kMaxKeptBytes = size_t{256} << 20;

class WorkspacePool {
 public:
  std::unique_ptr<Workspace> Take() {
    std::lock_guard<std::mutex> lock(mutex_);
    if (free_.empty()) return std::make_unique<Workspace>();
    std::unique_ptr<Workspace> w = std::move(free_.back());
    free_.pop_back();
    return w;
  }
  void Give(std::unique_ptr<Workspace> w) {
    size_t bytes = w->examples.capacity() * sizeof(Example);
    for (const Chunk& c : w->chunks) {
      bytes += c.ids.capacity() * sizeof(int32_t) + c.spans.capacity() * sizeof(Span);
    }
    if (bytes > kMaxKeptBytes) return;
    std::lock_guard<std::mutex> lock(mutex_);
    if (free_.size() < 4) free_.push_back(std::move(w));
  }

 private:
  std::mutex mutex_;
  std::vector<std::unique_ptr<Workspace>> free_;
};

WorkspacePool& Pool() {
  static WorkspacePool* pool = new WorkspacePool();  // never destroyed: used at exit too
  return *pool;
}

}  // namespace

BatchError EncodeBatch(const Tokenizer& tokenizer, const std::vector<std::string_view>& texts,
                       const std::vector<std::string_view>& pairs, const BatchOptions& options,
                       const std::function<BatchBuffers(size_t, size_t)>& allocate) {
  const size_t n = texts.size();
  const bool has_pairs = !pairs.empty();
  BatchError error;
  if (has_pairs && pairs.size() != n) {
    error.ok = false;
    error.message = "texts and pairs differ in length";
    return error;
  }
  const size_t specials = has_pairs ? 3 : 2;
  if (options.max_length < specials) {
    error.ok = false;
    error.message = "max_length must be at least " + std::to_string(specials);
    return error;
  }
  if (has_pairs && options.truncation == Truncation::kHeadTail) {
    error.ok = false;
    error.message = "truncation 'head_tail' applies to single texts, not to pairs";
    return error;
  }
  const size_t budget = options.max_length - specials;
  // A single text is cut at the end, whatever the pair strategy, unless head_tail.
  const bool head_tail = options.truncation == Truncation::kHeadTail;
  const Truncation strategy = has_pairs ? options.truncation : Truncation::kLongestFirst;
  const size_t head_tokens = std::min(options.head_tokens, budget);
  const size_t threads = std::max<size_t>(1, std::min(options.num_threads, n / 64 + 1));

  std::unique_ptr<Workspace> workspace = Pool().Take();
  std::vector<Example>& examples = workspace->examples;
  std::vector<Chunk>& chunks = workspace->chunks;
  examples.resize(n);
  chunks.resize(threads);
  ParallelFor(n, threads, [&](size_t c, size_t begin, size_t end) {
    Chunk& chunk = chunks[c];
    chunk.ids.clear();
    chunk.spans.clear();
    chunk.error = BatchError{};
    // Every token but a special one consumes at least a byte, so the chunk's
    // bytes bound its token count: one reservation, no regrowing.
    size_t bytes = 0;
    for (size_t i = begin; i < end; ++i) {
      bytes += texts[i].size() + (has_pairs ? pairs[i].size() : 0);
    }
    chunk.ids.reserve(bytes);
    if (options.offsets) chunk.spans.reserve(bytes);
    Scratch& scratch = chunk.scratch;
    std::vector<Span>* spans = options.offsets ? &chunk.spans : nullptr;
    for (size_t i = begin; i < end; ++i) {
      Example& ex = examples[i];
      ex.chunk = static_cast<uint32_t>(c);
      ex.start = chunk.ids.size();
      if (!tokenizer.Encode(texts[i], &chunk.ids, spans, &scratch)) {
        chunk.error = {false, i, 0, true, "not valid UTF-8"};
        return;
      }
      ex.first = chunk.ids.size() - ex.start;
      if (has_pairs && !tokenizer.Encode(pairs[i], &chunk.ids, spans, &scratch)) {
        chunk.error = {false, i, 1, true, "not valid UTF-8"};
        return;
      }
      ex.second = chunk.ids.size() - ex.start - ex.first;
      if (!Truncate(ex.first, ex.second, budget, strategy, &ex.kept)) {
        chunk.error = {false, i, ex.second > budget ? 1 : 0, false,
                       "cannot truncate to max_length " + std::to_string(options.max_length) +
                           ": the other segment alone has " +
                           std::to_string(std::max(ex.first, ex.second)) + " tokens"};
        return;
      }
      // head_tail keeps the first head_tokens and the last (budget - head_tokens).
      ex.head = head_tail && ex.first > budget ? head_tokens : ex.kept.first;
    }
  });
  for (const Chunk& chunk : chunks) {
    if (!chunk.error.ok) {
      error = chunk.error;
      Pool().Give(std::move(workspace));
      return error;
    }
  }

  size_t seq = options.pad_to_max_length ? options.max_length : 0;
  if (!options.pad_to_max_length) {
    for (const Example& ex : examples) {
      seq = std::max(seq, ex.kept.first + ex.kept.second + (has_pairs ? 3 : 2));
    }
  }
  const size_t multiple = std::max<size_t>(1, options.pad_to_multiple_of);
  seq = (seq + multiple - 1) / multiple * multiple;

  const BatchBuffers out = allocate(n, seq);
  const int32_t cls = tokenizer.vocab().Find("[CLS]");
  const int32_t sep = tokenizer.vocab().Find("[SEP]");
  const int32_t pad = std::max(0, tokenizer.vocab().Find("[PAD]"));
  ParallelFor(n, threads, [&](size_t, size_t begin, size_t end) {
    for (size_t i = begin; i < end; ++i) {
      const Example& ex = examples[i];
      const Chunk& chunk = chunks[ex.chunk];
      int32_t* ids = out.input_word_ids + i * seq;
      int32_t* mask = out.input_mask + i * seq;
      int32_t* types = out.input_type_ids + i * seq;
      int32_t* offs = out.offsets ? out.offsets + i * seq * 2 : nullptr;
      size_t k = 0;
      auto put = [&](int32_t id, int32_t type, const Span* span) {
        ids[k] = id;
        mask[k] = 1;
        types[k] = type;
        if (offs) {
          offs[2 * k] = span ? static_cast<int32_t>(span->begin) : 0;
          offs[2 * k + 1] = span ? static_cast<int32_t>(span->end) : 0;
        }
        ++k;
      };
      auto put_segment = [&](size_t from, size_t count, int32_t type) {
        for (size_t j = from; j < from + count; ++j) {
          put(chunk.ids[j], type, offs ? &chunk.spans[j] : nullptr);
        }
      };
      put(cls, 0, nullptr);
      put_segment(ex.start, ex.head, 0);
      put_segment(ex.start + ex.first - (ex.kept.first - ex.head), ex.kept.first - ex.head, 0);
      put(sep, 0, nullptr);
      if (has_pairs) {
        put_segment(ex.start + ex.first, ex.kept.second, 1);
        put(sep, 1, nullptr);
      }
      // Padding, one array at a time: plain fills the compiler turns into wide stores.
      std::fill(ids + k, ids + seq, pad);
      std::fill(mask + k, mask + seq, 0);
      std::fill(types + k, types + seq, 0);
      if (offs) std::fill(offs + 2 * k, offs + 2 * seq, 0);
    }
  });
  Pool().Give(std::move(workspace));
  return error;
}

}  // namespace kbf
