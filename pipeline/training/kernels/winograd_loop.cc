// The per-thread loops of WinogradConv2D and WinogradFilterGrad (see winograd_loop.h).
//
// Work goes in groups of kGroup tiles (across image boundaries) so that a group's transformed
// input and products stay in the core's L2 cache: transform the group's tiles, run the n*n
// matrix products (register-blocked: 6 rows x 2 vectors of float32 accumulators, 12 of AVX2's 16
// vector registers), transform back. Vectors are 256 bits, or 512 where the compiler targets
// AVX-512 (the same sums in the same order, so both give the same bits). Channel counts must be
// multiples of 16 (the op checks), so every inner loop runs over whole vectors. kGroup = 36 (six
// row blocks) measured fastest among 12-48 on a 2-core AVX2 EPYC; on an AVX-512 EPYC, 512-bit
// vectors with 6 rows beat 12 and 14 rows and 256-bit vectors (docs/benchmarks.md).
#include "winograd_loop.h"

#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

#include "products.h"

namespace {

constexpr int64_t kGroup = 36;

// out[rows / 2 rounded up][width] = the bfloat16 pairs (rows 2j and 2j + 1, lower half first) of
// in[rows][width] float32; an odd last row pairs with zero.
void pack_pairs(const float* in, int64_t rows, int64_t width, uint32_t* out) {
  for (int64_t j = 0; 2 * j < rows; ++j) {
    const float* first = in + 2 * j * width;
    for (int64_t w = 0; w < width; w += kLanes) {
      const bits high = 2 * j + 1 < rows ? __builtin_convertvector(bfloat16_bits(load(first + width + w)), bits) << 16
                                         : bits{};
      *reinterpret_cast<bits_unaligned*>(out + j * width + w) =
          __builtin_convertvector(bfloat16_bits(load(first + w)), bits) | high;
    }
  }
}

struct Geometry {
  int64_t height, width, m, n, pad, tiles_down, tiles_across, per_image;
  Geometry(int64_t height, int64_t width, int64_t m, int64_t n)
      : height(height), width(width), m(m), n(n), pad((n - m) / 2), tiles_down((height + m - 1) / m),
        tiles_across((width + m - 1) / m), per_image(tiles_down * tiles_across) {}
  // The image of ``tile`` and its first output row and column.
  void locate(int64_t tile, int64_t* image, int64_t* top, int64_t* left) const {
    *image = tile / per_image;
    *top = (tile % per_image) / tiles_across * m;
    *left = (tile % per_image) % tiles_across * m;
  }
};

// The transforms work on one vector of channels at a time, held in vector registers (spilled to L1
// where N*N vectors do not fit), with compile-time tile sizes so that every loop unrolls. Their
// matrices are compile-time constants too, so that the compiler drops the zero entries and turns
// the +-1 ones into additions: the input transform of F(4x4,5x5) takes 30 vector operations per 8
// values instead of 46 with runtime matrices. They come from the same Cook-Toom construction
// as pipeline/training/winograd.py, on the same points (listed again here: template code cannot read
// Python), and the ops refuse any Bt and At attributes that differ from them
// (lenet_winograd_transforms_match), so the two can never disagree silently.
template <int M>
struct Points;
template <>
struct Points<2> {
  static constexpr double value[] = {0, 1, -1, 2, -2};
};
template <>
struct Points<3> {
  static constexpr double value[] = {0, 1, -1, 2, -2, 0.5};
};
template <>
struct Points<4> {
  static constexpr double value[] = {0, 1, -1, 2, -2, 0.5, -0.5};
};

// Bt of F(M x M, 5 x 5), n x n: row o holds the coefficients (lowest power first) of the product of
// (x - q) over the finite points q other than point o; the last row (the point at infinity), over
// all of them.
template <int M>
struct Bt {
  static constexpr int N = M + 4;
  static constexpr float value(int o, int p) {
    double polynomial[N + 1] = {1};
    int degree = 0;
    for (int q = 0; q < N - 1; ++q) {
      if (q == o) continue;
      const double point = Points<M>::value[q];
      for (int k = degree + 1; k > 0; --k) polynomial[k] = polynomial[k - 1] - point * polynomial[k];
      polynomial[0] = -point * polynomial[0];
      ++degree;
    }
    return static_cast<float>(polynomial[p]);
  }
};

// At of F(M x M, 5 x 5), m x n: column j holds the powers 0 .. m-1 of point j; the last column (the
// point at infinity) is 1 in the last row.
template <int M>
struct At {
  static constexpr int N = M + 4;
  static constexpr float value(int i, int j) {
    if (j == N - 1) return i == M - 1 ? 1.f : 0.f;
    double power = 1;
    for (int k = 0; k < i; ++k) power *= Points<M>::value[j];
    return static_cast<float>(power);
  }
};

template <int M>
struct AtTransposed {
  static constexpr float value(int a, int i) { return At<M>::value(i, a); }
};

// Their points come in pairs +-p: Bt's rows and At's columns 2k + 1 and 2k + 2, k < kPairs, differ
// only in the sign of their odd-indexed entries, so each pair shares one sum of even-indexed and one
// of odd-indexed terms. An odd N has an unpaired point (F(3x3,5x5): +1/2), which mixes into every
// row of Bt, so its transforms stay one row at a time.
template <int N>
constexpr int kPairs = N % 2 == 0 ? (N - 2) / 2 : 0;

template <int M>
constexpr bool paired() {
  constexpr int N = M + 4;
  for (int k = 0; k < kPairs<N>; ++k)
    for (int p = 0; p < N; ++p) {
      const float sign = p % 2 ? -1.f : 1.f;
      if (Bt<M>::value(2 * k + 2, p) != sign * Bt<M>::value(2 * k + 1, p)) return false;
      if (p < M && At<M>::value(p, 2 * k + 2) != sign * At<M>::value(p, 2 * k + 1)) return false;
    }
  return true;
}
static_assert(paired<2>() && paired<3>() && paired<4>(), "the points must come in pairs +-p");

// Calls f(std::integral_constant<int, i>) for i = Begin .. End - 1: loops whose index must be a
// compile-time constant.
template <int Begin, int End, typename F>
inline void static_for(F&& f) {
  if constexpr (Begin < End) {
    f(std::integral_constant<int, Begin>{});
    static_for<Begin + 1, End>(f);
  }
}

// acc + sum of Matrix::value(Row, p) * in[p] for p = P, P + Step, ... < Inputs, in that order, without
// the zero terms and with +-1 as an addition (Started: whether acc holds a term yet, else it is 0).
template <class Matrix, int Row, int P, int Step, int Inputs, bool Started = false>
inline vec combine(const vec* in, vec acc = vec{}) {
  if constexpr (P >= Inputs) {
    return acc;
  } else {
    constexpr float c = Matrix::value(Row, P);
    if constexpr (c == 0.f) {
      return combine<Matrix, Row, P + Step, Step, Inputs, Started>(in, acc);
    } else {
      if constexpr (!Started) acc = c == 1.f ? in[P] : c * in[P];
      else if constexpr (c == 1.f) acc += in[P];
      else if constexpr (c == -1.f) acc -= in[P];
      else acc += c * in[P];
      return combine<Matrix, Row, P + Step, Step, Inputs, true>(in, acc);
    }
  }
}

// out[o] = sum_p Matrix::value(o, p) in[p] for o < N outputs from ``Inputs`` vectors, where outputs
// 2k + 1 and 2k + 2 (k < kPairs) are a +-point pair.
template <int N, int Inputs, class Matrix>
inline void apply_paired(const vec* in, vec* out) {
  out[0] = combine<Matrix, 0, 0, 1, Inputs>(in);
  static_for<0, kPairs<N>>([&](auto k) {
    constexpr int o = 2 * decltype(k)::value + 1;
    const vec even = combine<Matrix, o, 0, 2, Inputs>(in), odd = combine<Matrix, o, 1, 2, Inputs>(in);
    out[o] = even + odd;
    out[o + 1] = even - odd;
  });
  static_for<2 * kPairs<N> + 1, N>([&](auto o) { out[o] = combine<Matrix, decltype(o)::value, 0, 1, Inputs>(in); });
}

// Bt applied to N vectors.
template <int M, int N>
inline void apply_bt(const vec* in, vec* out) {
  apply_paired<N, N, Bt<M>>(in, out);
}

// At applied to the pairs' sums (even rows) or differences (odd rows) of N vectors: out[i] for i < M.
template <int M>
struct AtOfPairs {
  static constexpr int N = M + 4;
  // Column 0 is in[0], 1 + k pair k's sum or difference, then the unpaired inputs.
  static constexpr float value(int i, int q) {
    return q == 0 ? At<M>::value(i, 0) : q <= kPairs<N> ? At<M>::value(i, 2 * q - 1) : At<M>::value(i, q + kPairs<N>);
  }
};

template <int M, int N>
inline void apply_at(const vec* in, vec* out) {
  constexpr int columns = N - kPairs<N>;
  vec sums[columns], differences[columns];
  sums[0] = differences[0] = in[0];
  for (int k = 0; k < kPairs<N>; ++k) {
    sums[1 + k] = in[2 * k + 1] + in[2 * k + 2];
    differences[1 + k] = in[2 * k + 1] - in[2 * k + 2];
  }
  for (int a = 2 * kPairs<N> + 1; a < N; ++a) sums[a - kPairs<N>] = differences[a - kPairs<N>] = in[a];
  static_for<0, M>([&](auto i) {
    constexpr int row = decltype(i)::value;
    out[row] = combine<AtOfPairs<M>, row, 0, 1, columns>(row % 2 ? differences : sums);
  });
}

// At^T applied to M vectors: out[a] for a < N.
template <int M, int N>
inline void apply_at_transposed(const vec* in, vec* out) {
  apply_paired<N, M, AtTransposed<M>>(in, out);
}

// Where a transform puts a tile's n*n vectors: out(point, c, value) stores ``value`` as channels
// c .. c + kLanes - 1 of the tile's ``point``.
//
// Slots: [n*n][kGroup][width] values of type T (float32, or bfloat16 bits), the tile at ``slot``.
template <typename T>
struct Slots {
  T* base;
  int64_t slot, width;
  void operator()(int64_t point, int64_t c, vec value) const {
    store(base + (point * kGroup + slot) * width + c, value);
  }
};

#if defined(LENET_BFLOAT16_LOOPS)
// PairedSlots: [n*n][kGroup / 2][width] bfloat16 pairs of tiles (uint32: slot 2j in the lower half,
// 2j + 1 in the upper), the tile at ``slot`` rounded to bfloat16 into its half: the filter gradient's
// operands, whose products pair up along the tiles. Written in place, without a float32 copy.
struct PairedSlots {
  uint32_t* base;
  int64_t slot, width;
  void operator()(int64_t point, int64_t c, vec value) const {
    __m512i widened = _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh((__m512)value));
    if (slot % 2) widened = _mm512_slli_epi32(widened, 16);
    _mm512_mask_storeu_epi16(base + (point * (kGroup / 2) + slot / 2) * width + c, slot % 2 ? 0xAAAAAAAA : 0x55555555,
                             widened);
  }
};
#endif

