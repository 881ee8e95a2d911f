// kbf::AdamWDense / AdamWRows (core/adamw.h) as the TensorFlow ops `KbfApplyAdamW` and
// `KbfSparseApplyAdamW`, and the global norm's `KbfSumOfSquares`: weight decay, gradient
// scale and Adam in one pass over a resource variable and its moments, where TensorFlow
// needs ResourceApplyGradientDescent (a copy of the variable and a pass) before
// ResourceApplyAdam, and densifies a sparse gradient first. Training only; the exported
// graphs never hold an optimizer.
#define EIGEN_USE_THREADS  // training_op_helpers.h copies variables on the CPU device

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "core/adamw.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/resource_var.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/framework/tensor.h"
#include "tensorflow/core/kernels/training_op_helpers.h"
#include "tf/for_each_part.h"

namespace {

using ::kbf::ForEachPart;
using ::tensorflow::OpKernel;
using ::tensorflow::OpKernelConstruction;
using ::tensorflow::OpKernelContext;
using ::tensorflow::Tensor;
using CPUDevice = Eigen::ThreadPoolDevice;

// The last inputs of both update ops, after var, m, v and the gradient: float scalars.
constexpr int kScalarInputs = 5;
const char* const kScalars[kScalarInputs] = {"lr", "beta1_power", "beta2_power", "decay",
                                            "grad_scale"};

class AdamWOpBase : public OpKernel {
 public:
  explicit AdamWOpBase(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("beta1", &beta1_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("beta2", &beta2_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("epsilon", &epsilon_));
    OP_REQUIRES(ctx, beta1_ >= 0.0f && beta1_ < 1.0f && beta2_ >= 0.0f && beta2_ < 1.0f,
                absl::InvalidArgumentError("beta1 and beta2 must be in [0, 1)"));
    OP_REQUIRES(ctx, epsilon_ >= 0.0f, absl::InvalidArgumentError("epsilon must not be negative"));
  }

  void Compute(OpKernelContext* ctx) override {
    // Locks var, m and v (in address order) for the whole update, as ResourceApplyAdam.
    auto locks = tensorflow::MaybeLockVariableInputMutexesInOrder<CPUDevice, float>(
        ctx, /*do_lock=*/true, /*sparse=*/false, {0, 1, 2});
    Tensor var, m, v;
    OP_REQUIRES_OK(ctx, tensorflow::GetInputTensorFromVariable<CPUDevice, float>(
                            ctx, 0, /*lock_held=*/true, /*sparse=*/false, &var));
    OP_REQUIRES_OK(ctx, tensorflow::GetInputTensorFromVariable<CPUDevice, float>(
                            ctx, 1, /*lock_held=*/true, /*sparse=*/false, &m));
    OP_REQUIRES_OK(ctx, tensorflow::GetInputTensorFromVariable<CPUDevice, float>(
                            ctx, 2, /*lock_held=*/true, /*sparse=*/false, &v));
    OP_REQUIRES(ctx, var.IsInitialized() && m.IsInitialized() && v.IsInitialized(),
                absl::FailedPreconditionError("var, m and v must be initialized"));
    OP_REQUIRES(ctx, var.dtype() == tensorflow::DT_FLOAT && m.dtype() == tensorflow::DT_FLOAT &&
                         v.dtype() == tensorflow::DT_FLOAT,
                absl::InvalidArgumentError("var, m and v must be float32"));
    OP_REQUIRES(ctx, var.shape() == m.shape() && var.shape() == v.shape(),
                absl::InvalidArgumentError("var, m and v must have one shape, got " +
                                           var.shape().DebugString() + ", " +
                                           m.shape().DebugString() + ", " +
                                           v.shape().DebugString()));
    float scalars[kScalarInputs];
    const int first_scalar = ctx->num_inputs() - kScalarInputs;
    for (int i = 0; i < kScalarInputs; ++i) {
      const Tensor& t = ctx->input(first_scalar + i);
      OP_REQUIRES(ctx, t.dims() == 0,
                  absl::InvalidArgumentError(std::string(kScalars[i]) + " must be a scalar, got " +
                                             t.shape().DebugString()));
      scalars[i] = t.scalar<float>()();
    }
    const kbf::AdamWStep step{scalars[0], scalars[1], scalars[2], beta1_,     beta2_,
                              epsilon_,   scalars[3], scalars[4]};
    Update(ctx, step, var.shape(), var.flat<float>().data(), m.flat<float>().data(),
           v.flat<float>().data());
  }

 protected:
  // The update of var, m and v (float32, all of `shape`) with the op's gradient input.
  virtual void Update(OpKernelContext* ctx, const kbf::AdamWStep& step,
                      const tensorflow::TensorShape& shape, float* var, float* m,
                      float* v) = 0;

 private:
  float beta1_ = 0.0f;
  float beta2_ = 0.0f;
  float epsilon_ = 0.0f;
};

class ApplyAdamWOp : public AdamWOpBase {
 public:
  explicit ApplyAdamWOp(OpKernelConstruction* ctx) : AdamWOpBase(ctx) {}

