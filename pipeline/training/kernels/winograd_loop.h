// The arithmetic of WinogradConv2D and WinogradFilterGrad, free of TensorFlow headers (compiled
// -march=native).
//
// A SAME, stride-1 convolution with an odd r x r filter is computed in the Winograd domain
// F(m x m, r x r): the input is cut into overlapping n x n tiles (n = m + r - 1) with stride m,
// each tile is transformed (V = Bt d Bt^T), multiplied point by point with the transformed filter
// (n*n matrix products over the channels) and transformed back (Y = At M At^T), giving an m x m
// block of the output. Tensors are NHWC float32 or bfloat16 (passed as their bits); the transforms
// Bt and At are compiled in and run in float32. In bfloat16 the transformed operands are rounded to
// bfloat16 and multiplied in pairs with AVX512-BF16's dot product, the sums in float32.
#ifndef LENET_WINOGRAD_LOOP_H_
#define LENET_WINOGRAD_LOOP_H_

#include <cstdint>

extern "C" {

// Floats of scratch that the forward and filter-gradient functions below need, float32 or bfloat16.
int64_t lenet_winograd_scratch(int64_t m, int64_t n, int64_t channels, int64_t filters);

// Whether the bfloat16 functions were compiled in (the compiler targets AVX512-BF16); without it
// they do nothing.
int lenet_winograd_bfloat16_compiled(void);

// Whether bt (n x n) and at (m x n), row-major, are the Bt and At compiled into the functions below
// for F(m x m, 5 x 5): the Cook-Toom transforms on pipeline/training/winograd.py's points.
int lenet_winograd_transforms_match(int64_t m, int64_t n, const float* bt, const float* at);

// Floats of scratch that the filter transforms below need.
int64_t lenet_winograd_filter_scratch(int64_t r, int64_t n, int64_t channels, int64_t filters);

// u = G g G^T (G n x r, row-major) for every channel pair of the HWIO kernel [r][r][channels][filters],
// as [n*n][channels][filters] float32; with ``rotate``, of the kernel rotated by 180 degrees with its
// channels swapped ([n*n][filters][channels]: the input gradient's filter); with ``pairs``, as
// bfloat16 pairs of input channels (uint32 [n*n][inputs / 2][outputs], what the bfloat16 loops take).
void lenet_winograd_filter_transform(int64_t r, int64_t n, int64_t channels, int64_t filters, const float* g,
                                     const float* kernel, int rotate, int pairs, void* u, float* scratch);

// dk [r][r][channels][filters] = G^T du G for du [n*n][channels][filters]: the kernel's gradient from
// the transformed filter's.
void lenet_winograd_filter_transform_adjoint(int64_t r, int64_t n, int64_t channels, int64_t filters,
                                             const float* g, const float* du, float* dk, float* scratch);

// y[images][height][width][filters] = relu?(conv(x, filter) + bias) for ``images`` images, where
// u [n*n][channels][filters] is the transformed filter (G g G^T per channel pair).
void lenet_winograd_forward(int64_t images, int64_t height, int64_t width, int64_t channels,
                            int64_t filters, int64_t m, int64_t n, const float* x, const float* u, const float* bias,
                            int relu, float* y, float* scratch);

// du [n*n][channels][filters] += the gradient of the transformed filter for ``images`` images, from
// the input x [images][height][width][channels] and the output gradient dy [...][filters], and
// db [filters] += dy's sum (the bias gradient). Tiles are added in image order, then tile order, so
// a fixed set of images gives the same sums.
void lenet_winograd_filter_grad(int64_t images, int64_t height, int64_t width, int64_t channels,
                                int64_t filters, int64_t m, int64_t n, const float* x, const float* dy, float* du,
                                float* db, float* scratch);

// lenet_winograd_forward on bfloat16 x and y, where u [n*n][channels / 2][filters] holds the
// transformed filter's bfloat16 values in pairs of channels (2c in the lower half, 2c + 1 above).
void lenet_winograd_forward_bfloat16(int64_t images, int64_t height, int64_t width, int64_t channels,
                                     int64_t filters, int64_t m, int64_t n, const uint16_t* x, const uint32_t* u,
                                     const float* bias, int relu, uint16_t* y, float* scratch);

// lenet_winograd_filter_grad on bfloat16 x and dy; du and db stay float32.
void lenet_winograd_filter_grad_bfloat16(int64_t images, int64_t height, int64_t width, int64_t channels,
                                         int64_t filters, int64_t m, int64_t n, const uint16_t* x, const uint16_t* dy,
                                         float* du, float* db, float* scratch);
}

#endif  // LENET_WINOGRAD_LOOP_H_
