// kbf::DropoutAddLayerNorm (core/layer_norm.h) as the TensorFlow ops
// `KbfDropoutAddLayerNorm` and `KbfDropoutAddLayerNormGrad`, for training only: the
// exported serving graphs keep TensorFlow's own ops. Rows are split over the
// intra-op thread pool; the results do not depend on the split.
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "core/layer_norm.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/framework/tensor.h"
#include "tf/for_each_part.h"

namespace {

using ::kbf::ForEachPart;
using ::tensorflow::OpKernel;
using ::tensorflow::OpKernelConstruction;
using ::tensorflow::OpKernelContext;
using ::tensorflow::Tensor;
using ::tensorflow::TensorShape;
using ::tensorflow::shape_inference::DimensionHandle;
using ::tensorflow::shape_inference::InferenceContext;
using ::tensorflow::shape_inference::ShapeHandle;

absl::Status ForwardShape(InferenceContext* c) {
  ShapeHandle rows, width, unused;
  TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 2, &rows));
  TF_RETURN_IF_ERROR(c->Merge(rows, c->input(1), &rows));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(2), 1, &width));
  TF_RETURN_IF_ERROR(c->Merge(width, c->input(3), &width));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(4), 0, &unused));
  DimensionHandle w;
  TF_RETURN_IF_ERROR(c->Merge(c->Dim(rows, 1), c->Dim(width, 0), &w));
  c->set_output(0, rows);
  c->set_output(1, c->Vector(c->Dim(rows, 0)));
  c->set_output(2, c->Vector(c->Dim(rows, 0)));
  c->set_output(3, rows);
  return absl::OkStatus();
}

absl::Status GradShape(InferenceContext* c) {
  ShapeHandle rows, width;
  TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 2, &rows));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(3), 1, &width));
  c->set_output(0, rows);
  c->set_output(1, rows);
  c->set_output(2, width);
  c->set_output(3, width);
  return absl::OkStatus();
}

}  // namespace

REGISTER_OP("KbfDropoutAddLayerNorm")
    .Input("residual: float")
    .Input("x: float")
    .Input("gamma: float")
    .Input("beta: float")
    .Input("seed: int64")
    .Output("y: float")
    .Output("mean: float")
    .Output("rstd: float")
    .Output("keep: uint8")
    .Attr("rate: float")
    .Attr("epsilon: float")
    .SetShapeFn(ForwardShape)
    .Doc(R"doc(
LayerNorm(residual + dropout(x)) * gamma + beta over the rows of [rows, width] inputs.

seed: scalar; the kept elements depend on (seed, position) only.
keep: 1 where x was kept; with mean and rstd (1 / sqrt(var + epsilon)) it is what the
gradient needs.
)doc");

REGISTER_OP("KbfDropoutAddLayerNormGrad")
    .Input("dy: float")
    .Input("residual: float")
    .Input("x: float")
    .Input("gamma: float")
    .Input("keep: uint8")
    .Input("mean: float")
    .Input("rstd: float")
    .Output("d_residual: float")
    .Output("dx: float")
    .Output("dgamma: float")
    .Output("dbeta: float")
    .Attr("rate: float")
    .SetShapeFn(GradShape)
    .Doc("The gradient of KbfDropoutAddLayerNorm.");

namespace {

absl::Status CheckRate(float rate) {
  if (!(rate >= 0.0f && rate < 1.0f)) {
    return absl::InvalidArgumentError("rate must be in [0, 1), got " + std::to_string(rate));
  }
  return absl::OkStatus();
}

bool IsRows(const Tensor& t, const Tensor& like) {
  return t.dims() == 2 && t.shape() == like.shape();
}

bool IsWidth(const Tensor& t, int64_t width) { return t.dims() == 1 && t.dim_size(0) == width; }

class DropoutAddLayerNormOp : public OpKernel {
 public:
  explicit DropoutAddLayerNormOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("rate", &rate_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("epsilon", &epsilon_));
    OP_REQUIRES_OK(ctx, CheckRate(rate_));
    OP_REQUIRES(ctx, epsilon_ >= 0.0f,
                absl::InvalidArgumentError("epsilon must not be negative"));
  }

