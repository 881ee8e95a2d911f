// The C++ WordPiece core as a TensorFlow op (csrc/tf/ alone knows about
// TensorFlow). `KbfWordPieceEncode` tokenizes, truncates, packs and pads a
// batch exactly as WordPieceTokenizer.encode_batch does, because it calls the
// same kbf::EncodeBatch.
//
// The vocabulary arrives as a scalar string input holding the path of
// vocab.txt, so a SavedModel can feed it from a tf.saved_model.Asset and
// carry the file. Built tokenizers are cached per (path, options) for the
// whole process.
#include <cstdint>
#include <memory>
#include <new>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "core/op_support.h"
#include "core/packing.h"
#include "core/wordpiece.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/framework/tensor.h"
#include "tensorflow/core/platform/env.h"

namespace {

using ::tensorflow::OpKernel;
using ::tensorflow::OpKernelConstruction;
using ::tensorflow::OpKernelContext;
using ::tensorflow::Tensor;
using ::tensorflow::TensorShape;
using ::tensorflow::tstring;
using ::tensorflow::shape_inference::DimensionHandle;
using ::tensorflow::shape_inference::InferenceContext;
using ::tensorflow::shape_inference::ShapeHandle;

// InvalidArgumentError from message pieces (TF's errors:: helpers are deprecated).
template <typename... Args>
absl::Status Invalid(const Args&... pieces) {
  return absl::InvalidArgumentError(absl::StrCat(pieces...));
}

// The padded length when it is fixed: max_length rounded up to the multiple.
int64_t FixedLength(int64_t max_length, int64_t multiple) {
  return (max_length + multiple - 1) / multiple * multiple;
}

absl::Status EncodeShape(InferenceContext* c) {
  ShapeHandle texts;
  ShapeHandle unused;
  TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 1, &texts));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(1), 1, &unused));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(2), 0, &unused));
  bool pad_to_max_length = false;
  int64_t max_length = 0;
  int64_t multiple = 1;
  TF_RETURN_IF_ERROR(c->GetAttr("pad_to_max_length", &pad_to_max_length));
  TF_RETURN_IF_ERROR(c->GetAttr("max_length", &max_length));
  TF_RETURN_IF_ERROR(c->GetAttr("pad_to_multiple_of", &multiple));
  DimensionHandle seq = c->UnknownDim();
  // (Absurd lengths are left unknown here; the kernel reports them when allocating.)
  if (pad_to_max_length && multiple >= 1 && max_length <= (int64_t{1} << 40) &&
      multiple <= (int64_t{1} << 40)) {
    seq = c->MakeDim(FixedLength(max_length, multiple));
  }
  const ShapeHandle out = c->Matrix(c->Dim(texts, 0), seq);
  for (int i = 0; i < 3; ++i) c->set_output(i, out);
  return absl::OkStatus();
}

}  // namespace

REGISTER_OP("KbfWordPieceEncode")
    .Input("texts: string")
    .Input("pairs: string")
    .Input("vocab_path: string")
    .Output("input_word_ids: int32")
    .Output("input_mask: int32")
    .Output("input_type_ids: int32")
    .Attr("has_pairs: bool = false")
    .Attr("max_length: int = 128")
    .Attr("truncation: {'longest_first', 'only_first', 'only_second', 'ratio', 'head_tail'} = "
          "'longest_first'")
    .Attr("head_tokens: int = 0")
    .Attr("pad_to_max_length: bool = false")
    .Attr("pad_to_multiple_of: int = 1")
    .Attr("lowercase: bool = true")
    .Attr("strip_accents: bool = true")
    .Attr("max_input_chars_per_word: int = 100")
    .Attr("unk_token: string = '[UNK]'")
    .Attr("continuation_prefix: string = '##'")
    .Attr("special_tokens: list(string) = ['[UNK]', '[SEP]', '[CLS]', '[PAD]', '[MASK]']")
    .Attr("num_threads: int = 1")
    .SetShapeFn(EncodeShape)
    .Doc(R"doc(
BERT WordPiece tokenization, truncation, packing and padding of a batch.

Rows are `[CLS] a [SEP]`, or `[CLS] a [SEP] b [SEP]` when `has_pairs`, padded
to the longest row (or to `max_length` when `pad_to_max_length`), rounded up
to `pad_to_multiple_of`. Equal to keras_bert_ft's `encode_batch`.

texts: [batch] UTF-8 strings, the first segments.
pairs: [batch] second segments when `has_pairs`; ignored otherwise.
vocab_path: scalar path of vocab.txt (one token a line, id = line number).
head_tokens: with truncation 'head_tail' (single texts only), the tokens kept
  from the start; the rest of the room goes to the end of the text.
)doc");

