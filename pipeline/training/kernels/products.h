// Vectors, bfloat16 rounding and the register-blocked matrix products of the Winograd loops, whose
// vectors and rounding the first layer's loops share; compiled into each loop file (-march=native)
// on its own.
//
// Everything below sits in an anonymous namespace: each loop file gets its own copy, so that two
// files built with different flags can never share one definition by accident.
#ifndef LENET_PRODUCTS_H_
#define LENET_PRODUCTS_H_

#include <cstdint>
#include <type_traits>

// The bfloat16 loops need AVX512-BF16 (dot products, conversions) and AVX512-BW (16-bit masked
// stores). Every CPU with the first has the second, but a compiler can be told of each separately.
#if defined(__AVX512BF16__) && defined(__AVX512BW__)
#define LENET_BFLOAT16_LOOPS 1
#include <immintrin.h>
#endif

namespace {

#if defined(__AVX512F__)
constexpr int kLanes = 16;
#else
constexpr int kLanes = 8;
#endif
constexpr int64_t kColumns = 2 * kLanes;

typedef float vec __attribute__((vector_size(kLanes * 4)));
// The same vector for loads and stores at 4-byte alignment (scratch and tensors are not aligned).
typedef float vec_unaligned __attribute__((vector_size(kLanes * 4), aligned(4)));

inline vec load(const float* p) { return *reinterpret_cast<const vec_unaligned*>(p); }
inline void store(float* p, vec v) { *reinterpret_cast<vec_unaligned*>(p) = v; }

// bfloat16 tensors are read and written as their bits (uint16_t): a value's float32 bits are its
// bfloat16 bits followed by 16 zero bits. Writing rounds to nearest even, as TensorFlow's cast does,
// in one instruction (vcvtneps2bf16) where the compiler targets AVX512-BF16; that instruction also
// flushes values below float32's normal range (1.2e-38) to zero, where the cast keeps bfloat16's
// subnormals.
typedef uint32_t bits __attribute__((vector_size(kLanes * 4)));
typedef uint32_t bits_unaligned __attribute__((vector_size(kLanes * 4), aligned(4)));
typedef uint16_t half_bits __attribute__((vector_size(kLanes * 2), aligned(2)));

inline vec load(const uint16_t* p) {
  const bits widened = __builtin_convertvector(*reinterpret_cast<const half_bits*>(p), bits) << 16;
  return (vec)widened;  // a cast between vector types keeps the bits
}
// v rounded to bfloat16, as bits.
inline half_bits bfloat16_bits(vec v) {
#if defined(LENET_BFLOAT16_LOOPS)
  return (half_bits)_mm512_cvtneps_pbh((__m512)v);
#else
  const bits b = (bits)v;
  return __builtin_convertvector((b + 0x7fffu + ((b >> 16) & 1u)) >> 16, half_bits);
#endif
}
inline void store(uint16_t* p, vec v) { *reinterpret_cast<half_bits*>(p) = bfloat16_bits(v); }

// c[R x V vectors] (+)= a[R x depth] * b[depth x V vectors], with a(i, p) at a[i * a_row + p * a_depth]
// and b(p, :) at b[p * b_depth]. Sums run over p in order, so the result never depends on threads.
// With Operand = uint32_t, a and b hold bfloat16 pairs along the depth (the lower half first) and
// ``depth`` counts pairs: each step adds both products of a pair (AVX512-BF16's dot product).
template <int R, int V, typename Operand>
inline void micro_kernel(int64_t depth, const Operand* a, int64_t a_row, int64_t a_depth, const Operand* b,
                         int64_t b_depth, float* c, int64_t c_row, bool accumulate) {
  vec acc[R][V];
  for (int i = 0; i < R; ++i)
    for (int v = 0; v < V; ++v) acc[i][v] = accumulate ? load(c + i * c_row + v * kLanes) : vec{};
  for (int64_t p = 0; p < depth; ++p) {
    if constexpr (std::is_same_v<Operand, float>) {
      vec column[V];
      for (int v = 0; v < V; ++v) column[v] = load(b + p * b_depth + v * kLanes);
      for (int i = 0; i < R; ++i) {
        const float s = a[i * a_row + p * a_depth];
        for (int v = 0; v < V; ++v) acc[i][v] += s * column[v];
      }
    } else {
#if defined(LENET_BFLOAT16_LOOPS)
      __m512bh column[V];
      for (int v = 0; v < V; ++v) column[v] = (__m512bh)_mm512_loadu_si512(b + p * b_depth + v * kLanes);
      for (int i = 0; i < R; ++i) {
        const __m512bh s = (__m512bh)_mm512_set1_epi32(static_cast<int>(a[i * a_row + p * a_depth]));
        for (int v = 0; v < V; ++v) acc[i][v] = _mm512_dpbf16_ps(acc[i][v], s, column[v]);
      }
#endif
    }
  }
  for (int i = 0; i < R; ++i)
    for (int v = 0; v < V; ++v) store(c + i * c_row + v * kLanes, acc[i][v]);
}

// The micro-kernel for a block column's last ``rows`` (at most R) rows.
template <int R, int V, typename Operand>
inline void remainder(int64_t rows, int64_t depth, const Operand* a, int64_t a_row, int64_t a_depth,
                      const Operand* b, int64_t b_depth, float* c, int64_t c_row, bool accumulate) {
  if constexpr (R > 0) {
    if (rows == R) micro_kernel<R, V>(depth, a, a_row, a_depth, b, b_depth, c, c_row, accumulate);
    else remainder<R - 1, V>(rows, depth, a, a_row, a_depth, b, b_depth, c, c_row, accumulate);
  }
}

// c[rows x columns] (+)= a[rows x depth] * b[depth x columns] over block columns of V vectors.
template <int R, int V, typename Operand>
void block_column(int64_t rows, int64_t depth, const Operand* a, int64_t a_row, int64_t a_depth,
                  const Operand* b, int64_t b_depth, float* c, int64_t c_row, bool accumulate) {
  int64_t i = 0;
  for (; i + R <= rows; i += R)
    micro_kernel<R, V>(depth, a + i * a_row, a_row, a_depth, b, b_depth, c + i * c_row, c_row, accumulate);
  remainder<R - 1, V>(rows - i, depth, a + i * a_row, a_row, a_depth, b, b_depth, c + i * c_row, c_row, accumulate);
}

// c[rows x columns] (+)= a[rows x depth] * b[depth x columns]; columns a multiple of 16 (one
// 512-bit vector: a 16-column tail takes one vector per row, every other block column two).
template <int R, typename Operand>
void matmul(int64_t rows, int64_t depth, int64_t columns, const Operand* a, int64_t a_row, int64_t a_depth,
            const Operand* b, int64_t b_depth, float* c, int64_t c_row, bool accumulate) {
  int64_t j = 0;
  for (; j + kColumns <= columns; j += kColumns)
    block_column<R, 2>(rows, depth, a, a_row, a_depth, b + j, b_depth, c + j, c_row, accumulate);
  if (j < columns) block_column<R, 1>(rows, depth, a, a_row, a_depth, b + j, b_depth, c + j, c_row, accumulate);
}

}  // namespace

#endif  // LENET_PRODUCTS_H_
