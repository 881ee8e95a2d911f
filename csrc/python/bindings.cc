// The Python binding of the tokenizer core (csrc/python/ alone knows about Python).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/packing.h"
#include "core/utf8.h"
#include "core/wordpiece.h"

namespace py = pybind11;

// Defined in masking_bindings.cc.
void RegisterMasking(py::module_& m);

namespace {

// Borrowed UTF-8 views of a sequence of str or bytes. The tuple keeps every
// item alive (and unchanged) while the GIL is released.
struct TextViews {
  py::tuple items;
  std::vector<std::string_view> views;
};

TextViews CollectTexts(py::handle sequence, const char* name) {
  if (PyUnicode_Check(sequence.ptr()) || PyBytes_Check(sequence.ptr())) {
    throw py::type_error(std::string(name) + " must be a sequence of strings, not a single string");
  }
  PyObject* tuple = PySequence_Tuple(sequence.ptr());
  if (tuple == nullptr) {
    PyErr_Clear();
    throw py::type_error(std::string(name) + " must be a sequence of strings, got " +
                         std::string(Py_TYPE(sequence.ptr())->tp_name));
  }
  TextViews out{py::reinterpret_steal<py::tuple>(tuple), {}};
  const Py_ssize_t n = PyTuple_GET_SIZE(tuple);
  out.views.reserve(static_cast<size_t>(n));
  for (Py_ssize_t i = 0; i < n; ++i) {
    PyObject* item = PyTuple_GET_ITEM(tuple, i);
    // Only built for an error message: this loop runs for every text.
    const auto where = [&]() { return std::string(name) + "[" + std::to_string(i) + "]"; };
    if (PyUnicode_Check(item)) {
      Py_ssize_t size = 0;
      const char* data = PyUnicode_AsUTF8AndSize(item, &size);
      if (data == nullptr) {
        PyErr_Clear();
        throw py::value_error(where() + " cannot be encoded as UTF-8 (it contains a lone surrogate)");
      }
      out.views.emplace_back(data, static_cast<size_t>(size));
    } else if (PyBytes_Check(item)) {
      out.views.emplace_back(PyBytes_AS_STRING(item), static_cast<size_t>(PyBytes_GET_SIZE(item)));
    } else if (item == Py_None) {
      throw py::type_error(where() + " is None; expected str or bytes");
    } else {
      throw py::type_error(where() + " has type " +
                           std::string(Py_TYPE(item)->tp_name) +
                           "; expected str or bytes");
    }
  }
  return out;
}

std::string_view OneText(const py::handle& text, std::string* storage) {
  if (PyUnicode_Check(text.ptr())) {
    Py_ssize_t size = 0;
    const char* data = PyUnicode_AsUTF8AndSize(text.ptr(), &size);
    if (data == nullptr) {
      PyErr_Clear();
      throw py::value_error("text cannot be encoded as UTF-8 (it contains a lone surrogate)");
    }
    return {data, static_cast<size_t>(size)};
  }
  if (PyBytes_Check(text.ptr())) {
    *storage = std::string(py::bytes(py::reinterpret_borrow<py::object>(text)));
    return *storage;
  }
  if (text.is_none()) throw py::type_error("text is None; expected str or bytes");
  throw py::type_error("text has type " + std::string(Py_TYPE(text.ptr())->tp_name) +
                       "; expected str or bytes");
}

// Memory for the output arrays, recycled between calls: fresh pages from the
// system cost more than tokenizing, and with several threads writing them
// the page faults and later unmapping serialize the threads.
struct OutputBlock {
  std::unique_ptr<int32_t[]> data;
  size_t capacity = 0;
};

class OutputPool {
 public:
  OutputBlock* Take(size_t cells) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      // The smallest block that fits, so big blocks stay free for big calls.
      auto best = free_.end();
      for (auto it = free_.begin(); it != free_.end(); ++it) {
        if ((*it)->capacity >= cells && (best == free_.end() || (*it)->capacity < (*best)->capacity)) {
          best = it;
        }
      }
      if (best != free_.end()) {
        OutputBlock* block = *best;
        free_.erase(best);
        return block;
      }
    }
    auto* block = new OutputBlock;
    block->data.reset(new int32_t[std::max<size_t>(cells, 1)]);  // not zeroed: all is written
    block->capacity = cells;
    return block;
  }
  // Keeps the largest few blocks, so many small calls do not evict a big one.
  void Give(OutputBlock* block) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (block->capacity > kMaxCells) {
      delete block;
    } else if (free_.size() < kKept) {
      free_.push_back(block);
    } else {
      auto smallest = std::min_element(free_.begin(), free_.end(),
                                       [](const OutputBlock* a, const OutputBlock* b) {
                                         return a->capacity < b->capacity;
                                       });
      if ((*smallest)->capacity < block->capacity) std::swap(*smallest, block);
      delete block;
    }
  }

 private:
  static constexpr size_t kKept = 4;
  static constexpr size_t kMaxCells = size_t{64} << 20;  // 256 MB
  std::mutex mutex_;
  std::vector<OutputBlock*> free_;
};