 protected:
  void Update(OpKernelContext* ctx, const kbf::AdamWStep& step,
              const tensorflow::TensorShape& shape, float* var, float* m, float* v) override {
    const Tensor& grad = ctx->input(3);
    OP_REQUIRES(ctx, grad.shape() == shape,
                absl::InvalidArgumentError("grad must have var's shape " + shape.DebugString() +
                                           ", got " + grad.shape().DebugString()));
    const float* g = grad.flat<float>().data();
    ForEachPart(ctx, shape.num_elements(), 12, [&](int64_t begin, int64_t end) {
      kbf::AdamWDense(step, g, var, m, v, begin, end);
    });
  }
};

template <typename Index>
class SparseApplyAdamWOp : public AdamWOpBase {
 public:
  explicit SparseApplyAdamWOp(OpKernelConstruction* ctx) : AdamWOpBase(ctx) {}

 protected:
  void Update(OpKernelContext* ctx, const kbf::AdamWStep& step,
              const tensorflow::TensorShape& shape, float* var, float* m, float* v) override {
    const Tensor& indices = ctx->input(3);
    const Tensor& values = ctx->input(4);
    OP_REQUIRES(ctx, shape.dims() >= 1,
                absl::InvalidArgumentError("var must have at least one dimension"));
    const int64_t rows = shape.dim_size(0);
    const int64_t width = rows > 0 ? shape.num_elements() / rows : 0;
    OP_REQUIRES(ctx, indices.dims() == 1,
                absl::InvalidArgumentError("indices must be a vector, got " +
                                           indices.shape().DebugString()));
    const int64_t count = indices.dim_size(0);
    bool values_ok = values.dims() == shape.dims() && values.dim_size(0) == count;
    for (int d = 1; values_ok && d < shape.dims(); ++d) {
      values_ok = values.dim_size(d) == shape.dim_size(d);
    }
    OP_REQUIRES(ctx, values_ok,
                absl::InvalidArgumentError("values must be [" + std::to_string(count) +
                                           "] + var's shape after its first dimension " +
                                           shape.DebugString() + ", got " +
                                           values.shape().DebugString()));
    const auto index_flat = indices.flat<Index>();
    std::vector<int64_t> rows_of(static_cast<size_t>(count));
    for (int64_t k = 0; k < count; ++k) rows_of[static_cast<size_t>(k)] = index_flat(k);
    kbf::RowGradient gradient;
    int64_t bad = 0;
    OP_REQUIRES(ctx,
                kbf::SumRowsByIndex(rows_of.data(), count, values.flat<float>().data(), width,
                                    rows, &gradient, &bad),
                absl::InvalidArgumentError("indices[" + std::to_string(bad) + "] = " +
                                           std::to_string(rows_of[static_cast<size_t>(bad)]) +
                                           " is not in [0, " + std::to_string(rows) + ")"));
    ForEachPart(ctx, rows, 12 * (width > 0 ? width : 1), [&](int64_t begin, int64_t end) {
      kbf::AdamWRows(step, gradient, width, var, m, v, begin, end);
    });
  }
};

class SumOfSquaresOp : public OpKernel {
 public:
  explicit SumOfSquaresOp(OpKernelConstruction* ctx) : OpKernel(ctx) {}