// out = Bt d Bt^T of the tile's N x N input window (x float32 or bfloat16 bits).
template <int M, int N, typename In, typename Out>
void transform_input(const Geometry& g, int64_t channels, const In* x, int64_t tile, const Out& out) {
  int64_t image, top, left;
  g.locate(tile, &image, &top, &left);
  top -= g.pad;
  left -= g.pad;
  const In* base = x + image * g.height * g.width * channels;
  bool row_in[N], column_in[N];
  for (int i = 0; i < N; ++i) {
    row_in[i] = top + i >= 0 && top + i < g.height;
    column_in[i] = left + i >= 0 && left + i < g.width;
  }
  for (int64_t c = 0; c < channels; c += kLanes) {
    vec t[N][N];
    for (int q = 0; q < N; ++q) {
      vec column[N], transformed[N];
      for (int p = 0; p < N; ++p)
        column[p] = row_in[p] && column_in[q] ? load(base + ((top + p) * g.width + left + q) * channels + c) : vec{};
      apply_bt<M, N>(column, transformed);
      for (int o = 0; o < N; ++o) t[o][q] = transformed[o];
    }
    for (int o = 0; o < N; ++o) {
      vec row[N];
      apply_bt<M, N>(t[o], row);
      for (int r = 0; r < N; ++r) out(o * N + r, c, row[r]);
    }
  }
}

