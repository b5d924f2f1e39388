// WinogradConv2D and WinogradFilterGrad: a SAME, stride-1 convolution in the Winograd domain
// F(m x m, r x r), and the gradients of its transformed filter and bias, in float32 or (T = bfloat16,
// where the loops were compiled for AVX512-BF16) with bfloat16 tensors and products.
// WinogradFilterTransform and WinogradFilterTransformGrad: the filter transform (G g G^T, in the
// layout WinogradConv2D takes for T) and its adjoint.
//
// pipeline/training/winograd.py passes the transform matrices Bt, At and G as attributes. The loops
// have Bt and At compiled in (winograd_loop.cc derives them from the same points), so the ops refuse
// any others. The input gradient of a SAME convolution with an odd filter is the same convolution
// of the output gradient with the filter rotated by 180 degrees and its channels swapped, so
// WinogradConv2D serves both the forward pass and the input gradient.
// Work is split over images; the filter gradient adds fixed chunks of images in chunk order, so
// its sums do not depend on the number of threads (exact resume).
#include <algorithm>
#include <cstdint>
#include <memory>
#include <type_traits>
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
using tensorflow::bfloat16;
using tensorflow::errors::InvalidArgument;

// The loops take bfloat16 tensors as their bits.
inline const float* elements(const Tensor& t, float) { return t.flat<float>().data(); }
inline const uint16_t* elements(const Tensor& t, bfloat16) {
  return reinterpret_cast<const uint16_t*>(t.flat<bfloat16>().data());
}
inline float* elements(Tensor* t, float) { return t->flat<float>().data(); }
inline uint16_t* elements(Tensor* t, bfloat16) { return reinterpret_cast<uint16_t*>(t->flat<bfloat16>().data()); }

inline void forward(int64_t images, int64_t height, int64_t width, int64_t channels, int64_t filters, int64_t m,
                    int64_t n, const float* x, const Tensor& u, const float* bias, int relu, float* y,
                    float* scratch) {
  lenet_winograd_forward(images, height, width, channels, filters, m, n, x, u.flat<float>().data(), bias,
                         relu, y, scratch);
}
inline void forward(int64_t images, int64_t height, int64_t width, int64_t channels, int64_t filters, int64_t m,
                    int64_t n, const uint16_t* x, const Tensor& u, const float* bias, int relu, uint16_t* y,
                    float* scratch) {
  lenet_winograd_forward_bfloat16(images, height, width, channels, filters, m, n, x,
                                  reinterpret_cast<const uint32_t*>(u.flat<bfloat16>().data()), bias, relu, y,
                                  scratch);
}
inline void filter_grad(int64_t images, int64_t height, int64_t width, int64_t channels, int64_t filters, int64_t m,
                        int64_t n, const float* x, const float* dy, float* du, float* db, float* scratch) {
  lenet_winograd_filter_grad(images, height, width, channels, filters, m, n, x, dy, du, db, scratch);
}
inline void filter_grad(int64_t images, int64_t height, int64_t width, int64_t channels, int64_t filters, int64_t m,
                        int64_t n, const uint16_t* x, const uint16_t* dy, float* du, float* db,
                        float* scratch) {
  lenet_winograd_filter_grad_bfloat16(images, height, width, channels, filters, m, n, x, dy, du, db, scratch);
}

// 16 images (4 chunks of a 64-image batch): with 8 the chunks' partial sums (0.5 MB each) took
// twice the memory to fill and add up; on a 2-core AVX512-BF16 EPYC the op alone took 1.10x as
// long (1.15x on one thread) and the bfloat16 training step 1.01-1.05x (paired rounds; 32 images
// no better). It caps this op at 4 threads for a 64-image batch; the input gradient runs beside it.
constexpr int64_t kImagesPerChunk = 16;

