// ConvReluPool: the forward pass of conv (one input channel) -> ReLU -> 2x2 max pool, returning the
// activations (what the backward pass reads) and the pooled output.
// ConvReluPoolFilterGrad: the backward pass of that block.
// ReluPoolGrad (below): the ReLU and max-pool part of that backward pass alone, for later layers.
//
// oneDNN's forward convolution with one input channel ran at about a third of its matmul rate on an
// AVX512-BF16 EPYC, and its max pool passed over the activations again; ConvReluPool computes each
// image's activations in registers and pools them while they are in cache.
//
// For the model's first layer oneDNN's filter-gradient kernel is slow (one input channel gives
// its matrix units almost nothing to do), and ReluGrad and MaxPoolGrad each pass over the full
// 28x28x32 activations. This op does all three per image in one pass over the cached activations
// and returns float32 filter and bias gradients (float32 sums; in bfloat16 at the model's shape of
// AVX512-BF16's exact pair products, 1.8x the speed of one product at a time); the input gradient
// is not needed (the input is data). Per-image partial sums are added in image order, so the
// result does not depend on the number of threads.
#include <algorithm>
#include <cstdint>
#include <vector>

#include "bfloat16_bits.h"
#include "conv_relu_pool_loop.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/lib/core/threadpool.h"

namespace lenet {

using tensorflow::OpKernel;
using tensorflow::OpKernelConstruction;
using tensorflow::OpKernelContext;
using tensorflow::Tensor;
using tensorflow::TensorShape;

REGISTER_OP("ConvReluPoolFilterGrad")
    .Input("x: T")
    .Input("y: T")
    .Input("pool_grad: T")
    .Attr("k: int")
    .Attr("T: {bfloat16, float}")
    .Output("kernel_grad: float")
    .Output("bias_grad: float")
    .SetShapeFn([](tensorflow::shape_inference::InferenceContext* c) {
      int64_t k;
      TF_RETURN_IF_ERROR(c->GetAttr("k", &k));
      auto channels = c->Dim(c->input(1), 3);
      c->set_output(0, c->MakeShape({k, k, 1, channels}));
      c->set_output(1, c->MakeShape({channels}));
      return tensorflow::OkStatus();
    });

// The loops take bfloat16 or float32 tensors as their raw bits.
template <typename T>
struct Bits;
template <>
struct Bits<tensorflow::bfloat16> {
  using type = uint16_t;
  static constexpr auto filter_grad = lenet_conv_relu_pool_filter_grad;
  static constexpr auto relu_pool_grad = lenet_relu_pool_grad;
};
template <>
struct Bits<float> {
  using type = uint32_t;
  static constexpr auto filter_grad = lenet_conv_relu_pool_filter_grad_f32;
  static constexpr auto relu_pool_grad = lenet_relu_pool_grad_f32;
};

REGISTER_OP("ConvReluPool")
    .Input("x: T")
    .Input("kernel: float")
    .Input("bias: float")
    .Attr("T: {bfloat16, float}")
    .Output("y: T")
    .Output("pooled: T")
    .SetShapeFn([](tensorflow::shape_inference::InferenceContext* c) {
      auto x = c->input(0);
      auto channels = c->Dim(c->input(1), 3);
      tensorflow::shape_inference::DimensionHandle height, width;
      TF_RETURN_IF_ERROR(c->Add(c->Dim(x, 1), 1, &height));
      TF_RETURN_IF_ERROR(c->Divide(height, 2, false, &height));
      TF_RETURN_IF_ERROR(c->Add(c->Dim(x, 2), 1, &width));
      TF_RETURN_IF_ERROR(c->Divide(width, 2, false, &width));
      c->set_output(0, c->MakeShape({c->Dim(x, 0), c->Dim(x, 1), c->Dim(x, 2), channels}));
      c->set_output(1, c->MakeShape({c->Dim(x, 0), height, width, channels}));
      return tensorflow::OkStatus();
    });

// The kernel and bias as the loops take them for T: in bfloat16, rounded like tf.cast, the kernel
// rows' taps in pairs.
template <typename T>
struct ForwardOperands;
template <>
struct ForwardOperands<tensorflow::bfloat16> {
  static bool compiled() { return lenet_conv_relu_pool_forward_bfloat16_compiled(); }
  static std::vector<uint32_t> kernel(const float* kernel, int64_t k, int64_t channels) {
    const int64_t steps = (k + 1) / 2;
    std::vector<uint32_t> pairs(k * steps * channels, 0u);
    for (int64_t kh = 0; kh < k; ++kh)
      for (int64_t kw = 0; kw < k; ++kw)
        for (int64_t c = 0; c < channels; ++c)
          pairs[(kh * steps + kw / 2) * channels + c] |=
              static_cast<uint32_t>(float_to_bf16(kernel[(kh * k + kw) * channels + c])) << (kw % 2 ? 16 : 0);
    return pairs;
  }
  static float bias(float value) { return bf16_to_float(float_to_bf16(value)); }
  static void run(int64_t height, int64_t width, int64_t channels, int64_t k, const uint16_t* x, const void* kernel,
                  const float* bias, uint16_t* y, uint16_t* pooled, float* scratch) {
    lenet_conv_relu_pool_forward(height, width, channels, k, x, static_cast<const uint32_t*>(kernel), bias, y, pooled,
                                 scratch);
  }
};
template <>
struct ForwardOperands<float> {
  static bool compiled() { return true; }
  static std::vector<float> kernel(const float* kernel, int64_t k, int64_t channels) {
    return std::vector<float>(kernel, kernel + k * k * channels);
  }
  static float bias(float value) { return value; }
  static void run(int64_t height, int64_t width, int64_t channels, int64_t k, const uint32_t* x, const void* kernel,
                  const float* bias, uint32_t* y, uint32_t* pooled, float* scratch) {
    lenet_conv_relu_pool_forward_f32(height, width, channels, k, reinterpret_cast<const float*>(x),
                                     static_cast<const float*>(kernel), bias, reinterpret_cast<float*>(y),
                                     reinterpret_cast<float*>(pooled), scratch);
  }
};

template <typename T>
class ConvReluPoolOp : public OpKernel {
 public:
  explicit ConvReluPoolOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES(ctx, ForwardOperands<T>::compiled(),
                tensorflow::errors::Unimplemented(
                    "the bfloat16 ConvReluPool loop was not compiled in: it needs a CPU with AVX512-BF16 and a "
                    "compiler that targets it (use kernels fused or stock)"));
  }

