// FusedMomentumL2Bf16: one pass over a float32 weight matrix trained in mixed bfloat16.
//
// TensorFlow's stock ops spend six passes over such a matrix per step (the weight cast to
// bfloat16, the gradient cast back, the L2 term's multiply, the gradient sum, the L2 loss and the
// momentum update); this op reads the bfloat16 gradient, the weights and the momentum once and
// writes the weights, the momentum and the next step's bfloat16 copy ("shadow"), with the same
// float32 arithmetic. It returns the L2 loss (sum of squares / 2) of the weights before the update.
// FusedMomentumL2 does the same for float32 training, where the stock ops pass four times (the
// L2 term's multiply, the gradient sum, the L2 loss, the momentum update).
#include <algorithm>
#include <cstdint>
#include <memory>
#include <vector>

#include "fused_momentum_loop.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/resource_mgr.h"
#include "tensorflow/core/framework/resource_var.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/lib/core/threadpool.h"

namespace lenet {

using tensorflow::DataType;
using tensorflow::OpKernel;
using tensorflow::OpKernelConstruction;
using tensorflow::OpKernelContext;
using tensorflow::Status;
using tensorflow::Tensor;
using tensorflow::Var;

REGISTER_OP("FusedMomentumL2Bf16")
    .Input("var: resource")
    .Input("accum: resource")
    .Input("shadow: resource")
    .Input("grad: bfloat16")
    .Input("lr: float")
    .Input("momentum: float")
    .Input("decay: float")
    .Output("l2_loss: float")
    .SetShapeFn(tensorflow::shape_inference::ScalarShape);

// FusedMomentumL2: the same one pass for float32 training: a float32 gradient, no shadow.
REGISTER_OP("FusedMomentumL2")
    .Input("var: resource")
    .Input("accum: resource")
    .Input("grad: float")
    .Input("lr: float")
    .Input("momentum: float")
    .Input("decay: float")
    .Output("l2_loss: float")
    .SetShapeFn(tensorflow::shape_inference::ScalarShape);

namespace {

constexpr int64_t kBlock = 16384;

// Points *write at a buffer this op may overwrite and *read at the variable's current values:
// the same buffer, unless another tensor (a read still in flight) shares it, in which case the
// variable gets a fresh buffer, as TensorFlow's own training ops do (copy on write).
Status WritableBuffer(OpKernelContext* ctx, Var* var, DataType dtype, Tensor* read, Tensor* write) {
  Tensor* current = var->tensor();
  const bool shared = !current->RefCountIsOne() || var->copy_on_read_mode.load();
  *read = *current;
  if (shared) {
    Tensor fresh;
    TF_RETURN_IF_ERROR(ctx->allocate_temp(dtype, read->shape(), &fresh));
    *current = fresh;
  }
  *write = *current;
  return Status();
}

}  // namespace

// kShadow: FusedMomentumL2Bf16 (bfloat16 gradient, a bfloat16 shadow variable at input 2);
// otherwise FusedMomentumL2 (float32 gradient, no shadow).
template <bool kShadow>
class FusedMomentumOp : public OpKernel {
 public:
  explicit FusedMomentumOp(OpKernelConstruction* ctx) : OpKernel(ctx) {}

