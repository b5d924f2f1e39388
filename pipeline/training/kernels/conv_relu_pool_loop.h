// The arithmetic of ConvReluPool, ConvReluPoolFilterGrad and ReluPoolGrad, free of TensorFlow
// headers (compiled -march=native).
#ifndef LENET_CONV_RELU_POOL_LOOP_H_
#define LENET_CONV_RELU_POOL_LOOP_H_

#include <cstdint>

extern "C" {

// Floats of scratch that the forward functions below need for one image.
int64_t lenet_conv_relu_pool_forward_scratch(int64_t height, int64_t width, int64_t k);

// Whether lenet_conv_relu_pool_forward was compiled in (the compiler targets AVX512-BF16).
int lenet_conv_relu_pool_forward_bfloat16_compiled(void);

// One image's forward pass of the block below (one input channel, channels a multiple of 16):
// y [height][width][channels] = relu(conv2d(x, kernel, stride 1, SAME) + bias) and
// pooled [ceil(height/2)][ceil(width/2)][channels] = max_pool(y, 2x2, stride 2, SAME).
// x, y and pooled are bfloat16 bits; kernel_pairs [k][(k + 1) / 2][channels] holds each kernel
// row's taps 2j and 2j + 1 as a bfloat16 pair (the lower half first; an odd row's last tap with
// zero); bias holds bfloat16 values as float32. Each sum is float32 (AVX512-BF16's pair products,
// exact for bfloat16 operands), the bias added last, then ReLU and rounding to bfloat16.
void lenet_conv_relu_pool_forward(int64_t height, int64_t width, int64_t channels, int64_t k, const uint16_t* x,
                                  const uint32_t* kernel_pairs, const float* bias, uint16_t* y, uint16_t* pooled,
                                  float* scratch);

// The same in float32, kernel [k][k][channels].
void lenet_conv_relu_pool_forward_f32(int64_t height, int64_t width, int64_t channels, int64_t k, const float* x,
                                      const float* kernel, const float* bias, float* y, float* pooled,
                                      float* scratch);

// Floats of scratch that the filter-gradient functions below need for one image.
int64_t lenet_conv_relu_pool_filter_grad_scratch(int64_t height, int64_t width, int64_t channels, int64_t k);

// Adds one image's filter and bias gradients into kernel_grad [k][k][channels] and
// bias_grad [channels] (float32, accumulated), for the block
//   y = relu(conv2d(x, kernel, stride 1, SAME) + bias);  p = max_pool(y, 2x2, stride 2, SAME)
// with a single input channel. x: [height][width] bfloat16; y: [height][width][channels]
// bfloat16; pool_grad: [ceil(height/2)][ceil(width/2)][channels] bfloat16. Each pool window's
// gradient goes to its first largest element in row-major order (as TensorFlow's MaxPoolGrad),
// and only where y > 0 (as ReluGrad). Sums in float32; for the model's shape (32 channels, 5x5)
// with AVX512-BF16's pair products (exact products of bfloat16 values), elsewhere one product at a
// time.
void lenet_conv_relu_pool_filter_grad(int64_t height, int64_t width, int64_t channels, int64_t k,
                                      const uint16_t* x, const uint16_t* y, const uint16_t* pool_grad,
                                      float* kernel_grad, float* bias_grad, float* scratch);

// Writes one image's gradient at the ReLU's input, conv_grad [height][width][channels] bfloat16,
// from y and pool_grad as above: the backward pass of ReLU and the 2x2 max pool, exactly
// (routing copies values).
void lenet_relu_pool_grad(int64_t height, int64_t width, int64_t channels, const uint16_t* y,
                          const uint16_t* pool_grad, uint16_t* conv_grad);

// The same two functions for float32 tensors (passed as their bits), for float32 training.
void lenet_conv_relu_pool_filter_grad_f32(int64_t height, int64_t width, int64_t channels, int64_t k,
                                          const uint32_t* x, const uint32_t* y, const uint32_t* pool_grad,
                                          float* kernel_grad, float* bias_grad, float* scratch);
void lenet_relu_pool_grad_f32(int64_t height, int64_t width, int64_t channels, const uint32_t* y,
                              const uint32_t* pool_grad, uint32_t* conv_grad);
}

#endif  // LENET_CONV_RELU_POOL_LOOP_H_
