"""Turning user images into model input the way training saw it: 28x28 grayscale, dark background."""

from pathlib import Path

import numpy as np

from pipeline.errors import DataError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"}


def to_model_input(gray: np.ndarray) -> np.ndarray:
    """Return a 28x28 uint8 image from an 8-bit grayscale one: resized, inverted if its background is light.

    MNIST-style data are light strokes on a dark background; a photo or scan of dark ink on
    white paper is inverted, judged by the mean of its border pixels.
    """
    from PIL import Image

    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    if border.mean() > 127:
        gray = 255 - gray
    if gray.shape != (28, 28):
        gray = np.asarray(Image.fromarray(gray.astype(np.uint8)).resize((28, 28), Image.LANCZOS))
    return gray.astype(np.uint8)


def load_image(path: Path) -> np.ndarray:
    """Read a PNG/JPEG (any size, colour or not) and return it as 28x28 uint8 model input."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            gray = np.asarray(image.convert("L"))
    except FileNotFoundError:
        raise DataError(f"Image {path} does not exist.") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        raise DataError(f"{path} is not a readable image ({error}); give a PNG or JPEG file.") from None
    return to_model_input(gray)


def load_npy_batch(path: Path) -> np.ndarray:
    """Read an .npy batch of shape (N, 28, 28), (N, 28, 28, 1) or (28, 28) with 0-255 values."""
    try:
        batch = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise DataError(f"{path} is not a readable .npy array ({error}).") from None
    if batch.ndim == 4 and batch.shape[-1] == 1:
        batch = batch[..., 0]
    if batch.ndim == 2:
        batch = batch[None]
    if batch.ndim != 3 or batch.shape[1:] != (28, 28):
        raise DataError(f"{path} holds an array of shape {batch.shape}; expected (N, 28, 28) pixels 0-255.")
    if batch.size and (batch.min() < 0 or batch.max() > 255):
        raise DataError(f"{path} has values outside 0-255; give raw pixel values.")
    return batch.astype(np.uint8)


def load_inputs(paths: list[Path]) -> tuple[np.ndarray, list[str]]:
    """Return (images, names) for image files and .npy batches, in the order given."""
    images, names = [], []
    for path in map(Path, paths):
        if path.suffix.lower() == ".npy":
            batch = load_npy_batch(path)
            images.extend(batch)
            names.extend(f"{path}[{index}]" for index in range(len(batch)))
        else:
            images.append(load_image(path))
            names.append(str(path))
    if not images:
        raise DataError("No images given.")
    return np.stack(images), names
