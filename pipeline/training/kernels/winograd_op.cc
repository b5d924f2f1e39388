// WinogradConv2D and WinogradFilterGrad: a SAME, stride-1 float32 convolution in the Winograd
// domain F(m x m, r x r), and the gradient of its transformed filter.
//
// The filter transform (G g G^T) and its adjoint are small and left to TensorFlow ops in
// pipeline/training/winograd.py, which also passes the transform matrices Bt and At as attributes,
// so this file holds no constants of its own. The input gradient of a SAME convolution with an odd
// filter is the same convolution of the output gradient with the filter rotated by 180 degrees and
// its channels swapped, so WinogradConv2D serves both the forward pass and the input gradient.
// Work is split over images; the filter gradient adds fixed chunks of images in chunk order, so
// its sums do not depend on the number of threads (exact resume).
#include <algorithm>
#include <cstdint>
#include <vector>

#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/lib/core/threadpool.h"
#include "winograd_loop.h"

namespace lenet {

using tensorflow::OpKernel;
using tensorflow::OpKernelConstruction;
using tensorflow::OpKernelContext;
using tensorflow::Tensor;
using tensorflow::TensorShape;
using tensorflow::errors::InvalidArgument;

constexpr int64_t kImagesPerChunk = 8;

// The attributes both ops share: the output tile side m and the transforms Bt (n x n), At (m x n).
class WinogradOpBase : public OpKernel {
 public:
  explicit WinogradOpBase(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("m", &m_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("bt", &bt_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("at", &at_));
    n_ = static_cast<int64_t>(at_.size()) / std::max<int64_t>(m_, 1);
    OP_REQUIRES(ctx, m_ >= 1 && n_ > m_ && (n_ - m_) % 2 == 0 && static_cast<int64_t>(at_.size()) == m_ * n_ &&
                         static_cast<int64_t>(bt_.size()) == n_ * n_,
                InvalidArgument("at must be m x n and bt n x n with n - m even, got m = ", m_, ", ",
                                at_.size(), " and ", bt_.size(), " values"));
  }

 protected:
  static bool whole_vectors(int64_t channels) { return channels > 0 && channels % 16 == 0; }
  int64_t m_, n_;
  std::vector<float> bt_, at_;
};

REGISTER_OP("WinogradConv2D")
    .Input("x: float")
    .Input("u: float")
    .Input("bias: float")
    .Attr("m: int")
    .Attr("bt: list(float)")
    .Attr("at: list(float)")
    .Attr("relu: bool = false")
    .Output("y: float")
    .SetShapeFn([](tensorflow::shape_inference::InferenceContext* c) {
      tensorflow::shape_inference::ShapeHandle out;
      TF_RETURN_IF_ERROR(c->ReplaceDim(c->input(0), 3, c->Dim(c->input(1), 2), &out));
      c->set_output(0, out);
      return tensorflow::OkStatus();
    });

class WinogradConv2DOp : public WinogradOpBase {
 public:
  explicit WinogradConv2DOp(OpKernelConstruction* ctx) : WinogradOpBase(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("relu", &relu_));
  }

  void Compute(OpKernelContext* ctx) override {
    const Tensor& x = ctx->input(0);
    const Tensor& u = ctx->input(1);
    const Tensor& bias = ctx->input(2);
    OP_REQUIRES(ctx, x.dims() == 4 && u.dims() == 3 && u.dim_size(0) == n_ * n_ && u.dim_size(1) == x.dim_size(3),
                InvalidArgument("x must be [N,H,W,C] and u [n*n,C,K], got ", x.shape().DebugString(), " and ",
                                u.shape().DebugString()));
    const int64_t images = x.dim_size(0), height = x.dim_size(1), width = x.dim_size(2);
    const int64_t channels = x.dim_size(3), filters = u.dim_size(2);
    OP_REQUIRES(ctx, whole_vectors(channels) && whole_vectors(filters),
                InvalidArgument("channels and filters must be multiples of 16, got ", channels, " and ", filters));
    OP_REQUIRES(ctx, bias.NumElements() == 0 || bias.NumElements() == filters,
                InvalidArgument("bias must be empty or have ", filters, " values"));
    Tensor* y = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({images, height, width, filters}), &y));
    const float* xs = x.flat<float>().data();
    const float* us = u.flat<float>().data();
    const float* bs = bias.NumElements() ? bias.flat<float>().data() : nullptr;
    float* ys = y->flat<float>().data();
    const int64_t scratch_size = lenet_winograd_scratch(m_, n_, channels, filters);
    const int64_t image_in = height * width * channels, image_out = height * width * filters;
    auto run_images = [&](int64_t first, int64_t last) {
      std::vector<float> scratch(scratch_size);
      lenet_winograd_forward(last - first, height, width, channels, filters, m_, n_, bt_.data(), at_.data(),
                             xs + first * image_in, us, bs, relu_, ys + first * image_out, scratch.data());
    };
    const int64_t cost = image_out * channels * n_ * n_ / (m_ * m_) * 2;
    ctx->device()->tensorflow_cpu_worker_threads()->workers->ParallelFor(images, cost, run_images);
  }

 private:
  bool relu_;
};