  void Compute(OpKernelContext* ctx) override {
    const Tensor& residual = ctx->input(0);
    const Tensor& x = ctx->input(1);
    OP_REQUIRES(ctx, residual.dims() == 2 && residual.dim_size(1) > 0,
                absl::InvalidArgumentError("residual must be [rows, width] with width > 0, got " +
                                           residual.shape().DebugString()));
    OP_REQUIRES(ctx, IsRows(x, residual),
                absl::InvalidArgumentError("x must have residual's shape " +
                                           residual.shape().DebugString() + ", got " +
                                           x.shape().DebugString()));
    const int64_t rows = residual.dim_size(0);
    const int64_t width = residual.dim_size(1);
    OP_REQUIRES(ctx, IsWidth(ctx->input(2), width) && IsWidth(ctx->input(3), width),
                absl::InvalidArgumentError("gamma and beta must be [" + std::to_string(width) +
                                           "]"));
    OP_REQUIRES(ctx, ctx->input(4).dims() == 0,
                absl::InvalidArgumentError("seed must be a scalar"));
    Tensor *y, *mean, *rstd, *keep;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, residual.shape(), &y));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, TensorShape({rows}), &mean));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(2, TensorShape({rows}), &rstd));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(3, residual.shape(), &keep));
    const kbf::LayerNormForward f{
        residual.flat<float>().data(), x.flat<float>().data(),
        ctx->input(2).flat<float>().data(), ctx->input(3).flat<float>().data(), width,
        static_cast<uint64_t>(ctx->input(4).scalar<int64_t>()()), rate_, epsilon_,
        y->flat<float>().data(), mean->flat<float>().data(), rstd->flat<float>().data(),
        keep->flat<uint8_t>().data()};
    ForEachPart(ctx, rows, width * 16,
                [&f](int64_t begin, int64_t end) { kbf::DropoutAddLayerNorm(f, begin, end); });
  }

 private:
  float rate_ = 0.0f;
  float epsilon_ = 0.0f;
};

class DropoutAddLayerNormGradOp : public OpKernel {
 public:
  explicit DropoutAddLayerNormGradOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("rate", &rate_));
    OP_REQUIRES_OK(ctx, CheckRate(rate_));
  }

  void Compute(OpKernelContext* ctx) override {
    const Tensor& dy = ctx->input(0);
    OP_REQUIRES(ctx, dy.dims() == 2 && dy.dim_size(1) > 0,
                absl::InvalidArgumentError("dy must be [rows, width] with width > 0, got " +
                                           dy.shape().DebugString()));
    const int64_t rows = dy.dim_size(0);
    const int64_t width = dy.dim_size(1);
    const Tensor& keep = ctx->input(4);
    OP_REQUIRES(ctx, IsRows(ctx->input(1), dy) && IsRows(ctx->input(2), dy) &&
                         keep.dims() == 2 && keep.shape() == dy.shape(),
                absl::InvalidArgumentError("residual, x and keep must have dy's shape " +
                                           dy.shape().DebugString()));
    OP_REQUIRES(ctx, IsWidth(ctx->input(3), width),
                absl::InvalidArgumentError("gamma must be [" + std::to_string(width) + "]"));
    OP_REQUIRES(ctx, IsWidth(ctx->input(5), rows) && IsWidth(ctx->input(6), rows),
                absl::InvalidArgumentError("mean and rstd must be [" + std::to_string(rows) +
                                           "]"));
    Tensor *d_residual, *dx, *dgamma, *dbeta;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, dy.shape(), &d_residual));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, dy.shape(), &dx));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(2, TensorShape({width}), &dgamma));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(3, TensorShape({width}), &dbeta));
    const int64_t blocks = (rows + kbf::kLayerNormBlockRows - 1) / kbf::kLayerNormBlockRows;
    std::vector<float> partials(static_cast<size_t>(blocks * 2 * width));
    const kbf::LayerNormBackward b{
        dy.flat<float>().data(), ctx->input(1).flat<float>().data(),
        ctx->input(2).flat<float>().data(), ctx->input(3).flat<float>().data(),
        keep.flat<uint8_t>().data(), ctx->input(5).flat<float>().data(),
        ctx->input(6).flat<float>().data(), width, rate_,
        d_residual->flat<float>().data(), dx->flat<float>().data(), partials.data()};
    ForEachPart(ctx, blocks, kbf::kLayerNormBlockRows * width * 24,
                [&b, rows](int64_t begin, int64_t end) {
                  kbf::DropoutAddLayerNormGrad(b, rows, begin, end);
                });
    kbf::SumLayerNormPartials(partials.data(), blocks, width, dgamma->flat<float>().data(),
                              dbeta->flat<float>().data());
  }

 private:
  float rate_ = 0.0f;
};

REGISTER_KERNEL_BUILDER(Name("KbfDropoutAddLayerNorm").Device(tensorflow::DEVICE_CPU),
                        DropoutAddLayerNormOp);
REGISTER_KERNEL_BUILDER(Name("KbfDropoutAddLayerNormGrad").Device(tensorflow::DEVICE_CPU),
                        DropoutAddLayerNormGradOp);

}  // namespace
