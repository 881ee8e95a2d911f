// The masking core (kbf::MaskBatch) as the TensorFlow op `KbfMaskTokens`, so a
// tf.data pipeline masks in C++ without Python per example. Same function as
// the Python binding, so the same seed gives the same masks on both paths.
#include <algorithm>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "core/masking.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/framework/tensor.h"

namespace {

using ::tensorflow::OpKernel;
using ::tensorflow::OpKernelConstruction;
using ::tensorflow::OpKernelContext;
using ::tensorflow::Tensor;
using ::tensorflow::TensorShape;
using ::tensorflow::shape_inference::InferenceContext;
using ::tensorflow::shape_inference::ShapeHandle;

absl::Status MaskShape(InferenceContext* c) {
  ShapeHandle ids;
  ShapeHandle unused;
  TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 2, &ids));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(1), 2, &unused));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(2), 1, &unused));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(3), 0, &unused));
  int64_t max_predictions = 0;
  TF_RETURN_IF_ERROR(c->GetAttr("max_predictions", &max_predictions));
  c->set_output(0, ids);
  const ShapeHandle predictions = c->Matrix(c->Dim(ids, 0), std::max<int64_t>(0, max_predictions));
  for (int i = 1; i < 4; ++i) c->set_output(i, predictions);
  return absl::OkStatus();
}

}  // namespace

REGISTER_OP("KbfMaskTokens")
    .Input("input_word_ids: int32")
    .Input("input_mask: int32")
    .Input("token_kinds: int32")
    .Input("seed: int64")
    .Output("masked_word_ids: int32")
    .Output("masked_lm_positions: int32")
    .Output("masked_lm_ids: int32")
    .Output("masked_lm_weights: float")
    .Attr("select_rate: float = 0.15")
    .Attr("mask_rate: float = 0.8")
    .Attr("random_rate: float = 0.1")
    .Attr("max_predictions: int = 20")
    .Attr("whole_word: bool = false")
    .Attr("mask_id: int")
    .SetShapeFn(MaskShape)
    .Doc(R"doc(
BERT masked-LM masking of a packed batch, as keras_bert_ft's mask_tokens.

token_kinds: [vocab] 0 word start, 1 "##" continuation, 2 special (never masked).
seed: scalar; each row's masks depend on (seed, row index) only.
)doc");

namespace {

class MaskTokensOp : public OpKernel {
 public:
  explicit MaskTokensOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    int64_t max_predictions = 0;
    OP_REQUIRES_OK(ctx, ctx->GetAttr("select_rate", &options_.select_rate));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("mask_rate", &options_.mask_rate));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("random_rate", &options_.random_rate));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("max_predictions", &max_predictions));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("whole_word", &options_.whole_word));
    int64_t mask_id = 0;
    OP_REQUIRES_OK(ctx, ctx->GetAttr("mask_id", &mask_id));
    OP_REQUIRES(ctx, max_predictions >= 1 && max_predictions <= (int64_t{1} << 20),
                absl::InvalidArgumentError("max_predictions must be in [1, 2^20], got " +
                                           std::to_string(max_predictions)));
    OP_REQUIRES(ctx, mask_id >= 0 && mask_id < (int64_t{1} << 31),
                absl::InvalidArgumentError("mask_id must be a non-negative int32, got " +
                                           std::to_string(mask_id)));
    options_.max_predictions = static_cast<size_t>(max_predictions);
    options_.mask_id = static_cast<int32_t>(mask_id);
  }

  void Compute(OpKernelContext* ctx) override {
    const Tensor& ids = ctx->input(0);
    const Tensor& mask = ctx->input(1);
    const Tensor& kinds = ctx->input(2);
    const Tensor& seed = ctx->input(3);
    OP_REQUIRES(ctx, ids.dims() == 2,
                absl::InvalidArgumentError("input_word_ids must be [batch, seq], got shape " +
                                           ids.shape().DebugString()));
    OP_REQUIRES(ctx, mask.shape() == ids.shape(),
                absl::InvalidArgumentError("input_mask must have the shape of input_word_ids, got " +
                                           mask.shape().DebugString()));
    OP_REQUIRES(ctx, kinds.dims() == 1,
                absl::InvalidArgumentError("token_kinds must be a vector"));
    OP_REQUIRES(ctx, seed.dims() == 0, absl::InvalidArgumentError("seed must be a scalar"));
    const int64_t batch = ids.dim_size(0);
    const int64_t seq = ids.dim_size(1);
    const auto predictions = static_cast<int64_t>(options_.max_predictions);
    Tensor* masked = nullptr;
    Tensor* positions = nullptr;
    Tensor* labels = nullptr;
    Tensor* weights = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, ids.shape(), &masked));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, TensorShape({batch, predictions}), &positions));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(2, TensorShape({batch, predictions}), &labels));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(3, TensorShape({batch, predictions}), &weights));
    const kbf::MaskingOutputs out{masked->flat<int32_t>().data(),
                                  positions->flat<int32_t>().data(),
                                  labels->flat<int32_t>().data(), weights->flat<float>().data()};
    const std::string error = kbf::MaskBatch(
        ids.flat<int32_t>().data(), mask.flat<int32_t>().data(), static_cast<size_t>(batch),
        static_cast<size_t>(seq), kinds.flat<int32_t>().data(),
        static_cast<size_t>(kinds.dim_size(0)), options_,
        static_cast<uint64_t>(seed.scalar<int64_t>()()), out);
    OP_REQUIRES(ctx, error.empty(), absl::InvalidArgumentError(error));
  }

 private:
  kbf::MaskingOptions options_;
};

}  // namespace

REGISTER_KERNEL_BUILDER(Name("KbfMaskTokens").Device(::tensorflow::DEVICE_CPU), MaskTokensOp);