REGISTER_KERNEL_BUILDER(Name("WinogradConv2D").Device(tensorflow::DEVICE_CPU), WinogradConv2DOp);

REGISTER_OP("WinogradFilterGrad")
    .Input("x: float")
    .Input("dy: float")
    .Attr("m: int")
    .Attr("bt: list(float)")
    .Attr("at: list(float)")
    .Output("du: float")
    .SetShapeFn([](tensorflow::shape_inference::InferenceContext* c) {
      std::vector<float> at;
      int64_t m;
      TF_RETURN_IF_ERROR(c->GetAttr("m", &m));
      TF_RETURN_IF_ERROR(c->GetAttr("at", &at));
      const int64_t n = static_cast<int64_t>(at.size()) / std::max<int64_t>(m, 1);
      c->set_output(0, c->MakeShape({n * n, c->Dim(c->input(0), 3), c->Dim(c->input(1), 3)}));
      return tensorflow::OkStatus();
    });

class WinogradFilterGradOp : public WinogradOpBase {
 public:
  explicit WinogradFilterGradOp(OpKernelConstruction* ctx) : WinogradOpBase(ctx) {}

  void Compute(OpKernelContext* ctx) override {
    const Tensor& x = ctx->input(0);
    const Tensor& dy = ctx->input(1);
    OP_REQUIRES(ctx, x.dims() == 4 && dy.dims() == 4 && dy.dim_size(0) == x.dim_size(0) &&
                         dy.dim_size(1) == x.dim_size(1) && dy.dim_size(2) == x.dim_size(2),
                InvalidArgument("x must be [N,H,W,C] and dy [N,H,W,K], got ", x.shape().DebugString(), " and ",
                                dy.shape().DebugString()));
    const int64_t images = x.dim_size(0), height = x.dim_size(1), width = x.dim_size(2);
    const int64_t channels = x.dim_size(3), filters = dy.dim_size(3);
    OP_REQUIRES(ctx, whole_vectors(channels) && whole_vectors(filters),
                InvalidArgument("channels and filters must be multiples of 16, got ", channels, " and ", filters));
    const int64_t size = n_ * n_ * channels * filters;
    const int64_t chunks = (images + kImagesPerChunk - 1) / kImagesPerChunk;
    std::vector<float> partial(std::max<int64_t>(chunks, 1) * size, 0.f);
    const float* xs = x.flat<float>().data();
    const float* dys = dy.flat<float>().data();
    const int64_t scratch_size = lenet_winograd_scratch(m_, n_, channels, filters);
    const int64_t image_in = height * width * channels, image_out = height * width * filters;
    auto run_chunks = [&](int64_t first, int64_t last) {
      std::vector<float> scratch(scratch_size);
      for (int64_t chunk = first; chunk < last; ++chunk) {
        const int64_t start = chunk * kImagesPerChunk, count = std::min(kImagesPerChunk, images - start);
        lenet_winograd_filter_grad(count, height, width, channels, filters, m_, n_, bt_.data(), at_.data(),
                                   xs + start * image_in, dys + start * image_out, partial.data() + chunk * size,
                                   scratch.data());
      }
    };
    const int64_t cost = kImagesPerChunk * image_out * channels * n_ * n_ / (m_ * m_) * 2;
    ctx->device()->tensorflow_cpu_worker_threads()->workers->ParallelFor(chunks, cost, run_chunks);
    Tensor* du = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({n_ * n_, channels, filters}), &du));
    float* out = du->flat<float>().data();
    std::copy(partial.begin(), partial.begin() + size, out);
    for (int64_t chunk = 1; chunk < chunks; ++chunk) {
      const float* p = partial.data() + chunk * size;
      for (int64_t j = 0; j < size; ++j) out[j] += p[j];
    }
  }
};

REGISTER_KERNEL_BUILDER(Name("WinogradFilterGrad").Device(tensorflow::DEVICE_CPU), WinogradFilterGradOp);

}  // namespace lenet