// y's M x M block of ``tile`` = relu?(At P At^T + bias), P the tile's products at ``slot``.
template <int M, int N, typename Out>
void transform_output(const Geometry& g, int64_t filters, const float* products, int64_t slot,
                      int64_t tile, const float* bias, bool relu, Out* y) {
  int64_t image, top, left;
  g.locate(tile, &image, &top, &left);
  const int rows = static_cast<int>(std::min<int64_t>(M, g.height - top));
  const int columns = static_cast<int>(std::min<int64_t>(M, g.width - left));
  for (int64_t k = 0; k < filters; k += kLanes) {
    vec t[M][N];
    for (int b = 0; b < N; ++b) {
      vec column[N], transformed[M];
      for (int a = 0; a < N; ++a) column[a] = load(products + ((a * N + b) * kGroup + slot) * filters + k);
      apply_at<M, N>(column, transformed);
      for (int i = 0; i < M; ++i) t[i][b] = transformed[i];
    }
    const vec offset = bias ? load(bias + k) : vec{};
    for (int i = 0; i < rows; ++i) {
      vec row[M];
      apply_at<M, N>(t[i], row);
      for (int j = 0; j < columns; ++j) {
        vec value = row[j] + offset;
        if (relu) value = value > 0 ? value : vec{};
        store(y + ((image * g.height + top + i) * g.width + left + j) * filters + k, value);
      }
    }
  }
}

