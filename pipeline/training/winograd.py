"""conv2 in the Winograd domain: F(m x m, 5 x 5) transforms and the differentiable conv -> bias -> ReLU.

A SAME stride-1 convolution with an r x r filter is computed per m x m output block from an
n x n input tile (n = m + r - 1): Y = At [(G g G^T) * (Bt d Bt^T)] At^T, n*n multiplications per
block and channel pair where the direct form needs m*m*r*r. For conv2 (14x14 maps, 5x5 filters)
docs/benchmarks.md gives the measured choice of m. The transforms come from the Cook-Toom
construction on the interpolation points below plus the point at infinity; Bt is solved for
exactly from At and G in float64 (the identity must hold for every filter and tile), so no table
of constants is copied by hand. The compiled loops derive Bt and At from the same points at compile
time (so that zero entries cost nothing) and refuse any other matrices passed to them.

All three passes of training use the compiled ops (pipeline/training/kernels/winograd_*), on
float32 tensors, or on bfloat16 ones (mixed bfloat16, CPUs with AVX512-BF16), where the
transformed operands are rounded to bfloat16 and multiplied in pairs with float32 sums
(docs/benchmarks.md states the error):

- forward: WinogradConv2D(x, G g G^T) with the bias and ReLU applied in its output transform;
- input gradient: WinogradConv2D(dy, G rot180(g)^T G^T), the same convolution of the output
  gradient with the filter rotated and its channels swapped (SAME padding, odd filter);
- filter gradient: WinogradFilterGrad sums Bt d Bt^T x At^T dy At over tiles and images in the
  Winograd domain (and dy itself: the bias gradient); G^T (.) G takes it back to the 5x5 filter.

WinogradFilterTransform and WinogradFilterTransformGrad compute G g G^T (rotated or not, in the
layout each dtype takes) and G^T dU G, one op each instead of TensorFlow's casts, reversals,
transposes and matrix products.
"""

import functools

import numpy as np

FILTER_SIZE = 5
# Interpolation points per output tile side m (plus infinity): small integers and halves keep
# the transforms' entries small, which keeps float32 rounding small (docs/benchmarks.md).
POINTS = {2: (0, 1, -1, 2, -2), 3: (0, 1, -1, 2, -2, 0.5), 4: (0, 1, -1, 2, -2, 0.5, -0.5)}
DEFAULT_TILE = 4