  void Compute(OpKernelContext* ctx) override {
    constexpr int kGrad = kShadow ? 3 : 2;
    tensorflow::core::RefCountPtr<Var> var, accum, shadow;
    OP_REQUIRES_OK(ctx, LookupResource(ctx, HandleFromInput(ctx, 0), &var));
    OP_REQUIRES_OK(ctx, LookupResource(ctx, HandleFromInput(ctx, 1), &accum));
    if (kShadow) OP_REQUIRES_OK(ctx, LookupResource(ctx, HandleFromInput(ctx, 2), &shadow));
    // Locked in address order so that two such ops can never deadlock on the same variables.
    std::vector<tensorflow::mutex*> locks = {var->mu(), accum->mu()};
    if (kShadow) locks.push_back(shadow->mu());
    std::sort(locks.begin(), locks.end());
    OP_REQUIRES(ctx, std::adjacent_find(locks.begin(), locks.end()) == locks.end(),
                tensorflow::errors::InvalidArgument("var, accum and shadow must be different variables"));
    std::vector<std::unique_ptr<tensorflow::mutex_lock>> held;
    for (tensorflow::mutex* mu : locks) held.push_back(std::make_unique<tensorflow::mutex_lock>(*mu));

    const Tensor& grad = ctx->input(kGrad);
    OP_REQUIRES(ctx, var->tensor()->dtype() == tensorflow::DT_FLOAT &&
                         accum->tensor()->dtype() == tensorflow::DT_FLOAT &&
                         (!kShadow || shadow->tensor()->dtype() == tensorflow::DT_BFLOAT16),
                tensorflow::errors::InvalidArgument(
                    "var and accum must be float32 variables and shadow a bfloat16 one"));
    OP_REQUIRES(ctx, var->tensor()->shape() == grad.shape() &&
                         accum->tensor()->shape() == grad.shape() &&
                         (!kShadow || shadow->tensor()->shape() == grad.shape()),
                tensorflow::errors::InvalidArgument("var, accum, shadow and grad must have one shape, got ",
                                                    var->tensor()->shape().DebugString(), ", ",
                                                    accum->tensor()->shape().DebugString(), ", ",
                                                    kShadow ? shadow->tensor()->shape().DebugString() : "none",
                                                    " and ", grad.shape().DebugString()));
    const float lr = ctx->input(kGrad + 1).scalar<float>()();
    const float momentum = ctx->input(kGrad + 2).scalar<float>()();
    const float decay = ctx->input(kGrad + 3).scalar<float>()();

    Tensor w_read, w_write, m_read, m_write, s_read, s_write;
    OP_REQUIRES_OK(ctx, WritableBuffer(ctx, var.get(), tensorflow::DT_FLOAT, &w_read, &w_write));
    OP_REQUIRES_OK(ctx, WritableBuffer(ctx, accum.get(), tensorflow::DT_FLOAT, &m_read, &m_write));
    if (kShadow) OP_REQUIRES_OK(ctx, WritableBuffer(ctx, shadow.get(), tensorflow::DT_BFLOAT16, &s_read, &s_write));

    const int64_t n = grad.NumElements();
    const char* g = grad.tensor_data().data();
    const float* w_old = w_read.flat<float>().data();
    float* w_new = w_write.flat<float>().data();
    const float* m_old = m_read.flat<float>().data();
    float* m_new = m_write.flat<float>().data();
    auto* s_new = kShadow ? reinterpret_cast<uint16_t*>(s_write.flat<tensorflow::bfloat16>().data()) : nullptr;

    // Fixed blocks, summed in block order afterwards: the loss does not depend on the threads.
    const int64_t blocks = (n + kBlock - 1) / kBlock;
    std::vector<double> squares(blocks, 0.0);
    auto run_blocks = [&](int64_t first, int64_t last) {
      for (int64_t b = first; b < last; ++b) {
        const int64_t lo = b * kBlock, count = std::min(n, lo + kBlock) - lo;
        squares[b] = kShadow ? lenet_fused_momentum_block(count, reinterpret_cast<const uint16_t*>(g) + lo, w_old + lo,
                                                          w_new + lo, m_old + lo, m_new + lo, s_new + lo, lr,
                                                          momentum, decay)
                             : lenet_fused_momentum_block_f32(count, reinterpret_cast<const float*>(g) + lo, w_old + lo,
                                                              w_new + lo, m_old + lo, m_new + lo, lr, momentum, decay);
      }
    };
    ctx->device()->tensorflow_cpu_worker_threads()->workers->ParallelFor(blocks, kBlock * 8, run_blocks);
    double total = 0.0;
    for (double s : squares) total += s;

    Tensor* l2_loss = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, tensorflow::TensorShape({}), &l2_loss));
    l2_loss->scalar<float>()() = static_cast<float>(total / 2.0);
  }
};

REGISTER_KERNEL_BUILDER(Name("FusedMomentumL2Bf16").Device(tensorflow::DEVICE_CPU), FusedMomentumOp<true>);
REGISTER_KERNEL_BUILDER(Name("FusedMomentumL2").Device(tensorflow::DEVICE_CPU), FusedMomentumOp<false>);

}  // namespace lenet
