// The per-image loops of ConvReluPool, ConvReluPoolFilterGrad and ReluPoolGrad (see
// conv_relu_pool_loop.h).
//
// Channels are the innermost dimension everywhere, so the inner loops run over contiguous
// channels and vectorise; for the model's own shape (32 channels, 5x5) the sizes are
// compile-time constants so that the accumulators stay in registers. Other shapes take a plain
// loop that is slower but gives the same sums. The forward pass keeps a block of output pixels'
// sums for 16 or 32 channels in vector registers and goes through the taps (in bfloat16, pairs of
// a kernel row's taps: one dot-product instruction multiplies both), then pools the finished
// image while it is still in cache.
#include "conv_relu_pool_loop.h"

#include <algorithm>
#include <cstring>
#include <type_traits>

#include "bfloat16_bits.h"
#include "products.h"

namespace {

using lenet::bf16_to_float;

// Activations and gradients are stored as raw bits: bfloat16 (uint16_t) or float32 (uint32_t).
inline float to_float(uint16_t h) { return bf16_to_float(h); }
inline float to_float(uint32_t bits) {
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}
inline float to_float(float value) { return value; }

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

// A full 2x2 window, written out so that the channel loop vectorises. Every load is unconditional
// and the conditions combine with & rather than &&: a load under a condition vectorises into
// AVX2's masked moves (vpmaskmovd), which made this pass 2-3x slower on an AVX2 EPYC.
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
    const Out gradient = from_bits<Out>(g[c]);
    const Out routed = best > 0 ? gradient : Out(0);
    o0[c] = (!w1 & !w2 & !w3) ? routed : Out(0);
    o1[c] = (w1 & !w2 & !w3) ? routed : Out(0);
    o2[c] = (w2 & !w3) ? routed : Out(0);
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
// kernel row and block of channels, the k taps of the row accumulate together in registers. A
// block is two vectors of channels, so that a 5x5 kernel row's sums (10 vectors) fit AVX2's 16
// registers as well as AVX-512's 32; each channel's sums run in the same order whatever the block.
template <int64_t kChannels, int64_t kTaps>
void accumulate_fixed(int64_t height, int64_t width, const float* __restrict padded,
                      const float* __restrict conv_grad, float* __restrict kernel_grad,
                      float* __restrict bias_grad) {
  static_assert(kChannels % kColumns == 0, "channels in whole blocks of two vectors");
  const int64_t padded_width = width + kTaps - 1;
  for (int64_t first = 0; first < kChannels; first += kColumns) {
    for (int64_t kh = 0; kh < kTaps; ++kh) {
      vec sums[kTaps][2] = {};
      for (int64_t h = 0; h < height; ++h) {
        const float* row = padded + (h + kh) * padded_width;
        const float* grad_row = conv_grad + h * width * kChannels + first;
        for (int64_t w = 0; w < width; ++w) {
          const float* grad = grad_row + w * kChannels;
          const vec g0 = load(grad), g1 = load(grad + kLanes);
#pragma GCC unroll 8
          for (int64_t kw = 0; kw < kTaps; ++kw) {
            const float pixel = row[w + kw];
            sums[kw][0] += pixel * g0;
            sums[kw][1] += pixel * g1;
          }
        }
      }
      for (int64_t kw = 0; kw < kTaps; ++kw)
        for (int v = 0; v < 2; ++v) {
          float* out = kernel_grad + (kh * kTaps + kw) * kChannels + first + v * kLanes;
          store(out, load(out) + sums[kw][v]);
        }
    }
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

// out [rows][stride] = x [height][width] placed at row and column ``pad``, zeros around it.
template <typename Element>
void pad_image(const Element* x, int64_t height, int64_t width, int64_t pad, int64_t rows, int64_t stride,
               Element* out) {
  std::fill(out, out + rows * stride, Element(0));
  for (int64_t h = 0; h < height; ++h) std::copy(x + h * width, x + (h + 1) * width, out + (h + pad) * stride + pad);
}

#if defined(LENET_BFLOAT16_LOOPS)
// accumulate_fixed for bfloat16, with AVX512-BF16's pair products: the routed gradient (copies of
// bfloat16 values, so exact) goes in pairs of neighbouring pixels of a row, and each step multiplies
// a pixel pair of the padded input (under taps kw of pixels w and w + 1) with it, both products
// exact (values below float32's normal range count as zero, as in every such product), summed in
// float32. Half the instructions of the float32 sums, in another order.
template <int64_t kTaps>
void accumulate_pairs(int64_t height, int64_t width, const uint16_t* __restrict padded, int64_t padded_width,
                      const uint16_t* __restrict conv_grad, uint32_t* __restrict pairs, float* __restrict kernel_grad,
                      float* __restrict bias_grad) {
  constexpr int64_t kChannels = 32;
  const int64_t pair_count = (width + 1) / 2;
  for (int64_t h = 0; h < height; ++h)
    for (int64_t p = 0; p < pair_count; ++p) {
      const uint16_t* first = conv_grad + (h * width + 2 * p) * kChannels;
      const bool second = 2 * p + 1 < width;
      for (int64_t c = 0; c < kChannels; ++c)
        pairs[(h * pair_count + p) * kChannels + c] =
            first[c] | (second ? static_cast<uint32_t>(first[kChannels + c]) << 16 : 0u);
    }
  for (int64_t kh = 0; kh < kTaps; ++kh) {
    vec sums[kTaps][2] = {};
    for (int64_t h = 0; h < height; ++h) {
      const uint16_t* row = padded + (h + kh) * padded_width;
      for (int64_t p = 0; p < pair_count; ++p) {
        const uint32_t* g = pairs + (h * pair_count + p) * kChannels;
        const __m512bh g0 = (__m512bh)_mm512_loadu_si512(g), g1 = (__m512bh)_mm512_loadu_si512(g + kLanes);
        for (int64_t kw = 0; kw < kTaps; ++kw) {
          uint32_t pixels;  // the input under tap kw of pixels 2p and 2p + 1
          std::memcpy(&pixels, row + 2 * p + kw, sizeof pixels);
          const __m512bh broadcast = (__m512bh)_mm512_set1_epi32(static_cast<int>(pixels));
          sums[kw][0] = _mm512_dpbf16_ps(sums[kw][0], broadcast, g0);
          sums[kw][1] = _mm512_dpbf16_ps(sums[kw][1], broadcast, g1);
        }
      }
    }
    for (int64_t kw = 0; kw < kTaps; ++kw)
      for (int v = 0; v < 2; ++v) {
        float* out = kernel_grad + (kh * kTaps + kw) * kChannels + v * kLanes;
        store(out, load(out) + sums[kw][v]);
      }
  }
  for (int64_t q = 0; q < height * width; ++q)
    for (int64_t c = 0; c < kChannels; ++c) bias_grad[c] += bf16_to_float(conv_grad[q * kChannels + c]);
}
#endif

template <typename T>
void conv_relu_pool_filter_grad(int64_t height, int64_t width, int64_t channels, int64_t k, const T* x, const T* y,
                                const T* pool_grad, float* kernel_grad, float* bias_grad, float* scratch) {
#if defined(LENET_BFLOAT16_LOOPS)
  if constexpr (std::is_same_v<T, uint16_t>) {
    if (channels == 32 && k == 5) {  // the model's first layer, in bfloat16
      const int64_t pad = 2, padded_width = width + 5;  // a column more for the last pixel pair's overrun
      uint32_t* pairs = reinterpret_cast<uint32_t*>(scratch);
      uint16_t* padded = reinterpret_cast<uint16_t*>(pairs + height * ((width + 1) / 2) * channels);
      uint16_t* conv_grad = padded + (height + 4) * padded_width;
      pad_image(x, height, width, pad, height + 4, padded_width, padded);
      route<32, uint16_t>(height, width, channels, y, pool_grad, conv_grad);
      accumulate_pairs<5>(height, width, padded, padded_width, conv_grad, pairs, kernel_grad, bias_grad);
      return;
    }
  }
#endif
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

// Output pixels of a row whose sums one register block holds: with two vectors of channels, 16
// sums and the 5x5 kernel's row of taps (10 vectors, 6 in pairs) fit AVX-512's 32 registers; AVX2's
// 16 take one vector of channels.
constexpr int64_t kPixels = 8;
constexpr int kVectors = kLanes == 16 ? 2 : 1;

// The padded image's width: room for whole pixel blocks, the taps and a bfloat16 pair's overrun.
inline int64_t padded_width(int64_t width, int64_t k) { return (width + kPixels - 1) / kPixels * kPixels + k; }

// One kernel row's contribution to a block of kPixels output pixels, V vectors of channels each:
// every input value of the row is broadcast once and multiplied with each tap it meets. Element
// float: taps[K][V] vectors; uint16_t (bfloat16): taps[(K + 1) / 2][V] pairs of taps, and each
// broadcast is the pair of pixels under a pair of taps (one dot-product instruction for both).
template <int K, int V, typename Element, typename Taps>
inline void add_kernel_row(const Element* row,
                           const Taps (&taps)[(std::is_same_v<Element, float> ? K : (K + 1) / 2)][V],
                           vec (&acc)[kPixels][V]) {
  if constexpr (std::is_same_v<Element, float>) {
#pragma GCC unroll 32
    for (int o = 0; o < kPixels + K - 1; ++o) {
      const float pixel = row[o];
#pragma GCC unroll 8
      for (int s = 0; s < K; ++s) {
        const int p = o - s;
        if (p >= 0 && p < kPixels)
          for (int v = 0; v < V; ++v) acc[p][v] += pixel * taps[s][v];
      }
    }
  } else {
#if defined(LENET_BFLOAT16_LOOPS)
    constexpr int kSteps = (K + 1) / 2;
#pragma GCC unroll 32
    for (int o = 0; o < kPixels + 2 * kSteps - 2; ++o) {
      uint32_t pixels;  // row[o] and row[o + 1]: under taps 2j and 2j + 1 for pixel o - 2j
      std::memcpy(&pixels, row + o, sizeof pixels);
      const __m512bh pair = (__m512bh)_mm512_set1_epi32(static_cast<int>(pixels));
#pragma GCC unroll 8
      for (int j = 0; j < kSteps; ++j) {
        const int p = o - 2 * j;
        if (p >= 0 && p < kPixels)
          for (int v = 0; v < V; ++v) acc[p][v] = _mm512_dpbf16_ps(acc[p][v], pair, (__m512bh)taps[j][v]);
      }
    }
#endif
  }
}

// y's channels [first, first + V vectors) for one image: relu(sums + bias), the sums over the
// padded image's K x K taps. Element float: kernel is float [K][K][channels]; uint16_t (bfloat16):
// kernel is uint32_t pairs [K][(K + 1) / 2][channels].
template <int K, int V, typename Element>
void conv_relu_channels(int64_t height, int64_t width, int64_t channels, int64_t first, const Element* padded,
                        const void* kernel, const float* bias, Element* y) {
  constexpr bool pairs = std::is_same_v<Element, uint16_t>;
  constexpr int kSteps = pairs ? (K + 1) / 2 : K;
  typedef std::conditional_t<pairs, bits, vec> Taps;  // bfloat16 pairs as their bits
  const int64_t stride = padded_width(width, K);
  vec b[V];
  for (int v = 0; v < V; ++v) b[v] = load(bias + first + v * kLanes);
  for (int64_t h = 0; h < height; ++h) {
    for (int64_t w = 0; w < width; w += kPixels) {
      vec acc[kPixels][V] = {};
      for (int kh = 0; kh < K; ++kh) {
        Taps taps[kSteps][V];
        for (int s = 0; s < kSteps; ++s)
          for (int v = 0; v < V; ++v) {
            const int64_t at = (kh * kSteps + s) * channels + first + v * kLanes;
            if constexpr (pairs) {
              taps[s][v] = *reinterpret_cast<const bits_unaligned*>(static_cast<const uint32_t*>(kernel) + at);
            } else {
              taps[s][v] = load(static_cast<const float*>(kernel) + at);
            }
          }
        add_kernel_row<K, V, Element>(padded + (h + kh) * stride + w, taps, acc);
      }
      for (int64_t p = 0; p < std::min(kPixels, width - w); ++p)
        for (int v = 0; v < V; ++v) {
          const vec sum = acc[p][v] + b[v];
          store(y + (h * width + w + p) * channels + first + v * kLanes, sum > vec{} ? sum : vec{});
        }
    }
  }
}

// conv_relu_channels for any other odd k and all channels, one value at a time (in bfloat16 one
// product at a time): slower, for shapes other than the model's.
template <typename Element>
void conv_relu_any(int64_t height, int64_t width, int64_t channels, int64_t k, const Element* padded,
                   const void* kernel, const float* bias, Element* y) {
  constexpr bool pairs = std::is_same_v<Element, uint16_t>;
  const int64_t stride = padded_width(width, k), steps = pairs ? (k + 1) / 2 : k;
  for (int64_t h = 0; h < height; ++h)
    for (int64_t w = 0; w < width; ++w)
      for (int64_t c = 0; c < channels; ++c) {
        float sum = 0.f;
        for (int64_t kh = 0; kh < k; ++kh)
          for (int64_t kw = 0; kw < k; ++kw) {
            float tap;
            if constexpr (pairs) {
              const uint32_t pair = static_cast<const uint32_t*>(kernel)[(kh * steps + kw / 2) * channels + c];
              tap = to_float(static_cast<uint16_t>(kw % 2 ? pair >> 16 : pair & 0xffffu));
            } else {
              tap = static_cast<const float*>(kernel)[(kh * k + kw) * channels + c];
            }
            sum += to_float(padded[(h + kh) * stride + w + kw]) * tap;
          }
        sum += bias[c];
        const float value = sum > 0.f ? sum : 0.f;
        if constexpr (pairs) {
          y[(h * width + w) * channels + c] = lenet::float_to_bf16(value);
        } else {
          y[(h * width + w) * channels + c] = value;
        }
      }
}

// pooled = max_pool(y, 2x2, stride 2, SAME): the largest value of each window (bfloat16 values are
// exact in float32, so the maxima are y's own values).
template <typename Element>
void max_pool(int64_t height, int64_t width, int64_t channels, const Element* y, Element* pooled) {
  const int64_t pooled_height = (height + 1) / 2, pooled_width = (width + 1) / 2;
  for (int64_t i = 0; i < pooled_height; ++i)
    for (int64_t j = 0; j < pooled_width; ++j)
      for (int64_t c = 0; c < channels; c += kLanes) {
        const Element* corner = y + (2 * i * width + 2 * j) * channels + c;
        vec best = load(corner);
        if (2 * i + 1 < height && 2 * j + 1 < width) {  // a whole window
          for (const Element* at : {corner + channels, corner + width * channels, corner + (width + 1) * channels}) {
            const vec value = load(at);
            best = value > best ? value : best;
          }
        } else {
          for (int64_t h = 2 * i; h < std::min(2 * i + 2, height); ++h)
            for (int64_t w = 2 * j; w < std::min(2 * j + 2, width); ++w) {
              const vec value = load(y + (h * width + w) * channels + c);
              best = value > best ? value : best;
            }
        }
        store(pooled + (i * pooled_width + j) * channels + c, best);
      }
}

template <typename Element>
void conv_relu_pool_forward(int64_t height, int64_t width, int64_t channels, int64_t k, const Element* x,
                            const void* kernel, const float* bias, Element* y, Element* pooled, float* scratch) {
  const int64_t pad = (k - 1) / 2, stride = padded_width(width, k);
  Element* padded = reinterpret_cast<Element*>(scratch);
  pad_image(x, height, width, pad, height + k - 1, stride, padded);
  if (k == 5) {  // the model's first layer
    int64_t first = 0;
    for (; first + kVectors * kLanes <= channels; first += kVectors * kLanes)
      conv_relu_channels<5, kVectors>(height, width, channels, first, padded, kernel, bias, y);
    for (; first < channels; first += kLanes)
      conv_relu_channels<5, 1>(height, width, channels, first, padded, kernel, bias, y);
  } else {
    conv_relu_any(height, width, channels, k, padded, kernel, bias, y);
  }
  max_pool(height, width, channels, y, pooled);
}
}  // namespace

extern "C" {

int64_t lenet_conv_relu_pool_filter_grad_scratch(int64_t height, int64_t width, int64_t channels, int64_t k) {
  // The float32 sums' padded input and routed gradient, or the bfloat16 pairs' layout (the pixel
  // pairs, then the padded input and routed gradient in bfloat16): this covers both.
  return (height + k - 1) * (width + k) + height * width * channels + height * ((width + 1) / 2) * channels;
}

int64_t lenet_conv_relu_pool_forward_scratch(int64_t height, int64_t width, int64_t k) {
  return (height + k - 1) * padded_width(width, k);  // floats: room for either element type
}

int lenet_conv_relu_pool_forward_bfloat16_compiled(void) {
#if defined(LENET_BFLOAT16_LOOPS)
  return 1;
#else
  return 0;
#endif
}

void lenet_conv_relu_pool_forward(int64_t height, int64_t width, int64_t channels, int64_t k, const uint16_t* x,
                                  const uint32_t* kernel_pairs, const float* bias, uint16_t* y, uint16_t* pooled,
                                  float* scratch) {
#if defined(LENET_BFLOAT16_LOOPS)
  conv_relu_pool_forward(height, width, channels, k, x, kernel_pairs, bias, y, pooled, scratch);
#endif
}

void lenet_conv_relu_pool_forward_f32(int64_t height, int64_t width, int64_t channels, int64_t k, const float* x,
                                      const float* kernel, const float* bias, float* y, float* pooled,
                                      float* scratch) {
  conv_relu_pool_forward(height, width, channels, k, x, kernel, bias, y, pooled, scratch);
}

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
