// The per-image loops of ConvReluPoolFilterGrad and ReluPoolGrad (see conv_relu_pool_loop.h).
//
// Channels are the innermost dimension everywhere, so the inner loops run over contiguous
// channels and vectorise; for the model's own shape (32 channels, 5x5) the sizes are
// compile-time constants so that the accumulators stay in registers. Other shapes take a plain
// loop that is slower but gives the same sums.
#include "conv_relu_pool_loop.h"

#include <algorithm>
#include <cstring>
#include <type_traits>

#include "bfloat16_bits.h"

namespace {

using lenet::bf16_to_float;

// Activations and gradients are stored as raw bits: bfloat16 (uint16_t) or float32 (uint32_t).
inline float to_float(uint16_t h) { return bf16_to_float(h); }
inline float to_float(uint32_t bits) {
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

// The routed gradient as the caller stores it: float32 for the filter-gradient sums, or the bits
// unchanged (routing only copies values, so an output in the input's type is exact).
template <typename Out, typename T>
inline Out from_bits(T bits) {
  if constexpr (std::is_same_v<Out, float>) {
    return to_float(bits);
  } else {
    return bits;
  }
}

// ReLU outputs are +0, -0 (oneDNN's ReLU turns negatives into -0) or positive; with -0 mapped to
// +0, their bfloat16 or float32 bits order like their values, so integer compares decide the same
// maxima and ties as float compares, and vectorise with either output type.
template <typename T>
inline T relu_order_key(T bits) {
  constexpr T sign = T(1) << (8 * sizeof(T) - 1);
  return (bits & sign) ? T(0) : bits;
}

// One pool window's ReLU and max-pool backward for every channel: the gradient goes to the
// window's first largest element (row-major, as TensorFlow's MaxPoolGrad), where it is positive.
template <int64_t kChannels, typename Out, typename T>
inline void route_window(int64_t channels, int count, const T* const* y, const T* g, Out* const* out) {
  const int64_t n = kChannels > 0 ? kChannels : channels;
  for (int64_t c = 0; c < n; ++c) {
    T best = relu_order_key(y[0][c]);
    int winner = 0;
    for (int q = 1; q < count; ++q) {
      const T value = relu_order_key(y[q][c]);
      winner = value > best ? q : winner;
      best = value > best ? value : best;
    }
    const Out routed = best > 0 ? from_bits<Out>(g[c]) : Out(0);
    for (int q = 0; q < count; ++q) out[q][c] = q == winner ? routed : Out(0);
  }
}

// A full 2x2 window, written out so that the channel loop vectorises.
template <int64_t kChannels, typename Out, typename T>
inline void route_full_window(const T* __restrict y0, const T* __restrict y1, const T* __restrict y2,
                              const T* __restrict y3, const T* __restrict g, Out* __restrict o0,
                              Out* __restrict o1, Out* __restrict o2, Out* __restrict o3) {
#pragma GCC ivdep
  for (int64_t c = 0; c < kChannels; ++c) {
    const T v0 = relu_order_key(y0[c]), v1 = relu_order_key(y1[c]);
    const T v2 = relu_order_key(y2[c]), v3 = relu_order_key(y3[c]);
    // Strictly greater replaces: ties keep the earlier element.
    const bool w1 = v1 > v0;
    const T m01 = w1 ? v1 : v0;
    const bool w2 = v2 > m01;
    const T m012 = w2 ? v2 : m01;
    const bool w3 = v3 > m012;
    const T best = w3 ? v3 : m012;
    const Out routed = best > 0 ? from_bits<Out>(g[c]) : Out(0);
    o0[c] = (!w1 && !w2 && !w3) ? routed : Out(0);
    o1[c] = (w1 && !w2 && !w3) ? routed : Out(0);
    o2[c] = (w2 && !w3) ? routed : Out(0);
    o3[c] = w3 ? routed : Out(0);
  }
}

template <int64_t kChannels, typename Out, typename T>
void route(int64_t height, int64_t width, int64_t runtime_channels, const T* y, const T* pool_grad,
           Out* conv_grad) {
  const int64_t channels = kChannels > 0 ? kChannels : runtime_channels;
  const int64_t pooled_width = (width + 1) / 2;
  for (int64_t i = 0; i < (height + 1) / 2; ++i) {
    for (int64_t j = 0; j < pooled_width; ++j) {
      const T* g = pool_grad + (i * pooled_width + j) * channels;
      const T* ys[4];
      Out* outs[4];
      int count = 0;
      for (int64_t h = 2 * i; h < std::min(2 * i + 2, height); ++h) {
        for (int64_t w = 2 * j; w < std::min(2 * j + 2, width); ++w) {
          ys[count] = y + (h * width + w) * channels;
          outs[count++] = conv_grad + (h * width + w) * channels;
        }
      }
      if (kChannels > 0 && count == 4) {
        route_full_window<kChannels, Out, T>(ys[0], ys[1], ys[2], ys[3], g, outs[0], outs[1], outs[2], outs[3]);
      } else {
        route_window<kChannels, Out, T>(channels, count, ys, g, outs);
      }
    }
  }
}

// Filter and bias gradients from the conv-output gradient and the zero-padded input: for each
// kernel row, the k taps of the row accumulate together in registers.
template <int64_t kChannels, int64_t kTaps>
void accumulate_fixed(int64_t height, int64_t width, const float* __restrict padded,
                      const float* __restrict conv_grad, float* __restrict kernel_grad,
                      float* __restrict bias_grad) {
  const int64_t padded_width = width + kTaps - 1;
  for (int64_t kh = 0; kh < kTaps; ++kh) {
    float sums[kTaps][kChannels] = {};
    for (int64_t h = 0; h < height; ++h) {
      const float* row = padded + (h + kh) * padded_width;
      const float* grad_row = conv_grad + h * width * kChannels;
      for (int64_t w = 0; w < width; ++w) {
        const float* grad = grad_row + w * kChannels;
        for (int64_t kw = 0; kw < kTaps; ++kw) {
          const float pixel = row[w + kw];
          for (int64_t c = 0; c < kChannels; ++c) sums[kw][c] += pixel * grad[c];
        }
      }
    }
    for (int64_t kw = 0; kw < kTaps; ++kw)
      for (int64_t c = 0; c < kChannels; ++c) kernel_grad[(kh * kTaps + kw) * kChannels + c] += sums[kw][c];
  }
  for (int64_t p = 0; p < height * width; ++p)
    for (int64_t c = 0; c < kChannels; ++c) bias_grad[c] += conv_grad[p * kChannels + c];
}

void accumulate_any(int64_t height, int64_t width, int64_t channels, int64_t k, const float* padded,
                    const float* conv_grad, float* kernel_grad, float* bias_grad) {
  const int64_t padded_width = width + k - 1;
  for (int64_t kh = 0; kh < k; ++kh)
    for (int64_t kw = 0; kw < k; ++kw)
      for (int64_t h = 0; h < height; ++h)
        for (int64_t w = 0; w < width; ++w)
          for (int64_t c = 0; c < channels; ++c)
            kernel_grad[(kh * k + kw) * channels + c] +=
                padded[(h + kh) * padded_width + w + kw] * conv_grad[(h * width + w) * channels + c];
  for (int64_t p = 0; p < height * width; ++p)
    for (int64_t c = 0; c < channels; ++c) bias_grad[c] += conv_grad[p * channels + c];
}

template <typename T>
void conv_relu_pool_filter_grad(int64_t height, int64_t width, int64_t channels, int64_t k, const T* x, const T* y,
                                const T* pool_grad, float* kernel_grad, float* bias_grad, float* scratch) {
  const int64_t pad = (k - 1) / 2, padded_width = width + k - 1;
  float* padded = scratch;
  float* conv_grad = scratch + (height + k - 1) * padded_width;
  std::fill(padded, conv_grad, 0.f);
  for (int64_t h = 0; h < height; ++h)
    for (int64_t w = 0; w < width; ++w) padded[(h + pad) * padded_width + w + pad] = to_float(x[h * width + w]);
  if (channels == 32 && k == 5) {  // the model's first layer
    route<32, float>(height, width, channels, y, pool_grad, conv_grad);
    accumulate_fixed<32, 5>(height, width, padded, conv_grad, kernel_grad, bias_grad);
  } else {
    route<0, float>(height, width, channels, y, pool_grad, conv_grad);
    accumulate_any(height, width, channels, k, padded, conv_grad, kernel_grad, bias_grad);
  }
}

template <typename T>
void relu_pool_grad(int64_t height, int64_t width, int64_t channels, const T* y, const T* pool_grad, T* conv_grad) {
  if (channels == 64) {  // the model's second layer
    route<64, T>(height, width, channels, y, pool_grad, conv_grad);
  } else if (channels == 32) {
    route<32, T>(height, width, channels, y, pool_grad, conv_grad);
  } else {
    route<0, T>(height, width, channels, y, pool_grad, conv_grad);
  }
}

}  // namespace

extern "C" {

void lenet_conv_relu_pool_filter_grad(int64_t height, int64_t width, int64_t channels, int64_t k, const uint16_t* x,
                                      const uint16_t* y, const uint16_t* pool_grad, float* kernel_grad,
                                      float* bias_grad, float* scratch) {
  conv_relu_pool_filter_grad(height, width, channels, k, x, y, pool_grad, kernel_grad, bias_grad, scratch);
}

void lenet_conv_relu_pool_filter_grad_f32(int64_t height, int64_t width, int64_t channels, int64_t k,
                                          const uint32_t* x, const uint32_t* y, const uint32_t* pool_grad,
                                          float* kernel_grad, float* bias_grad, float* scratch) {
  conv_relu_pool_filter_grad(height, width, channels, k, x, y, pool_grad, kernel_grad, bias_grad, scratch);
}

void lenet_relu_pool_grad(int64_t height, int64_t width, int64_t channels, const uint16_t* y,
                          const uint16_t* pool_grad, uint16_t* conv_grad) {
  relu_pool_grad(height, width, channels, y, pool_grad, conv_grad);
}

void lenet_relu_pool_grad_f32(int64_t height, int64_t width, int64_t channels, const uint32_t* y,
                              const uint32_t* pool_grad, uint32_t* conv_grad) {
  relu_pool_grad(height, width, channels, y, pool_grad, conv_grad);
}
}
