"""The error of conv2's passes in bfloat16: the Winograd kernels against the direct convolution.

    python -m benchmarks.winograd_bfloat16_error [--images 4]

The bfloat16 Winograd kernels (``kernels = winograd`` in mixed bfloat16) multiply the transformed
tiles (Bt d Bt^T) and the transformed filter (G g G^T) rounded to bfloat16. First, in float64,
conv2's forward pass (14x14x32 inputs after ReLU, rounded to bfloat16 as the mixed-bfloat16 step
holds them; 64 5x5 filters drawn from N(0, 0.1)) with either or both of those roundings, for each
tile size, beside the direct convolution with a bfloat16 kernel. Then, on a CPU with AVX512-BF16,
the compiled ops' three passes (forward, input gradient, filter gradient) and oneDNN's direct
bfloat16 ones on the same bfloat16 tensors. Each error is against the exact result in float64:
relative to its RMS, and its largest value relative to the largest exact value.
"""

import argparse

import numpy as np

from pipeline.training.winograd import FILTER_SIZE, reference_conv, transforms

HEIGHT, CHANNELS, FILTERS = 14, 32, 64


def to_bfloat16(values: np.ndarray) -> np.ndarray:
    """Return float32 ``values`` rounded to the nearest bfloat16 (ties to even), as float32."""
    bits = np.asarray(values, np.float32).view(np.uint32).astype(np.uint64)
    rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16) << 16
    return rounded.astype(np.uint32).view(np.float32)


def winograd_forward(x: np.ndarray, kernel: np.ndarray, m: int, round_tiles, round_filter) -> np.ndarray:
    """Return the SAME convolution via F(m x m, 5 x 5) in float64, the operands passed through the rounders."""
    at, g, bt = transforms(m)
    n, pad = m + FILTER_SIZE - 1, FILTER_SIZE // 2
    images, height, width, channels = x.shape
    tiles = (height + m - 1) // m
    padded = np.zeros((images, tiles * m + n - m, tiles * m + n - m, channels))
    padded[:, pad:pad + height, pad:pad + width] = x
    u = round_filter(np.einsum("ia,abck,jb->ijck", g, kernel.astype(np.float64), g).astype(np.float32))
    out = np.zeros((images, tiles * m, tiles * m, kernel.shape[3]))
    for row in range(tiles):
        for column in range(tiles):
            tile = padded[:, row * m:row * m + n, column * m:column * m + n]
            v = round_tiles(np.einsum("ia,nabc,jb->nijc", bt, tile, bt).astype(np.float32))
            products = np.einsum("nijc,ijck->nijk", v.astype(np.float64), u.astype(np.float64))
            out[:, row * m:(row + 1) * m, column * m:(column + 1) * m] = np.einsum("ia,nabk,jb->nijk", at, products, at)
    return out[:, :height, :width]


def main() -> None:
    """Print the errors of each rounding for F(2x2), F(3x3) and F(4x4) and of the direct form."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=4)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    x = to_bfloat16(np.maximum(rng.standard_normal((args.images, HEIGHT, HEIGHT, CHANNELS)), 0))
    kernel = (rng.standard_normal((FILTER_SIZE, FILTER_SIZE, CHANNELS, FILTERS)) * 0.1).astype(np.float32)
    exact = reference_conv(x, kernel)

    def report(label: str, got: np.ndarray) -> None:
        report_against(label, got, exact)

    print(f"conv2's forward pass in float64, {args.images} images: error against the exact convolution")
    report("direct, bfloat16 kernel (mixed bfloat16)", reference_conv(x, to_bfloat16(kernel)))
    keep = lambda values: values  # noqa: E731
    for m in (2, 3, 4):
        report(f"F({m}x{m},5x5), float32 operands", winograd_forward(x, kernel, m, keep, keep))
        report(f"F({m}x{m},5x5), tiles in bfloat16", winograd_forward(x, kernel, m, to_bfloat16, keep))
        report(f"F({m}x{m},5x5), filter in bfloat16", winograd_forward(x, kernel, m, keep, to_bfloat16))
        report(f"F({m}x{m},5x5), both in bfloat16", winograd_forward(x, kernel, m, to_bfloat16, to_bfloat16))
    compiled_passes(x, kernel, to_bfloat16(rng.standard_normal(x.shape[:3] + (FILTERS,))))


def report_against(label: str, got, exact: np.ndarray) -> None:
    """Print the error of ``got`` against ``exact``: relative to its RMS, and the largest relative to the largest."""
    error = np.asarray(got, np.float64) - exact
    rms = np.sqrt(np.mean(error ** 2)) / np.sqrt(np.mean(exact ** 2))
    print(f"  {label:42s} RMS {rms:.1e}   largest {np.abs(error).max() / np.abs(exact).max():.1e}")


def compiled_passes(x: np.ndarray, kernel: np.ndarray, dy: np.ndarray) -> None:
    """Print the errors of the compiled bfloat16 Winograd ops' three passes and of oneDNN's direct ones."""
    from pipeline.training.precision import cpu_flags

    if "avx512_bf16" not in cpu_flags():
        print("the compiled bfloat16 Winograd ops need AVX512-BF16, which this CPU lacks")
        return
    import tensorflow as tf

    from pipeline.training import native
    from pipeline.training.winograd import WinogradConv

    conv = WinogradConv(native.ops())
    xb, dyb, kernel_b = (tf.constant(t, tf.bfloat16) for t in (x, dy, kernel))
    strides, shape = [1, 1, 1, 1], list(x.shape)
    rotated = np.transpose(kernel[::-1, ::-1], (0, 1, 3, 2))
    pad = FILTER_SIZE // 2
    padded = np.pad(x.astype(np.float64), ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    exact = {"forward": reference_conv(x, kernel), "input gradient": reference_conv(dy, rotated),
             "filter gradient": np.stack([np.stack([
                 np.einsum("nhwc,nhwk->ck", padded[:, i:i + HEIGHT, j:j + HEIGHT], dy.astype(np.float64))
                 for j in range(FILTER_SIZE)]) for i in range(FILTER_SIZE)])}
    input_gradient, kernel_gradient, _ = conv.backward(xb, tf.constant(kernel), dyb)
    ours = {"forward": conv.forward(xb, tf.constant(kernel), tf.zeros([FILTERS]), relu=False),
            "input gradient": input_gradient, "filter gradient": kernel_gradient}
    direct = {"forward": tf.nn.conv2d(xb, kernel_b, 1, "SAME"),
              "input gradient": tf.raw_ops.Conv2DBackpropInput(input_sizes=shape, filter=kernel_b, out_backprop=dyb,
                                                               strides=strides, padding="SAME"),
              "filter gradient": tf.raw_ops.Conv2DBackpropFilter(input=xb, filter_sizes=list(kernel.shape),
                                                                 out_backprop=dyb, strides=strides, padding="SAME")}
    print("conv2's three passes on bfloat16 tensors (output gradients from N(0, 1)): error against float64")
    for name in exact:
        report_against(f"{name}, compiled F(4x4,5x5) Winograd", tf.cast(ours[name], tf.float32), exact[name])
        report_against(f"{name}, oneDNN direct", tf.cast(direct[name], tf.float32), exact[name])


if __name__ == "__main__":
    main()
