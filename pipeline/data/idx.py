"""Reading and writing gzip-compressed IDX files (the MNIST format), with strict validation."""

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np

from pipeline.errors import DataError

IMAGES_MAGIC = 2051
LABELS_MAGIC = 2049
IMAGE_ROWS = IMAGE_COLS = 28
NUM_CLASSES = 10


def read_gzip(path: Path, origin: str | None = None) -> bytes:
    """Return the decompressed bytes of ``path``; a truncated or non-gzip file raises DataError.

    ``origin`` is where the file came from (a URL or the user's path), named in messages.
    """
    origin = origin or str(path)
    try:
        return gzip.decompress(Path(path).read_bytes())
    except FileNotFoundError:
        raise DataError(f"Data file {origin} does not exist.") from None
    except (OSError, EOFError, zlib.error) as error:
        raise DataError(
            f"{origin} is not a complete gzip file ({error}): it is truncated or corrupt; "
            "replace it with a good copy and run again."
        ) from None


def _check_magic(content: bytes, expected: int, kind: str, name: str) -> None:
    """Raise DataError unless ``content`` starts with the IDX magic number ``expected``."""
    magic = int.from_bytes(content[:4], "big") if len(content) >= 4 else None
    if magic != expected:
        raise DataError(
            f"{name}: IDX magic number is {magic}, expected {expected} for {kind} file; "
            "is it the right file, and in IDX format?"
        )


def parse_images(content: bytes, name: str = "images") -> np.ndarray:
    """Return the (count, 28, 28) uint8 images held in decompressed IDX ``content``."""
    _check_magic(content, IMAGES_MAGIC, "an image", name)
    if len(content) < 16:
        raise DataError(f"{name}: {len(content)} bytes is too short for an IDX image header.")
    _, count, rows, cols = struct.unpack(">IIII", content[:16])
    if (rows, cols) != (IMAGE_ROWS, IMAGE_COLS):
        raise DataError(f"{name}: images are {rows}x{cols}, this model needs 28x28.")
    expected = 16 + count * rows * cols
    if len(content) != expected:
        raise DataError(
            f"{name}: header says {count} images ({expected} bytes) but the file holds "
            f"{len(content)} bytes; the file is truncated or corrupt."
        )
    return np.frombuffer(content, dtype=np.uint8, offset=16).reshape(count, rows, cols)


def parse_labels(content: bytes, name: str = "labels") -> np.ndarray:
    """Return the (count,) uint8 labels held in decompressed IDX ``content``, each in 0..9."""
    _check_magic(content, LABELS_MAGIC, "a label", name)
    if len(content) < 8:
        raise DataError(f"{name}: {len(content)} bytes is too short for an IDX label header.")
    _, count = struct.unpack(">II", content[:8])
    if len(content) != 8 + count:
        raise DataError(
            f"{name}: header says {count} labels but the file holds {len(content) - 8}; "
            "the file is truncated or corrupt."
        )
    labels = np.frombuffer(content, dtype=np.uint8, offset=8)
    if count and labels.max() >= NUM_CLASSES:
        raise DataError(f"{name}: label {int(labels.max())} is outside 0..{NUM_CLASSES - 1}.")
    return labels


def check_header(content: bytes, kind: str, name: str) -> None:
    """Validate decompressed IDX ``content`` of ``kind`` 'images' or 'labels' (raises DataError)."""
    if kind == "images":
        parse_images(content, name)
    else:
        parse_labels(content, name)


def load_pair(images_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read and validate an images file and its labels file, checking that their counts agree."""
    images = parse_images(read_gzip(images_path), Path(images_path).name)
    labels = parse_labels(read_gzip(labels_path), Path(labels_path).name)
    if len(images) != len(labels):
        raise DataError(
            f"{Path(images_path).name} holds {len(images)} images but "
            f"{Path(labels_path).name} holds {len(labels)} labels; they must match."
        )
    return images, labels


def encode_images(images: np.ndarray) -> bytes:
    """Return uncompressed IDX bytes for (count, 28, 28) uint8 ``images``."""
    count, rows, cols = images.shape
    return struct.pack(">IIII", IMAGES_MAGIC, count, rows, cols) + images.astype(np.uint8).tobytes()


def encode_labels(labels: np.ndarray) -> bytes:
    """Return uncompressed IDX bytes for (count,) uint8 ``labels``."""
    return struct.pack(">II", LABELS_MAGIC, len(labels)) + labels.astype(np.uint8).tobytes()


def write_gzip(path: Path, content: bytes) -> None:
    """Write ``content`` gzip-compressed to ``path`` (mtime 0, so equal data give equal bytes)."""
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as out:
        out.write(content)