  void Compute(OpKernelContext* ctx) override {
    const Tensor& x = ctx->input(0);
    const Tensor& kernel = ctx->input(1);
    const Tensor& bias = ctx->input(2);
    OP_REQUIRES(ctx, x.dims() == 4 && x.dim_size(3) == 1 && kernel.dims() == 4 &&
                         kernel.dim_size(0) == kernel.dim_size(1) && kernel.dim_size(0) % 2 == 1 &&
                         kernel.dim_size(2) == 1 && kernel.dim_size(3) % 16 == 0 && bias.dims() == 1 &&
                         bias.dim_size(0) == kernel.dim_size(3),
                tensorflow::errors::InvalidArgument(
                    "x must be [N,H,W,1], kernel [k,k,1,C] (k odd, C a multiple of 16) and bias [C], got ",
                    x.shape().DebugString(), ", ", kernel.shape().DebugString(), " and ", bias.shape().DebugString()));
    const int64_t n = x.dim_size(0), height = x.dim_size(1), width = x.dim_size(2);
    const int64_t k = kernel.dim_size(0), channels = kernel.dim_size(3);
    Tensor *y = nullptr, *pooled = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({n, height, width, channels}), &y));
    const TensorShape pooled_shape({n, (height + 1) / 2, (width + 1) / 2, channels});
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, pooled_shape, &pooled));
    const auto taps = ForwardOperands<T>::kernel(kernel.flat<float>().data(), k, channels);
    std::vector<float> offsets(channels);
    for (int64_t c = 0; c < channels; ++c) offsets[c] = ForwardOperands<T>::bias(bias.flat<float>()(c));
    using B = typename Bits<T>::type;
    const auto* xs = reinterpret_cast<const B*>(x.tensor_data().data());
    auto* ys = reinterpret_cast<B*>(y->flat<T>().data());
    auto* ps = reinterpret_cast<B*>(pooled->flat<T>().data());
    const int64_t image = height * width, pooled_image = ((height + 1) / 2) * ((width + 1) / 2) * channels;
    const int64_t scratch_size = lenet_conv_relu_pool_forward_scratch(height, width, k);
    auto run_images = [&](int64_t first, int64_t last) {
      std::vector<float> scratch(scratch_size);
      for (int64_t i = first; i < last; ++i)
        ForwardOperands<T>::run(height, width, channels, k, xs + i * image, taps.data(), offsets.data(),
                                ys + i * image * channels, ps + i * pooled_image, scratch.data());
    };
    ctx->device()->tensorflow_cpu_worker_threads()->workers->ParallelFor(n, image * channels * k * k, run_images);
  }
};