// The attributes both ops share: the output tile side m and the transforms Bt (n x n), At (m x n).
template <typename T>
class WinogradOpBase : public OpKernel {
 public:
  explicit WinogradOpBase(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES(ctx, (std::is_same_v<T, float> || lenet_winograd_bfloat16_compiled()),
                tensorflow::errors::Unimplemented(
                    "the bfloat16 Winograd kernels were not compiled in: they need a CPU with AVX512-BF16 and a "
                    "compiler that targets it (use kernels fused or stock)"));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("m", &m_));
    std::vector<float> bt, at;  // checked against the compiled transforms, then not needed
    OP_REQUIRES_OK(ctx, ctx->GetAttr("bt", &bt));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("at", &at));
    n_ = static_cast<int64_t>(at.size()) / std::max<int64_t>(m_, 1);
    OP_REQUIRES(ctx, m_ >= 1 && n_ > m_ && (n_ - m_) % 2 == 0 && static_cast<int64_t>(at.size()) == m_ * n_ &&
                         static_cast<int64_t>(bt.size()) == n_ * n_,
                InvalidArgument("at must be m x n and bt n x n with n - m even, got m = ", m_, ", ",
                                at.size(), " and ", bt.size(), " values"));
    OP_REQUIRES(ctx, lenet_winograd_transforms_match(m_, n_, bt.data(), at.data()),
                InvalidArgument("bt and at are not the transforms compiled in for F(", m_, "x", m_,
                                ",5x5): rebuild the ops from the same sources as pipeline/training/winograd.py"));
  }

 protected:
  static bool whole_vectors(int64_t channels) { return channels > 0 && channels % 16 == 0; }
  int64_t m_, n_;
};

// u is [n*n, C, K] in float32; in bfloat16 [n*n, C / 2, K, 2], channel pairs innermost.
REGISTER_OP("WinogradConv2D")
    .Input("x: T")
    .Input("u: T")
    .Input("bias: float")
    .Attr("T: {float, bfloat16} = DT_FLOAT")
    .Attr("m: int")
    .Attr("bt: list(float)")
    .Attr("at: list(float)")
    .Attr("relu: bool = false")
    .Output("y: T")
    .SetShapeFn([](tensorflow::shape_inference::InferenceContext* c) {
      tensorflow::shape_inference::ShapeHandle out;
      TF_RETURN_IF_ERROR(c->ReplaceDim(c->input(0), 3, c->Dim(c->input(1), 2), &out));
      c->set_output(0, out);
      return tensorflow::OkStatus();
    });

template <typename T>
class WinogradConv2DOp : public WinogradOpBase<T> {
 public:
  explicit WinogradConv2DOp(OpKernelConstruction* ctx) : WinogradOpBase<T>(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("relu", &relu_));
  }

  void Compute(OpKernelContext* ctx) override {
    const Tensor& x = ctx->input(0);
    const Tensor& u = ctx->input(1);
    const Tensor& bias = ctx->input(2);
    const int64_t n_ = this->n_, m_ = this->m_;
    constexpr int64_t pair = std::is_same_v<T, float> ? 1 : 2;
    OP_REQUIRES(ctx, x.dims() == 4 && u.dims() == (pair == 1 ? 3 : 4) && u.dim_size(0) == n_ * n_ &&
                         u.dim_size(1) * pair == x.dim_size(3) && (pair == 1 || u.dim_size(3) == 2),
                InvalidArgument("x must be [N,H,W,C] and u [n*n,C,K] (float32) or [n*n,C/2,K,2] (bfloat16), got ",
                                x.shape().DebugString(), " and ", u.shape().DebugString()));
    const int64_t images = x.dim_size(0), height = x.dim_size(1), width = x.dim_size(2);
    const int64_t channels = x.dim_size(3), filters = u.dim_size(2);
    OP_REQUIRES(ctx, this->whole_vectors(channels) && this->whole_vectors(filters),
                InvalidArgument("channels and filters must be multiples of 16, got ", channels, " and ", filters));
    OP_REQUIRES(ctx, bias.NumElements() == 0 || bias.NumElements() == filters,
                InvalidArgument("bias must be empty or have ", filters, " values"));
    Tensor* y = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({images, height, width, filters}), &y));
    const auto* xs = elements(x, T());
    const float* bs = bias.NumElements() ? bias.flat<float>().data() : nullptr;
    auto* ys = elements(y, T());
    const int64_t scratch_size = lenet_winograd_scratch(m_, n_, channels, filters);
    const int64_t image_in = height * width * channels, image_out = height * width * filters;
    auto run_images = [&](int64_t first, int64_t last) {
      std::unique_ptr<float[]> scratch(new float[scratch_size]);  // every value is written before it is read
      forward(last - first, height, width, channels, filters, m_, n_, xs + first * image_in, u, bs, relu_,
              ys + first * image_out, scratch.get());
    };
    const int64_t cost = image_out * channels * n_ * n_ / (m_ * m_) * 2;
    ctx->device()->tensorflow_cpu_worker_threads()->workers->ParallelFor(images, cost, run_images);
  }

 private:
  bool relu_;
};