// out = At^T dY At, dY the tile's M x M block of dy (zero outside); db[filters] += the block's sum
// (the bias gradient: the tiles cover every output once).
template <int M, int N, typename In, typename Out>
void transform_output_gradient(const Geometry& g, int64_t filters, const In* dy, int64_t tile, const Out& out,
                               float* db) {
  int64_t image, top, left;
  g.locate(tile, &image, &top, &left);
  const In* base = dy + image * g.height * g.width * filters;
  for (int64_t k = 0; k < filters; k += kLanes) {
    vec t[N][M], sum{};
    for (int j = 0; j < M; ++j) {
      vec column[M], transformed[N];
      for (int i = 0; i < M; ++i)
        column[i] = top + i < g.height && left + j < g.width
                        ? load(base + ((top + i) * g.width + left + j) * filters + k) : vec{};
      apply_at_transposed<M, N>(column, transformed);
      for (int a = 0; a < N; ++a) t[a][j] = transformed[a];
      for (int i = 0; i < M; ++i) sum += column[i];
    }
    store(db + k, load(db + k) + sum);
    for (int a = 0; a < N; ++a) {
      vec row[N];
      apply_at_transposed<M, N>(t[a], row);
      for (int b = 0; b < N; ++b) out(a * N + b, k, row[b]);
    }
  }
}