@functools.cache
def transforms(m: int, r: int = FILTER_SIZE) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (At [m x n], G [n x r], Bt [n x n]) in float64 for F(m x m, r x r)."""
    if m not in POINTS or len(POINTS[m]) != m + r - 2:
        raise ValueError(f"no Winograd points for F({m}x{m},{r}x{r}); tile sides: {sorted(POINTS)}")
    points = np.array(POINTS[m], dtype=np.float64)
    n = m + r - 1
    at, g = np.zeros((m, n)), np.zeros((n, r))
    for j, point in enumerate(points):
        at[:, j] = point ** np.arange(m)
        g[j] = point ** np.arange(r) / np.prod([point - other for other in np.delete(points, j)])
    at[m - 1, n - 1] = g[n - 1, r - 1] = 1.0  # the point at infinity
    # sum_j At[i, j] G[j, k] Bt[j, l] = [l == i + k] for all i, k, l: linear in Bt.
    system = np.einsum("ij,jk,lp->ikljp", at, g, np.eye(n)).reshape(m * r * n, n * n)
    target = np.array([[[float(l == i + k) for l in range(n)] for k in range(r)] for i in range(m)]).ravel()
    solution, *_ = np.linalg.lstsq(system, target, rcond=None)
    bt = solution.reshape(n, n)
    if not np.allclose(system @ solution, target, atol=1e-9):
        raise ArithmeticError(f"F({m}x{m},{r}x{r}) has no exact input transform for points {POINTS[m]}")
    return at, g, bt


def reference_conv(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Return the SAME stride-1 convolution of NHWC ``x`` with HWIO ``kernel`` in float64 (direct sums)."""
    r = kernel.shape[0]
    pad = r // 2
    padded = np.pad(x.astype(np.float64), ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    height, width = x.shape[1:3]
    out = np.zeros((*x.shape[:3], kernel.shape[3]))
    for i in range(r):
        for j in range(r):
            out += np.einsum("nhwc,ck->nhwk", padded[:, i:i + height, j:j + width], kernel[i, j].astype(np.float64))
    return out


class WinogradConv:
    """conv2d(x, kernel) + bias, then ReLU, as WinogradConv2D computes it, with its gradient in the same domain."""

    def __init__(self, ops, m: int = DEFAULT_TILE):
        at, g, bt = transforms(m)
        self.ops, self.m = ops, m
        self.attrs = {"m": m, "bt": bt.astype(np.float32).ravel().tolist(), "at": at.astype(np.float32).ravel().tolist()}
        self.g_values, self.filter_size = g.astype(np.float32).ravel().tolist(), g.shape[1]

    def filter_transform(self, kernel, dtype=None, rotate: bool = False):
        """Return G g G^T per channel pair from a float32 HWIO kernel, as WinogradConv2D takes it.

        For float32 tensors ``[n*n, in, out]``; for bfloat16 ones rounded, each pair of input
        channels innermost (``[n*n, in / 2, out, 2]``, the pairs AVX512-BF16's dot product
        multiplies). With ``rotate``, of the kernel rotated by 180 degrees with its channels
        swapped: the filter of the input gradient.
        """
        import tensorflow as tf

        return self.ops.winograd_filter_transform(kernel, T=dtype or tf.float32, g=self.g_values, rotate=rotate)

    def forward(self, x, kernel, bias, relu: bool = True):
        """Return relu?(conv2d(x, kernel, SAME) + bias) in x's dtype, not differentiable (see ``conv``).

        The filter is transformed from the float32 ``kernel``; ``bias`` is added in float32.
        """
        import tensorflow as tf

        u = self.filter_transform(kernel, x.dtype)
        return self.ops.winograd_conv2d(x, u, tf.cast(bias, tf.float32), relu=relu, **self.attrs)

    def conv(self, x, kernel, bias, relu: bool = True):
        """Return relu?(conv2d(x, kernel, SAME) + bias) for float32 NHWC ``x``, differentiable in all three."""
        import tensorflow as tf

        @tf.custom_gradient
        def block(x, kernel, bias):
            y = self.forward(x, kernel, bias, relu)

            def gradient(dy):
                if relu:
                    dy = tf.where(y > 0, dy, tf.zeros_like(dy))
                input_gradient, kernel_gradient, bias_gradient = self.backward(x, kernel, dy)
                return input_gradient, kernel_gradient, tf.cast(bias_gradient, bias.dtype)

            return y, gradient

        return block(x, kernel, bias)

    def conv_relu_pool(self, x, kernel, bias):
        """Return max_pool(relu(conv2d(x, kernel) + bias)) (2x2, stride 2, SAME), differentiable in all three.

        The ReLU and pool gradient is one exact pass (ReluPoolGrad).
        """
        import tensorflow as tf

        @tf.custom_gradient
        def block(x, kernel, bias):
            activations = self.forward(x, kernel, bias, relu=True)

            def gradient(pool_gradient):
                conv_gradient = self.ops.relu_pool_grad(activations, tf.cast(pool_gradient, x.dtype))
                input_gradient, kernel_gradient, bias_gradient = self.backward(x, kernel, conv_gradient)
                return input_gradient, kernel_gradient, tf.cast(bias_gradient, bias.dtype)

            return tf.nn.max_pool2d(activations, 2, 2, "SAME"), gradient

        return block(x, kernel, bias)

    def backward(self, x, kernel, conv_gradient):
        """Return the gradients of x (in its dtype), of the float32 kernel and of the bias (float32 sums).

        ``conv_gradient`` is the gradient at the convolution's output (after the bias).
        """
        import tensorflow as tf

        no_bias = tf.zeros([0], tf.float32)
        input_gradient = self.ops.winograd_conv2d(
            conv_gradient, self.filter_transform(kernel, conv_gradient.dtype, rotate=True), no_bias, relu=False,
            **self.attrs)
        du, bias_gradient = self.ops.winograd_filter_grad(x, conv_gradient, **self.attrs)
        kernel_gradient = self.ops.winograd_filter_transform_grad(du, g=self.g_values, r=self.filter_size)  # G^T dU G
        return input_gradient, tf.reshape(kernel_gradient, kernel.shape), bias_gradient