REGISTER_KERNEL_BUILDER(Name("WinogradConv2D").Device(tensorflow::DEVICE_CPU).TypeConstraint<float>("T"),
                        WinogradConv2DOp<float>);
REGISTER_KERNEL_BUILDER(Name("WinogradConv2D").Device(tensorflow::DEVICE_CPU).TypeConstraint<bfloat16>("T"),
                        WinogradConv2DOp<bfloat16>);

REGISTER_OP("WinogradFilterGrad")
    .Input("x: T")
    .Input("dy: T")
    .Attr("T: {float, bfloat16} = DT_FLOAT")
    .Attr("m: int")
    .Attr("bt: list(float)")
    .Attr("at: list(float)")
    .Output("du: float")
    .Output("db: float")
    .SetShapeFn([](tensorflow::shape_inference::InferenceContext* c) {
      std::vector<float> at;
      int64_t m;
      TF_RETURN_IF_ERROR(c->GetAttr("m", &m));
      TF_RETURN_IF_ERROR(c->GetAttr("at", &at));
      const int64_t n = static_cast<int64_t>(at.size()) / std::max<int64_t>(m, 1);
      c->set_output(0, c->MakeShape({n * n, c->Dim(c->input(0), 3), c->Dim(c->input(1), 3)}));
      c->set_output(1, c->MakeShape({c->Dim(c->input(1), 3)}));
      return tensorflow::OkStatus();
    });

template <typename T>
class WinogradFilterGradOp : public WinogradOpBase<T> {
 public:
  explicit WinogradFilterGradOp(OpKernelConstruction* ctx) : WinogradOpBase<T>(ctx) {}

