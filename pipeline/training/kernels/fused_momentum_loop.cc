// The per-element loop of FusedMomentumL2Bf16 (see fused_momentum_loop.h).
#include "fused_momentum_loop.h"

#include "bfloat16_bits.h"

using lenet::bf16_to_float;
using lenet::float_to_bf16;

extern "C" double lenet_fused_momentum_block(int64_t n, const uint16_t* grad_bf16,
                                             const float* w_old, float* w_new, const float* m_old,
                                             float* m_new, uint16_t* shadow_bf16, float lr,
                                             float momentum, float decay) {
  // Sixteen running sums keep this loop vectorised without reordering any one sum's additions;
  // the squares are taken before the update because the update may be in place.
  float lanes[16] = {0.f};
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    for (int j = 0; j < 16; ++j) lanes[j] += w_old[i + j] * w_old[i + j];
  }
  double squares = 0.0;
  for (; i < n; ++i) squares += static_cast<double>(w_old[i]) * w_old[i];
  for (int j = 0; j < 16; ++j) squares += lanes[j];

#pragma GCC ivdep
  for (int64_t k = 0; k < n; ++k) {
    const float w = w_old[k];
    const float gradient = bf16_to_float(grad_bf16[k]) + decay * w;
    const float m = m_old[k] * momentum - lr * gradient;
    const float updated = w + m;
    m_new[k] = m;
    w_new[k] = updated;
    shadow_bf16[k] = float_to_bf16(updated);
  }
  return squares;
}