// Whether bt (n x n) and at (m x n), row-major, are the compiled Bt and At. The Python side solves
// Bt in float64 and rounds it to float32, so allow that rounding.
template <int M>
bool same_transforms(const float* bt, const float* at) {
  constexpr int N = M + 4;
  for (int o = 0; o < N; ++o)
    for (int p = 0; p < N; ++p)
      if (std::fabs(bt[o * N + p] - Bt<M>::value(o, p)) > 1e-6f * (1.f + std::fabs(Bt<M>::value(o, p)))) return false;
  for (int i = 0; i < M; ++i)
    for (int j = 0; j < N; ++j)
      if (at[i * N + j] != At<M>::value(i, j)) return false;
  return true;
}

// Element is float (float32 tensors and products) or uint16_t (bfloat16 tensors; the transformed
// operands rounded to bfloat16 and multiplied in pairs, summed in float32).
template <int M, int N, typename Element>
void forward(const Geometry& g, int64_t images, int64_t channels, int64_t filters, const Element* x, const void* u,
             const float* bias, bool relu, Element* y, float* scratch) {
  constexpr bool pairs = std::is_same_v<Element, uint16_t>;
  typedef std::conditional_t<pairs, uint32_t, float> Operand;
  constexpr int64_t per_operand = pairs ? 2 : 1;  // channels per Operand
  Element* v = reinterpret_cast<Element*>(scratch);
  float* products = scratch + N * N * kGroup * channels;
  const int64_t depth = channels / per_operand;
  const int64_t tiles = images * g.per_image;
  for (int64_t first = 0; first < tiles; first += kGroup) {
    const int64_t count = std::min(kGroup, tiles - first);
    for (int64_t t = 0; t < count; ++t)
      transform_input<M, N>(g, channels, x, first + t, Slots<Element>{v, t, channels});
    for (int64_t point = 0; point < N * N; ++point)
      matmul<6>(count, depth, filters, reinterpret_cast<const Operand*>(v + point * kGroup * channels), depth, 1,
                static_cast<const Operand*>(u) + point * depth * filters, filters,
                products + point * kGroup * filters, filters, false);
    for (int64_t t = 0; t < count; ++t)
      transform_output<M, N>(g, filters, products, t, first + t, bias, relu, y);
  }
}

template <int M, int N, typename Element>
void filter_grad(const Geometry& g, int64_t images, int64_t channels, int64_t filters, const Element* x,
                 const Element* dy, float* du, float* db, float* scratch) {
  const int64_t tiles = images * g.per_image;
  for (int64_t first = 0; first < tiles; first += kGroup) {
    const int64_t count = std::min(kGroup, tiles - first);
    if constexpr (std::is_same_v<Element, uint16_t>) {
#if defined(LENET_BFLOAT16_LOOPS)
      // Pairs of tiles: the products' depth is the group's tiles, so both operands pair up along it.
      uint32_t* v = reinterpret_cast<uint32_t*>(scratch);
      uint32_t* dm = v + N * N * (kGroup / 2) * channels;
      for (int64_t t = 0; t < count; ++t) {
        transform_input<M, N>(g, channels, x, first + t, PairedSlots{v, t, channels});
        transform_output_gradient<M, N>(g, filters, dy, first + t, PairedSlots{dm, t, filters}, db);
      }
      if (count % 2)  // the last tile pairs with zero
        for (int64_t point = 0; point < N * N; ++point) {
          for (int64_t c = 0; c < channels; c += kLanes) PairedSlots{v, count, channels}(point, c, vec{});
          for (int64_t k = 0; k < filters; k += kLanes) PairedSlots{dm, count, filters}(point, k, vec{});
        }
      for (int64_t point = 0; point < N * N; ++point)
        matmul<6>(channels, (count + 1) / 2, filters, v + point * (kGroup / 2) * channels, 1, channels,
                  dm + point * (kGroup / 2) * filters, filters, du + point * channels * filters, filters, true);
#endif
    } else {
      float* v = scratch;
      float* dm = v + N * N * kGroup * channels;
      for (int64_t t = 0; t < count; ++t) {
        transform_input<M, N>(g, channels, x, first + t, Slots<float>{v, t, channels});
        transform_output_gradient<M, N>(g, filters, dy, first + t, Slots<float>{dm, t, filters}, db);
      }
      for (int64_t point = 0; point < N * N; ++point)
        matmul<6>(channels, count, filters, v + point * kGroup * channels, 1, channels,
                  dm + point * kGroup * filters, filters, du + point * channels * filters, filters, true);
    }
  }
}

