// The arithmetic of FusedMomentumL2Bf16 and FusedMomentumL2, kept free of TensorFlow headers so that it can be
// compiled for the host CPU's full vector width (-march=native) on its own.
#ifndef LENET_FUSED_MOMENTUM_LOOP_H_
#define LENET_FUSED_MOMENTUM_LOOP_H_

#include <cstdint>

extern "C" {

// Updates elements [0, n) of one block and returns the sum of the squares of the old weights.
// Per element, in float32 and in this order (the order of TensorFlow's separate ops):
//   g = float(grad_bf16) + decay * w;  m = m_old * momentum - lr * g;  w = w_old + m;
//   shadow = bfloat16(w), rounded to nearest even like tf.cast.
// Outputs may be the same buffers as the inputs (an in-place update).
double lenet_fused_momentum_block(int64_t n, const uint16_t* grad_bf16, const float* w_old,
                                  float* w_new, const float* m_old, float* m_new,
                                  uint16_t* shadow_bf16, float lr, float momentum, float decay);

// The same for float32 training: a float32 gradient and no bfloat16 copy.
double lenet_fused_momentum_block_f32(int64_t n, const float* grad, const float* w_old, float* w_new,
                                      const float* m_old, float* m_new, float lr, float momentum, float decay);
}

#endif  // LENET_FUSED_MOMENTUM_LOOP_H_
