// The per-element loops of FusedMomentumL2Bf16 and FusedMomentumL2 (see fused_momentum_loop.h).
#include "fused_momentum_loop.h"

#include "bfloat16_bits.h"

using lenet::bf16_to_float;
using lenet::float_to_bf16;

namespace {

// The sum of the squares of the old weights. Sixteen running sums keep this loop vectorised
// without reordering any one sum's additions; the squares are taken before the update because
// the update may be in place.
double squares_of(int64_t n, const float* w) {
  float lanes[16] = {0.f};
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    for (int j = 0; j < 16; ++j) lanes[j] += w[i + j] * w[i + j];
  }
  double squares = 0.0;
  for (; i < n; ++i) squares += static_cast<double>(w[i]) * w[i];
  for (int j = 0; j < 16; ++j) squares += lanes[j];
  return squares;
}

template <typename Grad>
inline float as_float(Grad g);
template <>
inline float as_float<uint16_t>(uint16_t g) { return bf16_to_float(g); }
template <>
inline float as_float<float>(float g) { return g; }

template <typename Grad>
double update(int64_t n, const Grad* grad, const float* w_old, float* w_new, const float* m_old, float* m_new,
              uint16_t* shadow_bf16, float lr, float momentum, float decay) {
  const double squares = squares_of(n, w_old);
#pragma GCC ivdep
  for (int64_t k = 0; k < n; ++k) {
    const float w = w_old[k];
    const float gradient = as_float(grad[k]) + decay * w;
    const float m = m_old[k] * momentum - lr * gradient;
    const float updated = w + m;
    m_new[k] = m;
    w_new[k] = updated;
    if (shadow_bf16) shadow_bf16[k] = float_to_bf16(updated);
  }
  return squares;
}

}  // namespace

extern "C" double lenet_fused_momentum_block(int64_t n, const uint16_t* grad_bf16, const float* w_old, float* w_new,
                                             const float* m_old, float* m_new, uint16_t* shadow_bf16, float lr,
                                             float momentum, float decay) {
  return update(n, grad_bf16, w_old, w_new, m_old, m_new, shadow_bf16, lr, momentum, decay);
}

extern "C" double lenet_fused_momentum_block_f32(int64_t n, const float* grad, const float* w_old, float* w_new,
                                                 const float* m_old, float* m_new, float lr, float momentum,
                                                 float decay) {
  return update(n, grad, w_old, w_new, m_old, m_new, nullptr, lr, momentum, decay);
}
