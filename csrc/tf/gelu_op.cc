// kbf::GeluForward / GeluBackward (core/gelu.h) as the TensorFlow ops `KbfGelu` and
// `KbfGeluGrad`, for training only: TensorFlow's exact GELU is about a dozen
// element-wise ops each way, this is one pass. Served graphs keep TensorFlow's ops.
#define EIGEN_USE_THREADS

#include <cstdint>

#include "absl/status/status.h"
#include "core/gelu.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/framework/tensor.h"
#include "tf/for_each_part.h"

namespace {

using ::tensorflow::OpKernel;
using ::tensorflow::OpKernelConstruction;
using ::tensorflow::OpKernelContext;
using ::tensorflow::Tensor;

// Cost of one element in the thread pool's units (cycles, roughly).
constexpr int64_t kElementCost = 40;


class GeluOp : public OpKernel {
 public:
  explicit GeluOp(OpKernelConstruction* ctx) : OpKernel(ctx) {}

  void Compute(OpKernelContext* ctx) override {
    const Tensor& x = ctx->input(0);
    Tensor* y;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, x.shape(), &y));
    const float* in = x.flat<float>().data();
    float* out = y->flat<float>().data();
    kbf::ForEachPart(ctx, x.NumElements(), kElementCost, [&](int64_t begin, int64_t end) {
      kbf::GeluForward(in + begin, out + begin, end - begin);
    });
  }
};

class GeluGradOp : public OpKernel {
 public:
  explicit GeluGradOp(OpKernelConstruction* ctx) : OpKernel(ctx) {}

  void Compute(OpKernelContext* ctx) override {
    const Tensor& dy = ctx->input(0);
    const Tensor& x = ctx->input(1);
    OP_REQUIRES(ctx, dy.shape() == x.shape(),
                absl::InvalidArgumentError("dy and x must have one shape, got " +
                                           dy.shape().DebugString() + " and " +
                                           x.shape().DebugString()));
    Tensor* dx;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, x.shape(), &dx));
    const float* g = dy.flat<float>().data();
    const float* in = x.flat<float>().data();
    float* out = dx->flat<float>().data();
    kbf::ForEachPart(ctx, x.NumElements(), kElementCost, [&](int64_t begin, int64_t end) {
      kbf::GeluBackward(g + begin, in + begin, out + begin, end - begin);
    });
  }
};

}  // namespace

REGISTER_OP("KbfGelu")
    .Input("x: float")
    .Output("y: float")
    .SetShapeFn([](tensorflow::shape_inference::InferenceContext* c) {
      c->set_output(0, c->input(0));
      return absl::OkStatus();
    })
    .Doc("GELU with the exact erf, x * Phi(x), element-wise (training).");

REGISTER_OP("KbfGeluGrad")
    .Input("dy: float")
    .Input("x: float")
    .Output("dx: float")
    .SetShapeFn([](tensorflow::shape_inference::InferenceContext* c) {
      tensorflow::shape_inference::ShapeHandle shape;
      TF_RETURN_IF_ERROR(c->Merge(c->input(0), c->input(1), &shape));
      c->set_output(0, shape);
      return absl::OkStatus();
    })
    .Doc("The gradient of KbfGelu: dy * (Phi(x) + x * phi(x)).");

REGISTER_KERNEL_BUILDER(Name("KbfGelu").Device(tensorflow::DEVICE_CPU), GeluOp);
REGISTER_KERNEL_BUILDER(Name("KbfGeluGrad").Device(tensorflow::DEVICE_CPU), GeluGradOp);