// out[rows_out][columns_out][width] = left [rows_out x rows_in] . in [rows_in][columns_in][width] . right^T
// [columns_out x columns_in], for each of the ``width`` trailing values (vectorized over them).
void sandwich(int64_t rows_out, int64_t rows_in, int64_t columns_out, int64_t columns_in, int64_t width,
              const float* left, const float* right, const float* in, float* half, float* out) {
  for (int64_t a = 0; a < rows_out; ++a)
    for (int64_t j = 0; j < columns_in; ++j) {
      float* h = half + (a * columns_in + j) * width;
      std::fill(h, h + width, 0.f);
      for (int64_t i = 0; i < rows_in; ++i) {
        const float weight = left[a * rows_in + i];
        const float* row = in + (i * columns_in + j) * width;
        for (int64_t w = 0; w < width; ++w) h[w] += weight * row[w];
      }
    }
  for (int64_t a = 0; a < rows_out; ++a)
    for (int64_t b = 0; b < columns_out; ++b) {
      float* o = out + (a * columns_out + b) * width;
      std::fill(o, o + width, 0.f);
      for (int64_t j = 0; j < columns_in; ++j) {
        const float weight = right[b * columns_in + j];
        const float* h = half + (a * columns_in + j) * width;
        for (int64_t w = 0; w < width; ++w) o[w] += weight * h[w];
      }
    }
}

template <typename Element>
void forward_any(int64_t images, int64_t height, int64_t width, int64_t channels, int64_t filters, int64_t m,
                 int64_t n, const Element* x, const void* u, const float* bias, int relu, Element* y,
                 float* scratch) {
  const Geometry g(height, width, m, n);
  switch (m) {
    case 2: forward<2, 6>(g, images, channels, filters, x, u, bias, relu, y, scratch); break;
    case 3: forward<3, 7>(g, images, channels, filters, x, u, bias, relu, y, scratch); break;
    case 4: forward<4, 8>(g, images, channels, filters, x, u, bias, relu, y, scratch); break;
    default: break;
  }
}

template <typename Element>
void filter_grad_any(int64_t images, int64_t height, int64_t width, int64_t channels, int64_t filters, int64_t m,
                     int64_t n, const Element* x, const Element* dy, float* du, float* db, float* scratch) {
  const Geometry g(height, width, m, n);
  switch (m) {
    case 2: filter_grad<2, 6>(g, images, channels, filters, x, dy, du, db, scratch); break;
    case 3: filter_grad<3, 7>(g, images, channels, filters, x, dy, du, db, scratch); break;
    case 4: filter_grad<4, 8>(g, images, channels, filters, x, dy, du, db, scratch); break;
    default: break;
  }
}

}  // namespace

