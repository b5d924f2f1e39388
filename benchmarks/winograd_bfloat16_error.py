"""What rounding the Winograd-domain operands to bfloat16 would cost conv2's forward pass.

    python -m benchmarks.winograd_bfloat16_error [--images 4]

A bfloat16 dot-product kernel would multiply the transformed tiles (Bt d Bt^T) and the
transformed filter (G g G^T) rounded to bfloat16. This computes conv2's forward pass (14x14x32
inputs after ReLU, rounded to bfloat16 as the mixed-bfloat16 step holds them; 64 5x5 filters
drawn from N(0, 0.1)) in float64 with either or both of those roundings, and prints the error
against the exact convolution beside that of the direct convolution with a bfloat16 kernel (what
mixed bfloat16 computes today): relative to the exact output's RMS, and its largest value
relative to the largest output.
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
        error = got - exact
        rms = np.sqrt(np.mean(error ** 2)) / np.sqrt(np.mean(exact ** 2))
        print(f"  {label:42s} RMS {rms:.1e}   largest {np.abs(error).max() / np.abs(exact).max():.1e}")

    print(f"conv2's forward pass, {args.images} images: error against the exact convolution")
    report("direct, bfloat16 kernel (mixed bfloat16)", reference_conv(x, to_bfloat16(kernel)))
    keep = lambda values: values  # noqa: E731
    for m in (2, 3, 4):
        report(f"F({m}x{m},5x5), float32 operands", winograd_forward(x, kernel, m, keep, keep))
        report(f"F({m}x{m},5x5), tiles in bfloat16", winograd_forward(x, kernel, m, to_bfloat16, keep))
        report(f"F({m}x{m},5x5), filter in bfloat16", winograd_forward(x, kernel, m, keep, to_bfloat16))
        report(f"F({m}x{m},5x5), both in bfloat16", winograd_forward(x, kernel, m, to_bfloat16, to_bfloat16))


if __name__ == "__main__":
    main()
