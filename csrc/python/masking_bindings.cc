// The Python binding of the masking core (kbf::MaskBatch), registered into the
// `_wordpiece` module by bindings.cc.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>

#include "core/masking.h"

namespace py = pybind11;

namespace {

using IntArray = py::array_t<int32_t, py::array::c_style | py::array::forcecast>;

py::dict MaskTokens(const IntArray& ids, const py::object& input_mask, const IntArray& kinds,
                    uint64_t seed, float select_rate, float mask_rate, float random_rate,
                    size_t max_predictions, bool whole_word, int32_t mask_id,
                    size_t num_threads) {
  if (ids.ndim() != 2) {
    throw py::value_error("ids must be a 2-D array [batch, seq], got " +
                          std::to_string(ids.ndim()) + " dimensions");
  }
  if (kinds.ndim() != 1) throw py::value_error("token kinds must be a 1-D array");
  const auto batch = static_cast<size_t>(ids.shape(0));
  const auto seq = static_cast<size_t>(ids.shape(1));
  IntArray mask;
  if (!input_mask.is_none()) {
    mask = input_mask.cast<IntArray>();
    if (mask.ndim() != 2 || static_cast<size_t>(mask.shape(0)) != batch ||
        static_cast<size_t>(mask.shape(1)) != seq) {
      throw py::value_error("input_mask must have the shape of ids");
    }
  }
  kbf::MaskingOptions options;
  options.select_rate = select_rate;
  options.mask_rate = mask_rate;
  options.random_rate = random_rate;
  options.max_predictions = max_predictions;
  options.whole_word = whole_word;
  options.mask_id = mask_id;
  const auto b = static_cast<py::ssize_t>(batch);
  const auto s = static_cast<py::ssize_t>(seq);
  const auto p = static_cast<py::ssize_t>(max_predictions);
  py::array_t<int32_t> masked({b, s});
  py::array_t<int32_t> positions({b, p});
  py::array_t<int32_t> labels({b, p});
  py::array_t<float> weights({b, p});
  const kbf::MaskingOutputs out{masked.mutable_data(), positions.mutable_data(),
                                labels.mutable_data(), weights.mutable_data()};
  const int32_t* mask_data = input_mask.is_none() ? nullptr : mask.data();
  std::string error;
  {
    py::gil_scoped_release release;
    error = kbf::MaskBatch(ids.data(), mask_data, batch, seq, kinds.data(),
                           static_cast<size_t>(kinds.shape(0)), options, seed, out, num_threads);
  }
  if (!error.empty()) throw py::value_error(error);
  py::dict result;
  result["input_word_ids"] = masked;
  result["masked_lm_positions"] = positions;
  result["masked_lm_ids"] = labels;
  result["masked_lm_weights"] = weights;
  return result;
}

}  // namespace

void RegisterMasking(py::module_& m) {
  m.def("mask_tokens", &MaskTokens, py::arg("ids"), py::arg("input_mask"), py::arg("kinds"),
        py::arg("seed"), py::arg("select_rate"), py::arg("mask_rate"), py::arg("random_rate"),
        py::arg("max_predictions"), py::arg("whole_word"), py::arg("mask_id"),
        py::arg("num_threads"),
        "BERT masked-LM masking of a [batch, seq] int32 id array (see csrc/core/masking.h).");
}