REGISTER_KERNEL_BUILDER(Name("ConvReluPool").Device(tensorflow::DEVICE_CPU).TypeConstraint<tensorflow::bfloat16>("T"),
                        ConvReluPoolOp<tensorflow::bfloat16>);
REGISTER_KERNEL_BUILDER(Name("ConvReluPool").Device(tensorflow::DEVICE_CPU).TypeConstraint<float>("T"),
                        ConvReluPoolOp<float>);

template <typename T>
class ConvReluPoolFilterGradOp : public OpKernel {
 public:
  explicit ConvReluPoolFilterGradOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("k", &k_));
    OP_REQUIRES(ctx, k_ >= 1 && k_ % 2 == 1, tensorflow::errors::InvalidArgument("k must be odd, got ", k_));
  }

  void Compute(OpKernelContext* ctx) override {
    const Tensor& x = ctx->input(0);
    const Tensor& y = ctx->input(1);
    const Tensor& pool_grad = ctx->input(2);
    OP_REQUIRES(ctx, x.dims() == 4 && x.dim_size(3) == 1 && y.dims() == 4 && pool_grad.dims() == 4,
                tensorflow::errors::InvalidArgument("x must be [N,H,W,1], y [N,H,W,C], pool_grad [N,H/2,W/2,C]"));
    const int64_t n = x.dim_size(0), height = x.dim_size(1), width = x.dim_size(2), channels = y.dim_size(3);
    OP_REQUIRES(ctx, y.dim_size(0) == n && y.dim_size(1) == height && y.dim_size(2) == width &&
                         pool_grad.dim_size(0) == n && pool_grad.dim_size(1) == (height + 1) / 2 &&
                         pool_grad.dim_size(2) == (width + 1) / 2 && pool_grad.dim_size(3) == channels,
                tensorflow::errors::InvalidArgument("shapes do not match: x ", x.shape().DebugString(), ", y ",
                                                    y.shape().DebugString(), ", pool_grad ",
                                                    pool_grad.shape().DebugString()));
    const int64_t kernel_size = k_ * k_ * channels, per_image = kernel_size + channels;
    std::vector<float> partial(n * per_image, 0.f);
    using B = typename Bits<T>::type;
    const auto* xs = reinterpret_cast<const B*>(x.tensor_data().data());
    const auto* ys = reinterpret_cast<const B*>(y.tensor_data().data());
    const auto* gs = reinterpret_cast<const B*>(pool_grad.tensor_data().data());
    const int64_t pooled = ((height + 1) / 2) * ((width + 1) / 2) * channels;
    const int64_t scratch_size = lenet_conv_relu_pool_filter_grad_scratch(height, width, channels, k_);
    auto run_images = [&](int64_t first, int64_t last) {
      std::vector<float> scratch(scratch_size);
      for (int64_t i = first; i < last; ++i) {
        float* out = partial.data() + i * per_image;
        Bits<T>::filter_grad(height, width, channels, k_, xs + i * height * width,
                                         ys + i * height * width * channels, gs + i * pooled, out,
                                         out + kernel_size, scratch.data());
      }
    };
    const int64_t cost = height * width * channels * (k_ * k_ + 4) * 2;
    ctx->device()->tensorflow_cpu_worker_threads()->workers->ParallelFor(n, cost, run_images);

    Tensor *kernel_grad = nullptr, *bias_grad = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({k_, k_, 1, channels}), &kernel_grad));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, TensorShape({channels}), &bias_grad));
    float* kg = kernel_grad->flat<float>().data();
    float* bg = bias_grad->flat<float>().data();
    std::fill(kg, kg + kernel_size, 0.f);
    std::fill(bg, bg + channels, 0.f);
    for (int64_t i = 0; i < n; ++i) {
      const float* p = partial.data() + i * per_image;
      for (int64_t j = 0; j < kernel_size; ++j) kg[j] += p[j];
      for (int64_t c = 0; c < channels; ++c) bg[c] += p[kernel_size + c];
    }
  }

 private:
  int64_t k_;
};

