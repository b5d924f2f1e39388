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

namespace {

constexpr int64_t kGroup = 36;
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

// c[R x V vectors] (+)= a[R x depth] * b[depth x V vectors], with a(i, p) at a[i * a_row + p * a_depth]
// and b(p, :) at b[p * b_depth]. Sums run over p in order, so the result never depends on threads.
template <int R, int V>
inline void micro_kernel(int64_t depth, const float* a, int64_t a_row, int64_t a_depth, const float* b,
                         int64_t b_depth, float* c, int64_t c_row, bool accumulate) {
  vec acc[R][V];
  for (int i = 0; i < R; ++i)
    for (int v = 0; v < V; ++v) acc[i][v] = accumulate ? load(c + i * c_row + v * kLanes) : vec{};
  for (int64_t p = 0; p < depth; ++p) {
    vec column[V];
    for (int v = 0; v < V; ++v) column[v] = load(b + p * b_depth + v * kLanes);
    for (int i = 0; i < R; ++i) {
      const float s = a[i * a_row + p * a_depth];
      for (int v = 0; v < V; ++v) acc[i][v] += s * column[v];
    }
  }
  for (int i = 0; i < R; ++i)
    for (int v = 0; v < V; ++v) store(c + i * c_row + v * kLanes, acc[i][v]);
}

// The micro-kernel for a block column's last ``rows`` (at most R) rows.
template <int R, int V>
inline void remainder(int64_t rows, int64_t depth, const float* a, int64_t a_row, int64_t a_depth, const float* b,
                      int64_t b_depth, float* c, int64_t c_row, bool accumulate) {
  if constexpr (R > 0) {
    if (rows == R) micro_kernel<R, V>(depth, a, a_row, a_depth, b, b_depth, c, c_row, accumulate);
    else remainder<R - 1, V>(rows, depth, a, a_row, a_depth, b, b_depth, c, c_row, accumulate);
  }
}

// c[rows x columns] (+)= a[rows x depth] * b[depth x columns] over block columns of V vectors.
template <int R, int V>
void block_column(int64_t rows, int64_t depth, const float* a, int64_t a_row, int64_t a_depth, const float* b,
                  int64_t b_depth, float* c, int64_t c_row, bool accumulate) {
  int64_t i = 0;
  for (; i + R <= rows; i += R)
    micro_kernel<R, V>(depth, a + i * a_row, a_row, a_depth, b, b_depth, c + i * c_row, c_row, accumulate);
  remainder<R - 1, V>(rows - i, depth, a + i * a_row, a_row, a_depth, b, b_depth, c + i * c_row, c_row, accumulate);
}

// c[rows x columns] (+)= a[rows x depth] * b[depth x columns]; columns a multiple of 16 (one
// 512-bit vector: a 16-column tail takes one vector per row, every other block column two).
template <int R>
void matmul(int64_t rows, int64_t depth, int64_t columns, const float* a, int64_t a_row, int64_t a_depth,
            const float* b, int64_t b_depth, float* c, int64_t c_row, bool accumulate) {
  int64_t j = 0;
  for (; j + kColumns <= columns; j += kColumns)
    block_column<R, 2>(rows, depth, a, a_row, a_depth, b + j, b_depth, c + j, c_row, accumulate);
  if (j < columns) block_column<R, 1>(rows, depth, a, a_row, a_depth, b + j, b_depth, c + j, c_row, accumulate);
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

// The transforms work on one vector of channels at a time, held in vector registers (spilled to
// L1 where N*N does not fit), with compile-time tile sizes so that every loop unrolls; the
// matrices stay runtime values (dense: skipping their zeros costs more in branches than it saves).

// v[N*N][kGroup][channels] at slot ``slot`` = Bt d Bt^T of the tile's N x N input window.
template <int M, int N>
void transform_input(const Geometry& g, int64_t channels, const float* bt, const float* x, int64_t tile,
                     int64_t slot, float* v) {
  int64_t image, top, left;
  g.locate(tile, &image, &top, &left);
  top -= g.pad;
  left -= g.pad;
  const float* base = x + image * g.height * g.width * channels;
  bool row_in[N], column_in[N];
  for (int i = 0; i < N; ++i) {
    row_in[i] = top + i >= 0 && top + i < g.height;
    column_in[i] = left + i >= 0 && left + i < g.width;
  }
  for (int64_t c = 0; c < channels; c += kLanes) {
    vec t[N][N];
    for (int q = 0; q < N; ++q) {
      vec column[N];
      for (int p = 0; p < N; ++p)
        column[p] = row_in[p] && column_in[q] ? load(base + ((top + p) * g.width + left + q) * channels + c) : vec{};
      for (int o = 0; o < N; ++o) {
        vec acc{};
        for (int p = 0; p < N; ++p) acc += bt[o * N + p] * column[p];
        t[o][q] = acc;
      }
    }
    for (int o = 0; o < N; ++o) {
      for (int r = 0; r < N; ++r) {
        vec acc{};
        for (int q = 0; q < N; ++q) acc += bt[r * N + q] * t[o][q];
        store(v + ((o * N + r) * kGroup + slot) * channels + c, acc);
      }
    }
  }
}

// y's M x M block of ``tile`` = relu?(At P At^T + bias), P the tile's products at ``slot``.
template <int M, int N>
void transform_output(const Geometry& g, int64_t filters, const float* at, const float* products, int64_t slot,
                      int64_t tile, const float* bias, bool relu, float* y) {
  int64_t image, top, left;
  g.locate(tile, &image, &top, &left);
  const int rows = static_cast<int>(std::min<int64_t>(M, g.height - top));
  const int columns = static_cast<int>(std::min<int64_t>(M, g.width - left));
  for (int64_t k = 0; k < filters; k += kLanes) {
    vec t[M][N];
    for (int b = 0; b < N; ++b) {
      vec column[N];
      for (int a = 0; a < N; ++a) column[a] = load(products + ((a * N + b) * kGroup + slot) * filters + k);
      for (int i = 0; i < M; ++i) {
        vec acc{};
        for (int a = 0; a < N; ++a) acc += at[i * N + a] * column[a];
        t[i][b] = acc;
      }
    }
    const vec offset = bias ? load(bias + k) : vec{};
    for (int i = 0; i < rows; ++i) {
      for (int j = 0; j < columns; ++j) {
        vec acc{};
        for (int b = 0; b < N; ++b) acc += at[j * N + b] * t[i][b];
        acc += offset;
        if (relu) acc = acc > 0 ? acc : vec{};
        store(y + ((image * g.height + top + i) * g.width + left + j) * filters + k, acc);
      }
    }
  }
}

// dm[N*N][kGroup][filters] at ``slot`` = At^T dY At, dY the tile's M x M block of dy (zero outside).
template <int M, int N>
void transform_output_gradient(const Geometry& g, int64_t filters, const float* at, const float* dy,
                               int64_t tile, int64_t slot, float* dm) {
  int64_t image, top, left;
  g.locate(tile, &image, &top, &left);
  const float* base = dy + image * g.height * g.width * filters;
  for (int64_t k = 0; k < filters; k += kLanes) {
    vec t[N][M];
    for (int j = 0; j < M; ++j) {
      vec column[M];
      for (int i = 0; i < M; ++i)
        column[i] = top + i < g.height && left + j < g.width
                        ? load(base + ((top + i) * g.width + left + j) * filters + k) : vec{};
      for (int a = 0; a < N; ++a) {
        vec acc{};
        for (int i = 0; i < M; ++i) acc += at[i * N + a] * column[i];
        t[a][j] = acc;
      }
    }
    for (int a = 0; a < N; ++a) {
      for (int b = 0; b < N; ++b) {
        vec acc{};
        for (int j = 0; j < M; ++j) acc += at[j * N + b] * t[a][j];
        store(dm + ((a * N + b) * kGroup + slot) * filters + k, acc);
      }
    }
  }
}

template <int M, int N>
void forward(const Geometry& g, int64_t images, int64_t channels, int64_t filters, const float* bt, const float* at,
             const float* x, const float* u, const float* bias, bool relu, float* y, float* scratch) {
  float* v = scratch;
  float* products = v + N * N * kGroup * channels;
  const int64_t tiles = images * g.per_image;
  for (int64_t first = 0; first < tiles; first += kGroup) {
    const int64_t count = std::min(kGroup, tiles - first);
    for (int64_t t = 0; t < count; ++t) transform_input<M, N>(g, channels, bt, x, first + t, t, v);
    for (int64_t point = 0; point < N * N; ++point)
      matmul<6>(count, channels, filters, v + point * kGroup * channels, channels, 1,
                u + point * channels * filters, filters, products + point * kGroup * filters, filters, false);
    for (int64_t t = 0; t < count; ++t)
      transform_output<M, N>(g, filters, at, products, t, first + t, bias, relu, y);
  }
}

template <int M, int N>
void filter_grad(const Geometry& g, int64_t images, int64_t channels, int64_t filters, const float* bt,
                 const float* at, const float* x, const float* dy, float* du, float* scratch) {
  float* v = scratch;
  float* dm = v + N * N * kGroup * channels;
  const int64_t tiles = images * g.per_image;
  for (int64_t first = 0; first < tiles; first += kGroup) {
    const int64_t count = std::min(kGroup, tiles - first);
    for (int64_t t = 0; t < count; ++t) {
      transform_input<M, N>(g, channels, bt, x, first + t, t, v);
      transform_output_gradient<M, N>(g, filters, at, dy, first + t, t, dm);
    }
    for (int64_t point = 0; point < N * N; ++point)
      matmul<6>(channels, count, filters, v + point * kGroup * channels, 1, channels,
                dm + point * kGroup * filters, filters, du + point * channels * filters, filters, true);
  }
}

}  // namespace

extern "C" {

int64_t lenet_winograd_scratch(int64_t m, int64_t n, int64_t channels, int64_t filters) {
  return n * n * kGroup * (channels + filters);
}

int lenet_winograd_supported(int64_t m, int64_t n) {
  return n == m + 4 && (m == 2 || m == 3 || m == 4);
}

void lenet_winograd_forward(int64_t images, int64_t height, int64_t width, int64_t channels, int64_t filters,
                            int64_t m, int64_t n, const float* bt, const float* at, const float* x,
                            const float* u, const float* bias, int relu, float* y, float* scratch) {
  const Geometry g(height, width, m, n);
  switch (m) {
    case 2: forward<2, 6>(g, images, channels, filters, bt, at, x, u, bias, relu, y, scratch); break;
    case 3: forward<3, 7>(g, images, channels, filters, bt, at, x, u, bias, relu, y, scratch); break;
    case 4: forward<4, 8>(g, images, channels, filters, bt, at, x, u, bias, relu, y, scratch); break;
    default: break;
  }
}

void lenet_winograd_filter_grad(int64_t images, int64_t height, int64_t width, int64_t channels,
                                int64_t filters, int64_t m, int64_t n, const float* bt, const float* at,
                                const float* x, const float* dy, float* du, float* scratch) {
  const Geometry g(height, width, m, n);
  switch (m) {
    case 2: filter_grad<2, 6>(g, images, channels, filters, bt, at, x, dy, du, scratch); break;
    case 3: filter_grad<3, 7>(g, images, channels, filters, bt, at, x, dy, du, scratch); break;
    case 4: filter_grad<4, 8>(g, images, channels, filters, bt, at, x, dy, du, scratch); break;
    default: break;
  }
}
}