OutputPool& Outputs() {
  static OutputPool* pool = new OutputPool();  // never destroyed: arrays may outlive exit hooks
  return *pool;
}

class PyTokenizer {
 public:
  PyTokenizer(std::vector<std::string> tokens, bool lowercase, bool strip_accents,
              size_t max_input_chars_per_word, std::string unk_token,
              std::vector<std::string> special_tokens, std::string continuation_prefix)
      : core_(std::move(tokens), MakeOptions(lowercase, strip_accents, max_input_chars_per_word,
                                             std::move(unk_token), std::move(special_tokens),
                                             std::move(continuation_prefix))) {}

  // Ids (and code point spans, when asked) of one text, without special tokens.
  py::tuple Encode(const py::handle& text, bool offsets) const {
    std::string storage;
    const std::string_view view = OneText(text, &storage);
    std::vector<int32_t> ids;
    std::vector<kbf::Span> spans;
    bool ok;
    {
      py::gil_scoped_release release;
      kbf::Scratch scratch;
      ok = core_.Encode(view, &ids, offsets ? &spans : nullptr, &scratch);
    }
    if (!ok) {
      throw py::value_error("text is not valid UTF-8 (byte " +
                            std::to_string(kbf::utf8::FindInvalid(view)) + ")");
    }
    if (!offsets) return py::make_tuple(py::cast(ids), py::none());
    py::list spans_out;
    for (const kbf::Span& s : spans) spans_out.append(py::make_tuple(s.begin, s.end));
    return py::make_tuple(py::cast(ids), spans_out);
  }

  py::list Tokenize(const py::handle& text) const {
    std::string storage;
    const std::string_view view = OneText(text, &storage);
    std::vector<int32_t> ids;
    kbf::Scratch scratch;
    if (!core_.Encode(view, &ids, nullptr, &scratch)) {
      throw py::value_error("text is not valid UTF-8 (byte " +
                            std::to_string(kbf::utf8::FindInvalid(view)) + ")");
    }
    py::list tokens;
    for (int32_t id : ids) tokens.append(py::str(core_.vocab().Token(static_cast<size_t>(id))));
    return tokens;
  }