  void Compute(OpKernelContext* ctx) override {
    const int64_t n_ = this->n_, m_ = this->m_;
    const Tensor& x = ctx->input(0);
    const Tensor& dy = ctx->input(1);
    OP_REQUIRES(ctx, x.dims() == 4 && dy.dims() == 4 && dy.dim_size(0) == x.dim_size(0) &&
                         dy.dim_size(1) == x.dim_size(1) && dy.dim_size(2) == x.dim_size(2),
                InvalidArgument("x must be [N,H,W,C] and dy [N,H,W,K], got ", x.shape().DebugString(), " and ",
                                dy.shape().DebugString()));
    const int64_t images = x.dim_size(0), height = x.dim_size(1), width = x.dim_size(2);
    const int64_t channels = x.dim_size(3), filters = dy.dim_size(3);
    OP_REQUIRES(ctx, this->whole_vectors(channels) && this->whole_vectors(filters),
                InvalidArgument("channels and filters must be multiples of 16, got ", channels, " and ", filters));
    const int64_t size = n_ * n_ * channels * filters + filters;  // du, then db
    const int64_t chunks = (images + kImagesPerChunk - 1) / kImagesPerChunk;
    std::unique_ptr<float[]> partial(new float[chunks * size]);
    const auto* xs = elements(x, T());
    const auto* dys = elements(dy, T());
    const int64_t scratch_size = lenet_winograd_scratch(m_, n_, channels, filters);
    const int64_t image_in = height * width * channels, image_out = height * width * filters;
    auto run_chunks = [&](int64_t first, int64_t last) {
      std::unique_ptr<float[]> scratch(new float[scratch_size]);  // every value is written before it is read
      for (int64_t chunk = first; chunk < last; ++chunk) {
        const int64_t start = chunk * kImagesPerChunk, count = std::min(kImagesPerChunk, images - start);
        float* sums = partial.get() + chunk * size;
        std::fill(sums, sums + size, 0.f);
        filter_grad(count, height, width, channels, filters, m_, n_, xs + start * image_in, dys + start * image_out,
                    sums, sums + size - filters, scratch.get());
      }
    };
    auto workers = ctx->device()->tensorflow_cpu_worker_threads()->workers;
    const int64_t cost = kImagesPerChunk * image_out * channels * n_ * n_ / (m_ * m_) * 2;
    workers->ParallelFor(chunks, cost, run_chunks);
    Tensor *du = nullptr, *db = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({n_ * n_, channels, filters}), &du));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, TensorShape({filters}), &db));
    float* du_out = du->flat<float>().data();
    float* db_out = db->flat<float>().data();
    // The chunks' sums added in chunk order for every element, split over threads by elements.
    auto add_chunks = [&](int64_t first, int64_t last) {
      for (int64_t j = first; j < last; ++j) {
        float sum = 0.f;
        for (int64_t chunk = 0; chunk < chunks; ++chunk) sum = chunk ? sum + partial[chunk * size + j] : partial[j];
        (j < size - filters ? du_out[j] : db_out[j - (size - filters)]) = sum;
      }
    };
    workers->ParallelFor(size, std::max<int64_t>(chunks, 1) * 2, add_chunks);
  }
};

REGISTER_KERNEL_BUILDER(Name("WinogradFilterGrad").Device(tensorflow::DEVICE_CPU).TypeConstraint<float>("T"),
                        WinogradFilterGradOp<float>);
REGISTER_KERNEL_BUILDER(Name("WinogradFilterGrad").Device(tensorflow::DEVICE_CPU).TypeConstraint<bfloat16>("T"),
                        WinogradFilterGradOp<bfloat16>);

// G g G^T for an HWIO kernel, as WinogradConv2D takes it for tensors of type T; with ``rotate``, of
// the kernel rotated by 180 degrees with its channels swapped (the input gradient's filter).
REGISTER_OP("WinogradFilterTransform")
    .Input("kernel: float")
    .Attr("T: {float, bfloat16}")
    .Attr("g: list(float)")
    .Attr("rotate: bool = false")
    .Output("u: T")
    .SetShapeFn([](tensorflow::shape_inference::InferenceContext* c) {
      std::vector<float> g;
      bool rotate;
      tensorflow::DataType type;
      TF_RETURN_IF_ERROR(c->GetAttr("g", &g));
      TF_RETURN_IF_ERROR(c->GetAttr("rotate", &rotate));
      TF_RETURN_IF_ERROR(c->GetAttr("T", &type));
      auto r = c->Dim(c->input(0), 0);
      if (!c->ValueKnown(r)) {
        c->set_output(0, c->UnknownShape());
        return tensorflow::OkStatus();
      }
      const int64_t n = static_cast<int64_t>(g.size()) / std::max<int64_t>(c->Value(r), 1);
      auto inputs = c->Dim(c->input(0), rotate ? 3 : 2), outputs = c->Dim(c->input(0), rotate ? 2 : 3);
      if (type == tensorflow::DT_FLOAT) {
        c->set_output(0, c->MakeShape({n * n, inputs, outputs}));
      } else {
        tensorflow::shape_inference::DimensionHandle half;
        TF_RETURN_IF_ERROR(c->Divide(inputs, 2, true, &half));
        c->set_output(0, c->MakeShape({n * n, half, outputs, 2}));
      }
      return tensorflow::OkStatus();
    });

