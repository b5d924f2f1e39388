// The arithmetic of ConvReluPoolFilterGrad and ReluPoolGrad, free of TensorFlow headers
// (compiled -march=native).
#ifndef LENET_CONV_RELU_POOL_LOOP_H_
#define LENET_CONV_RELU_POOL_LOOP_H_

#include <cstdint>

extern "C" {

// Adds one image's filter and bias gradients into kernel_grad [k][k][channels] and
// bias_grad [channels] (float32, accumulated), for the block
//   y = relu(conv2d(x, kernel, stride 1, SAME) + bias);  p = max_pool(y, 2x2, stride 2, SAME)
// with a single input channel. x: [height][width] bfloat16; y: [height][width][channels]
// bfloat16; pool_grad: [ceil(height/2)][ceil(width/2)][channels] bfloat16. Each pool window's
// gradient goes to its first largest element in row-major order (as TensorFlow's MaxPoolGrad),
// and only where y > 0 (as ReluGrad). scratch: at least
// (height + k - 1) * (width + k - 1) + height * width * channels floats.
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