  py::dict EncodeBatch(const py::handle& texts, const py::handle& pairs, size_t max_length,
                       const std::string& truncation, bool pad_to_max_length,
                       size_t pad_to_multiple_of, size_t num_threads, bool offsets,
                       size_t head_tokens) const {
    const TextViews first = CollectTexts(texts, "texts");
    TextViews second;
    if (!pairs.is_none()) {
      second = CollectTexts(pairs, "pairs");
      if (second.views.size() != first.views.size()) {
        throw py::value_error("texts and pairs differ in length: " +
                              std::to_string(first.views.size()) + " and " +
                              std::to_string(second.views.size()));
      }
    }
    kbf::BatchOptions options;
    options.max_length = max_length;
    const std::optional<kbf::Truncation> strategy = kbf::ParseTruncation(truncation);
    if (!strategy) {
      throw py::value_error(std::string("truncation must be one of ") + kbf::TruncationNames() +
                            "; got '" + truncation + "'");
    }
    options.truncation = *strategy;
    options.head_tokens = head_tokens;
    options.pad_to_max_length = pad_to_max_length;
    options.pad_to_multiple_of = pad_to_multiple_of;
    options.offsets = offsets;
    options.num_threads = num_threads;

    py::array_t<int32_t> ids, mask, types, spans;
    auto allocate = [&](size_t batch, size_t seq) {
      py::gil_scoped_acquire acquire;
      const size_t cells = batch * seq;
      OutputBlock* block = Outputs().Take(cells * (offsets ? 5 : 3));
      // The arrays share one block; it goes back to the pool when the last dies.
      py::capsule owner(block, [](void* p) { Outputs().Give(static_cast<OutputBlock*>(p)); });
      const auto b = static_cast<py::ssize_t>(batch);
      const auto s = static_cast<py::ssize_t>(seq);
      int32_t* base = block->data.get();
      ids = py::array_t<int32_t>({b, s}, base, owner);
      mask = py::array_t<int32_t>({b, s}, base + cells, owner);
      types = py::array_t<int32_t>({b, s}, base + 2 * cells, owner);
      if (offsets) spans = py::array_t<int32_t>({b, s, py::ssize_t{2}}, base + 3 * cells, owner);
      return kbf::BatchBuffers{base, base + cells, base + 2 * cells,
                               offsets ? base + 3 * cells : nullptr};
    };
    kbf::BatchError error;
    {
      py::gil_scoped_release release;
      error = kbf::EncodeBatch(core_, first.views, second.views, options, allocate);
    }
    if (!error.ok) throw py::value_error(kbf::DescribeBatchError(error, first.views, second.views));
    py::dict out;
    out["input_word_ids"] = ids;
    out["input_mask"] = mask;
    out["input_type_ids"] = types;
    if (offsets) out["offsets"] = spans;
    return out;
  }

  size_t VocabSize() const { return core_.vocab().size(); }
  std::string IdToToken(size_t id) const {
    if (id >= core_.vocab().size()) throw py::index_error("token id " + std::to_string(id) + " out of range");
    return core_.vocab().Token(id);
  }
  int32_t TokenToId(const std::string& token) const { return core_.vocab().Find(token); }

 private:
  static kbf::TokenizerOptions MakeOptions(bool lowercase, bool strip_accents, size_t max_chars,
                                           std::string unk, std::vector<std::string> specials,
                                           std::string prefix) {
    kbf::TokenizerOptions o;
    o.lowercase = lowercase;
    o.strip_accents = strip_accents;
    o.max_input_chars_per_word = max_chars;
    o.unk_token = std::move(unk);
    o.special_tokens = std::move(specials);
    o.continuation_prefix = std::move(prefix);
    return o;
  }

  kbf::Tokenizer core_;
};

}  // namespace

PYBIND11_MODULE(_wordpiece, m) {
  m.doc() = "C++ WordPiece tokenizer core (use keras_bert_ft.WordPieceTokenizer).";
  py::class_<PyTokenizer>(m, "Tokenizer")
      .def(py::init<std::vector<std::string>, bool, bool, size_t, std::string,
                    std::vector<std::string>, std::string>(),
           py::arg("tokens"), py::arg("lowercase"), py::arg("strip_accents"),
           py::arg("max_input_chars_per_word"), py::arg("unk_token"), py::arg("special_tokens"),
           py::arg("continuation_prefix"))
      .def("encode", &PyTokenizer::Encode, py::arg("text"), py::arg("offsets"))
      .def("tokenize", &PyTokenizer::Tokenize, py::arg("text"))
      .def("encode_batch", &PyTokenizer::EncodeBatch, py::arg("texts"), py::arg("pairs"),
           py::arg("max_length"), py::arg("truncation"), py::arg("pad_to_max_length"),
           py::arg("pad_to_multiple_of"), py::arg("num_threads"), py::arg("offsets"),
           py::arg("head_tokens") = 0)
      .def_property_readonly("vocab_size", &PyTokenizer::VocabSize)
      .def("id_to_token", &PyTokenizer::IdToToken, py::arg("id"))
      .def("token_to_id", &PyTokenizer::TokenToId, py::arg("token"));
  RegisterMasking(m);
}