namespace {

class WordPieceEncodeOp : public OpKernel {
 public:
  explicit WordPieceEncodeOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    int64_t max_length = 0;
    int64_t multiple = 0;
    int64_t max_chars = 0;
    int64_t threads = 0;
    std::string truncation;
    OP_REQUIRES_OK(ctx, ctx->GetAttr("has_pairs", &has_pairs_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("max_length", &max_length));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("truncation", &truncation));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("pad_to_max_length", &batch_.pad_to_max_length));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("pad_to_multiple_of", &multiple));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("lowercase", &options_.lowercase));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("strip_accents", &options_.strip_accents));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("max_input_chars_per_word", &max_chars));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("unk_token", &options_.unk_token));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("continuation_prefix", &options_.continuation_prefix));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("special_tokens", &options_.special_tokens));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("num_threads", &threads));
    int64_t head_tokens = 0;
    OP_REQUIRES_OK(ctx, ctx->GetAttr("head_tokens", &head_tokens));
    OP_REQUIRES(ctx, head_tokens >= 0, Invalid("head_tokens must be >= 0, got ", head_tokens));
    batch_.head_tokens = static_cast<size_t>(head_tokens);
    const int64_t specials = has_pairs_ ? 3 : 2;
    OP_REQUIRES(ctx, max_length >= specials,
                Invalid("max_length must be at least ", specials, ", got ", max_length));
    OP_REQUIRES(ctx, multiple >= 1, Invalid("pad_to_multiple_of must be positive, got ", multiple));
    OP_REQUIRES(ctx, max_chars >= 0,
                Invalid("max_input_chars_per_word must be >= 0, got ", max_chars));
    OP_REQUIRES(ctx, threads >= 1, Invalid("num_threads must be positive, got ", threads));
    const std::optional<kbf::Truncation> strategy = kbf::ParseTruncation(truncation);
    OP_REQUIRES(ctx, strategy.has_value(),
                Invalid("truncation must be one of ", kbf::TruncationNames(), "; got '",
                        truncation, "'"));
    batch_.truncation = *strategy;
    batch_.max_length = static_cast<size_t>(max_length);
    batch_.pad_to_multiple_of = static_cast<size_t>(multiple);
    batch_.num_threads = static_cast<size_t>(threads);
    options_.max_input_chars_per_word = static_cast<size_t>(max_chars);
  }

  void Compute(OpKernelContext* ctx) override {
    const Tensor& texts = ctx->input(0);
    const Tensor& pairs = ctx->input(1);
    const Tensor& vocab_path = ctx->input(2);
    OP_REQUIRES(ctx, texts.dims() == 1,
                Invalid("texts must be a vector, got shape ", texts.shape().DebugString()));
    OP_REQUIRES(ctx, vocab_path.dims() == 0,
                Invalid("vocab_path must be a scalar, got shape ",
                        vocab_path.shape().DebugString()));
    if (has_pairs_) {
      OP_REQUIRES(ctx, pairs.dims() == 1 && pairs.dim_size(0) == texts.dim_size(0),
                  Invalid("pairs must be a vector as long as texts (", texts.dim_size(0),
                          "), got shape ", pairs.shape().DebugString()));
    }

    const std::string path(vocab_path.scalar<tstring>()());
    absl::Status read_status;
    auto read = [ctx, &read_status](const std::string& file, std::string* contents,
                                    std::string* error) {
      read_status = ::tensorflow::ReadFileToString(ctx->env(), file, contents);
      if (!read_status.ok()) *error = std::string(read_status.message());
      return read_status.ok();
    };
    std::string error;
    const std::shared_ptr<const kbf::Tokenizer> tokenizer =
        kbf::TokenizerCache::Global().Get(path, options_, read, &error);
    OP_REQUIRES_OK(ctx, read_status);
    OP_REQUIRES(ctx, tokenizer != nullptr, Invalid(error));

    const std::vector<std::string_view> first = Views(texts);
    const std::vector<std::string_view> second =
        has_pairs_ ? Views(pairs) : std::vector<std::string_view>();

    // EncodeBatch asks for the outputs once it knows the padded length, on
    // this thread, between its two passes; when they cannot be had, throwing
    // from the callback abandons the batch before anything is written.
    struct AllocationFailed {};
    absl::Status allocation;
    auto allocate = [&](size_t batch, size_t seq) {
      TensorShape shape;
      allocation = shape.AddDimWithStatus(static_cast<int64_t>(batch));
      if (allocation.ok()) allocation = shape.AddDimWithStatus(static_cast<int64_t>(seq));
      int32_t* buffers[3] = {nullptr, nullptr, nullptr};
      for (int i = 0; i < 3 && allocation.ok(); ++i) {
        Tensor* out = nullptr;
        allocation = ctx->allocate_output(i, shape, &out);
        if (allocation.ok()) buffers[i] = out->flat<int32_t>().data();
      }
      if (!allocation.ok()) throw AllocationFailed();
      return kbf::BatchBuffers{buffers[0], buffers[1], buffers[2], nullptr};
    };
    kbf::BatchError result;
    try {
      result = kbf::EncodeBatch(*tokenizer, first, second, batch_, allocate);
    } catch (const AllocationFailed&) {
      OP_REQUIRES_OK(ctx, allocation);
    } catch (const std::bad_alloc&) {
      OP_REQUIRES_OK(ctx, absl::ResourceExhaustedError("out of memory tokenizing the batch"));
    }
    OP_REQUIRES(ctx, result.ok, Invalid(kbf::DescribeBatchError(result, first, second)));
  }

 private:
  static std::vector<std::string_view> Views(const Tensor& strings) {
    const auto flat = strings.flat<tstring>();
    std::vector<std::string_view> views;
    views.reserve(static_cast<size_t>(flat.size()));
    for (int64_t i = 0; i < flat.size(); ++i) views.emplace_back(flat(i).data(), flat(i).size());
    return views;
  }

  bool has_pairs_ = false;
  kbf::TokenizerOptions options_;
  kbf::BatchOptions batch_;
};

}  // namespace

REGISTER_KERNEL_BUILDER(Name("KbfWordPieceEncode").Device(::tensorflow::DEVICE_CPU),
                        WordPieceEncodeOp);

// The TensorFlow version this library was compiled against, passed by
// setup.py (the pip headers do not define TF_VERSION_STRING). For diagnostics:
// keras_bert_ft.ops checks a file written at build time before loading.
#ifndef KBF_BUILT_WITH_TF
#define KBF_BUILT_WITH_TF "unknown"
#endif
extern "C" __attribute__((visibility("default"))) const char* kbf_built_with_tensorflow() {
  return KBF_BUILT_WITH_TF;
}