REGISTER_KERNEL_BUILDER(
    Name("ConvReluPoolFilterGrad").Device(tensorflow::DEVICE_CPU).TypeConstraint<tensorflow::bfloat16>("T"),
    ConvReluPoolFilterGradOp<tensorflow::bfloat16>);
REGISTER_KERNEL_BUILDER(Name("ConvReluPoolFilterGrad").Device(tensorflow::DEVICE_CPU).TypeConstraint<float>("T"),
                        ConvReluPoolFilterGradOp<float>);

// ReluPoolGrad: ReluGrad and MaxPoolGrad of y = relu(...), p = max_pool(y, 2x2, stride 2, SAME)
// in one pass, bfloat16 or float32 in and out (routing only copies values, so it is exact).
// Replaces ReluGrad and oneDNN's MaxPoolGrad, two passes over the activations.
REGISTER_OP("ReluPoolGrad")
    .Input("y: T")
    .Input("pool_grad: T")
    .Output("conv_grad: T")
    .Attr("T: {bfloat16, float}")
    .SetShapeFn([](tensorflow::shape_inference::InferenceContext* c) {
      c->set_output(0, c->input(0));
      return tensorflow::OkStatus();
    });

template <typename T>
class ReluPoolGradOp : public OpKernel {
 public:
  explicit ReluPoolGradOp(OpKernelConstruction* ctx) : OpKernel(ctx) {}

  void Compute(OpKernelContext* ctx) override {
    const Tensor& y = ctx->input(0);
    const Tensor& pool_grad = ctx->input(1);
    OP_REQUIRES(ctx, y.dims() == 4 && pool_grad.dims() == 4 && pool_grad.dim_size(0) == y.dim_size(0) &&
                         pool_grad.dim_size(1) == (y.dim_size(1) + 1) / 2 &&
                         pool_grad.dim_size(2) == (y.dim_size(2) + 1) / 2 && pool_grad.dim_size(3) == y.dim_size(3),
                tensorflow::errors::InvalidArgument("y must be [N,H,W,C] and pool_grad [N,H/2,W/2,C], got ",
                                                    y.shape().DebugString(), " and ",
                                                    pool_grad.shape().DebugString()));
    Tensor* conv_grad = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, y.shape(), &conv_grad));
    const int64_t n = y.dim_size(0), height = y.dim_size(1), width = y.dim_size(2), channels = y.dim_size(3);
    const int64_t image = height * width * channels, pooled = pool_grad.NumElements() / std::max<int64_t>(n, 1);
    using B = typename Bits<T>::type;
    const auto* ys = reinterpret_cast<const B*>(y.tensor_data().data());
    const auto* gs = reinterpret_cast<const B*>(pool_grad.tensor_data().data());
    auto* out = reinterpret_cast<B*>(conv_grad->flat<T>().data());
    auto run_images = [&](int64_t first, int64_t last) {
      for (int64_t i = first; i < last; ++i)
        Bits<T>::relu_pool_grad(height, width, channels, ys + i * image, gs + i * pooled, out + i * image);
    };
    ctx->device()->tensorflow_cpu_worker_threads()->workers->ParallelFor(n, image * 4, run_images);
  }
};

REGISTER_KERNEL_BUILDER(Name("ReluPoolGrad").Device(tensorflow::DEVICE_CPU).TypeConstraint<tensorflow::bfloat16>("T"),
                        ReluPoolGradOp<tensorflow::bfloat16>);
REGISTER_KERNEL_BUILDER(Name("ReluPoolGrad").Device(tensorflow::DEVICE_CPU).TypeConstraint<float>("T"),
                        ReluPoolGradOp<float>);

}  // namespace lenet