  void Compute(OpKernelContext* ctx) override {
    // Blocks of at most kBlock elements of one input each; their sums are added in
    // block order afterwards.
    constexpr int64_t kBlock = int64_t{1} << 16;
    struct Block {
      const float* data;
      int64_t size;
    };
    std::vector<Block> blocks;
    for (int i = 0; i < ctx->num_inputs(); ++i) {
      const Tensor& t = ctx->input(i);
      const float* data = t.flat<float>().data();
      for (int64_t start = 0; start < t.NumElements(); start += kBlock) {
        blocks.push_back({data + start, std::min(kBlock, t.NumElements() - start)});
      }
    }
    std::vector<double> sums(blocks.size(), 0.0);
    ForEachPart(ctx, static_cast<int64_t>(blocks.size()), kBlock * 2,
                [&](int64_t begin, int64_t end) {
                  for (int64_t b = begin; b < end; ++b) {
                    sums[static_cast<size_t>(b)] =
                        kbf::SumOfSquares(blocks[static_cast<size_t>(b)].data,
                                          blocks[static_cast<size_t>(b)].size);
                  }
                });
    double total = 0.0;
    for (double s : sums) total += s;
    Tensor* out;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, tensorflow::TensorShape({}), &out));
    out->scalar<float>()() = static_cast<float>(total);
  }
};

}  // namespace

REGISTER_OP("KbfApplyAdamW")
    .Input("var: resource")
    .Input("m: resource")
    .Input("v: resource")
    .Input("grad: float")
    .Input("lr: float")
    .Input("beta1_power: float")
    .Input("beta2_power: float")
    .Input("decay: float")
    .Input("grad_scale: float")
    .Attr("beta1: float")
    .Attr("beta2: float")
    .Attr("epsilon: float")
    .SetIsStateful()
    .SetShapeFn(tensorflow::shape_inference::NoOutputs)
    .Doc(R"doc(
AdamW on a float32 resource variable in one pass: g = grad * grad_scale;
var -= decay * var; then ResourceApplyAdam's update with g.
)doc");

REGISTER_OP("KbfSparseApplyAdamW")
    .Input("var: resource")
    .Input("m: resource")
    .Input("v: resource")
    .Input("indices: Tindices")
    .Input("values: float")
    .Input("lr: float")
    .Input("beta1_power: float")
    .Input("beta2_power: float")
    .Input("decay: float")
    .Input("grad_scale: float")
    .Attr("beta1: float")
    .Attr("beta2: float")
    .Attr("epsilon: float")
    .Attr("Tindices: {int32, int64}")
    .SetIsStateful()
    .SetShapeFn(tensorflow::shape_inference::NoOutputs)
    .Doc(R"doc(
KbfApplyAdamW with the gradient given as rows (an IndexedSlices: repeated indices
are summed). Every row of var, m and v is updated, as with the dense gradient.
)doc");

REGISTER_OP("KbfSumOfSquares")
    .Input("values: N * float")
    .Output("sum: float")
    .Attr("N: int >= 1")
    .SetShapeFn(tensorflow::shape_inference::ScalarShape)
    .Doc(R"doc(
The sum of the squares of every element of every input (a global norm's square),
accumulated in double over fixed blocks, so the result does not depend on threads.
)doc");

REGISTER_KERNEL_BUILDER(Name("KbfSumOfSquares").Device(tensorflow::DEVICE_CPU), SumOfSquaresOp);
REGISTER_KERNEL_BUILDER(Name("KbfApplyAdamW").Device(tensorflow::DEVICE_CPU), ApplyAdamWOp);
REGISTER_KERNEL_BUILDER(
    Name("KbfSparseApplyAdamW").Device(tensorflow::DEVICE_CPU).TypeConstraint<int32_t>("Tindices"),
    SparseApplyAdamWOp<int32_t>);
REGISTER_KERNEL_BUILDER(
    Name("KbfSparseApplyAdamW").Device(tensorflow::DEVICE_CPU).TypeConstraint<int64_t>("Tindices"),
    SparseApplyAdamWOp<int64_t>);