template <typename T>
class WinogradFilterTransformOp : public OpKernel {
 public:
  explicit WinogradFilterTransformOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("g", &g_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("rotate", &rotate_));
  }

  void Compute(OpKernelContext* ctx) override {
    const Tensor& kernel = ctx->input(0);
    OP_REQUIRES(ctx, kernel.dims() == 4 && kernel.dim_size(0) == kernel.dim_size(1) && kernel.dim_size(0) > 0 &&
                         static_cast<int64_t>(g_.size()) % kernel.dim_size(0) == 0,
                InvalidArgument("kernel must be [r,r,C,K] with g n x r, got ", kernel.shape().DebugString(), " and ",
                                g_.size(), " values of g"));
    const int64_t r = kernel.dim_size(0), n = static_cast<int64_t>(g_.size()) / r;
    const int64_t channels = kernel.dim_size(2), filters = kernel.dim_size(3);
    const int64_t inputs = rotate_ ? filters : channels, outputs = rotate_ ? channels : filters;
    constexpr bool pairs = !std::is_same_v<T, float>;
    OP_REQUIRES(ctx, !pairs || inputs % 2 == 0, InvalidArgument("bfloat16 pairs need an even channel count"));
    const TensorShape shape = pairs ? TensorShape({n * n, inputs / 2, outputs, 2}) : TensorShape({n * n, inputs, outputs});
    Tensor* u = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, shape, &u));
    std::unique_ptr<float[]> scratch(new float[lenet_winograd_filter_scratch(r, n, channels, filters)]);
    lenet_winograd_filter_transform(r, n, channels, filters, g_.data(), kernel.flat<float>().data(), rotate_, pairs,
                                    u->flat<T>().data(), scratch.get());
  }

 private:
  std::vector<float> g_;
  bool rotate_;
};

REGISTER_KERNEL_BUILDER(Name("WinogradFilterTransform").Device(tensorflow::DEVICE_CPU).TypeConstraint<float>("T"),
                        WinogradFilterTransformOp<float>);
REGISTER_KERNEL_BUILDER(Name("WinogradFilterTransform").Device(tensorflow::DEVICE_CPU).TypeConstraint<bfloat16>("T"),
                        WinogradFilterTransformOp<bfloat16>);

// G^T du G: the HWIO kernel's gradient from the gradient of its transform ([n*n, C, K]).
REGISTER_OP("WinogradFilterTransformGrad")
    .Input("du: float")
    .Attr("g: list(float)")
    .Attr("r: int")
    .Output("dk: float")
    .SetShapeFn([](tensorflow::shape_inference::InferenceContext* c) {
      int64_t r;
      TF_RETURN_IF_ERROR(c->GetAttr("r", &r));
      c->set_output(0, c->MakeShape({r, r, c->Dim(c->input(0), 1), c->Dim(c->input(0), 2)}));
      return tensorflow::OkStatus();
    });

class WinogradFilterTransformGradOp : public OpKernel {
 public:
  explicit WinogradFilterTransformGradOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("g", &g_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("r", &r_));
  }

  void Compute(OpKernelContext* ctx) override {
    const Tensor& du = ctx->input(0);
    const int64_t n = r_ > 0 ? static_cast<int64_t>(g_.size()) / r_ : 0;
    OP_REQUIRES(ctx, n > 0 && n * r_ == static_cast<int64_t>(g_.size()) && du.dims() == 3 && du.dim_size(0) == n * n,
                InvalidArgument("du must be [n*n,C,K] with g n x r, got ", du.shape().DebugString()));
    const int64_t channels = du.dim_size(1), filters = du.dim_size(2);
    Tensor* dk = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({r_, r_, channels, filters}), &dk));
    std::unique_ptr<float[]> scratch(new float[lenet_winograd_filter_scratch(r_, n, channels, filters)]);
    lenet_winograd_filter_transform_adjoint(r_, n, channels, filters, g_.data(), du.flat<float>().data(),
                                            dk->flat<float>().data(), scratch.get());
  }

 private:
  std::vector<float> g_;
  int64_t r_;
};

REGISTER_KERNEL_BUILDER(Name("WinogradFilterTransformGrad").Device(tensorflow::DEVICE_CPU),
                        WinogradFilterTransformGradOp);

}  // namespace lenet