extern "C" {

int64_t lenet_winograd_scratch(int64_t m, int64_t n, int64_t channels, int64_t filters) {
  // The forward pass's transformed input and float32 products; the bfloat16 filter gradient's tile
  // pairs take half of that.
  return n * n * kGroup * (channels + filters);
}

int lenet_winograd_transforms_match(int64_t m, int64_t n, const float* bt, const float* at) {
  switch (m) {
    case 2: return n == 6 && same_transforms<2>(bt, at);
    case 3: return n == 7 && same_transforms<3>(bt, at);
    case 4: return n == 8 && same_transforms<4>(bt, at);
    default: return 0;
  }
}

int64_t lenet_winograd_filter_scratch(int64_t r, int64_t n, int64_t channels, int64_t filters) {
  return (n * r + 2 * n * n) * channels * filters;
}

void lenet_winograd_filter_transform(int64_t r, int64_t n, int64_t channels, int64_t filters, const float* g,
                                     const float* kernel, int rotate, int pairs, void* u, float* scratch) {
  const int64_t width = channels * filters;
  float* half = scratch;
  float* rotated = half + n * r * width;  // r * r * width of it
  float* transformed = rotated + n * n * width;
  const float* source = kernel;
  if (rotate) {
    // rot180(kernel) with its channels swapped: [i][j][k][c] = kernel[r-1-i][r-1-j][c][k].
    for (int64_t i = 0; i < r; ++i)
      for (int64_t j = 0; j < r; ++j)
        for (int64_t c = 0; c < channels; ++c)
          for (int64_t k = 0; k < filters; ++k)
            rotated[((i * r + j) * filters + k) * channels + c] =
                kernel[(((r - 1 - i) * r + (r - 1 - j)) * channels + c) * filters + k];
    source = rotated;
  }
  const int64_t rows = rotate ? filters : channels, columns = rotate ? channels : filters;
  sandwich(n, r, n, r, width, g, g, source, half, pairs ? transformed : static_cast<float*>(u));
  if (pairs)
    for (int64_t point = 0; point < n * n; ++point)
      pack_pairs(transformed + point * width, rows, columns, static_cast<uint32_t*>(u) + point * (rows / 2) * columns);
}

void lenet_winograd_filter_transform_adjoint(int64_t r, int64_t n, int64_t channels, int64_t filters,
                                             const float* g, const float* du, float* dk, float* scratch) {
  std::vector<float> gt(r * n);
  for (int64_t i = 0; i < r; ++i)
    for (int64_t a = 0; a < n; ++a) gt[i * n + a] = g[a * r + i];
  sandwich(r, n, r, n, channels * filters, gt.data(), gt.data(), du, scratch, dk);
}

int lenet_winograd_bfloat16_compiled(void) {
#if defined(LENET_BFLOAT16_LOOPS)
  return 1;
#else
  return 0;
#endif
}

void lenet_winograd_forward(int64_t images, int64_t height, int64_t width, int64_t channels, int64_t filters,
                            int64_t m, int64_t n, const float* x, const float* u, const float* bias, int relu, float* y,
                            float* scratch) {
  forward_any(images, height, width, channels, filters, m, n, x, u, bias, relu, y, scratch);
}

void lenet_winograd_filter_grad(int64_t images, int64_t height, int64_t width, int64_t channels,
                                int64_t filters, int64_t m, int64_t n, const float* x, const float* dy, float* du,
                                float* db, float* scratch) {
  filter_grad_any(images, height, width, channels, filters, m, n, x, dy, du, db, scratch);
}

void lenet_winograd_forward_bfloat16(int64_t images, int64_t height, int64_t width, int64_t channels,
                                     int64_t filters, int64_t m, int64_t n, const uint16_t* x, const uint32_t* u,
                                     const float* bias, int relu, uint16_t* y, float* scratch) {
  if (lenet_winograd_bfloat16_compiled())
    forward_any(images, height, width, channels, filters, m, n, x, u, bias, relu, y, scratch);
}

void lenet_winograd_filter_grad_bfloat16(int64_t images, int64_t height, int64_t width, int64_t channels,
                                         int64_t filters, int64_t m, int64_t n, const uint16_t* x, const uint16_t* dy,
                                         float* du, float* db, float* scratch) {
  if (lenet_winograd_bfloat16_compiled())
    filter_grad_any(images, height, width, channels, filters, m, n, x, dy, du, db, scratch);
}
}
