"""Extraction of the four IDX files to .npy against plain gzip decompression of them.

    python -m benchmarks.extract [--repeats 7] [--data DIR]

Times ``pipeline.data.extract.extract_to_npy`` (decompress, validate, write four .npy files) against
``gzip.decompress`` of the same four files, interleaved; prints medians and the ratio.
"""

import argparse
import gzip
import tempfile
import time
from pathlib import Path

from benchmarks.common import FASHION_DIR, interleaved, machine_summary, medians
from pipeline.data.datasets import FILE_NAMES
from pipeline.data.extract import extract_to_npy


def main() -> None:
    """Run both interleaved and print medians and the ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--data", type=Path, default=FASHION_DIR)
    args = parser.parse_args()

    def decompress_only() -> float:
        started = time.perf_counter()
        for name in FILE_NAMES.values():
            gzip.decompress((args.data / name).read_bytes())
        return time.perf_counter() - started

    def extract() -> float:
        with tempfile.TemporaryDirectory() as destination:
            started = time.perf_counter()
            extract_to_npy(args.data, Path(destination))
            return time.perf_counter() - started

    print(f"extract on {machine_summary()}: {args.data}, {args.repeats} interleaved rounds (seconds)")
    times = medians(interleaved({"gzip_decompress": decompress_only, "extract_to_npy": extract},
                                args.repeats))
    print(f"gzip_decompress median {times['gzip_decompress']:.3f} s")
    print(f"extract_to_npy  median {times['extract_to_npy']:.3f} s")
    print(f"ratio extract/gzip: {times['extract_to_npy'] / times['gzip_decompress']:.2f}")


if __name__ == "__main__":
    main()
