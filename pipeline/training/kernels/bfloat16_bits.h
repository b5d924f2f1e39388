// bfloat16 <-> float32 on raw bits, as TensorFlow converts them; shared by the arithmetic loops.
#ifndef LENET_BFLOAT16_BITS_H_
#define LENET_BFLOAT16_BITS_H_

#include <cstdint>
#include <cstring>

namespace lenet {

inline float bf16_to_float(uint16_t h) {
  const uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

// Round to nearest even, NaN kept quiet: what TensorFlow's float32 -> bfloat16 cast does.
inline uint16_t float_to_bf16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, sizeof bits);
  const uint32_t rounded = (bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16;
  return static_cast<uint16_t>(f != f ? 0x7fc0u : rounded);
}

}  // namespace lenet

#endif  // LENET_BFLOAT16_BITS_H_
