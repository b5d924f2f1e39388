"""Prediction with a trained model: class and probability for each image.

    lenet-pipeline predict --model latest digit.png scan.jpg batch.npy
    lenet-pipeline predict --model outputs/train/<id> digit.png

``--model`` is a Train artifact directory (or its ``model.keras``), or ``latest`` for the most
recently finished training under ``--outputs`` (default: ``[paths] outputs`` of Luigi's configuration).
Images get the training preprocessing (grayscale, 28x28, inverted when the background is light).
"""

import argparse
import json
import sys
from pathlib import Path
from typing import Callable

import numpy as np

from pipeline.artifacts import ID_LENGTH, read_json
from pipeline.errors import PipelineError
from pipeline.results.preprocess import load_inputs


def find_model(spec: str, store) -> Path:
    """Return the model.keras named by ``spec``: a Train artifact directory or file, or 'latest' in ``store``."""
    if spec == "latest":
        finished = [(store.read_meta("train", identity) or {}).get("ended", "") + identity
                    for identity in store.ids("train") if store.status("train", identity).finished]
        if not finished:
            raise PipelineError(f"No trained model under {store.describe()}/train: run the pipeline first, "
                                "or pass --model with a Train artifact directory.")
        return store.fetch("train", max(finished)[-ID_LENGTH:]) / "model.keras"
    path = Path(spec)
    if path.is_dir():
        path = path / "model.keras"
    if not path.is_file():
        raise PipelineError(f"{spec} is not a Train artifact directory or a .keras file.")
    return path


def class_names_for(model_path: Path) -> list[str]:
    """Return the class names Train recorded in its meta.json (digits if it recorded none)."""
    meta = model_path.parent / "meta.json"
    names = read_json(meta).get("class_names") if meta.is_file() else None
    return names or [str(digit) for digit in range(10)]


def predict(model_path: Path, images: np.ndarray) -> np.ndarray:
    """Return class probabilities (N, 10) for uint8 (N, 28, 28) images."""
    from pipeline.tensorflow_runtime import import_tensorflow

    import_tensorflow()
    import keras

    model = keras.models.load_model(model_path)
    logits = model.predict(images[..., None].astype(np.float32), batch_size=1000, verbose=0)
    return keras.ops.convert_to_numpy(keras.ops.softmax(keras.ops.cast(logits, "float32")))


def main(argv: list[str] | None, prog: str | None, open_store: Callable) -> int:
    """Entry point of ``lenet-pipeline predict``; prints one line per image, returns the exit code.

    ``open_store(--outputs or None)`` gives the artifact store that ``latest`` is looked up in.
    """
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    parser.add_argument("images", nargs="+", type=Path, help="PNG/JPEG files or .npy batches")
    parser.add_argument("--model", default="latest", help="'latest' or a Train artifact directory")
    parser.add_argument("--outputs", default=None, help="artifact root, a directory or s3://BUCKET/PREFIX (for 'latest')")
    parser.add_argument("--json", action="store_true", help="print JSON lines instead of text")
    args = parser.parse_args(argv)
    try:
        images, names = load_inputs(args.images)
        model_path = find_model(args.model, open_store(args.outputs) if args.model == "latest" else None)
        probabilities = predict(model_path, images)
    except PipelineError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    class_names = class_names_for(model_path)
    for name, row in zip(names, probabilities):
        best = int(np.argmax(row))
        if args.json:
            print(json.dumps({"input": name, "class": best, "label": class_names[best],
                              "probability": round(float(row[best]), 6)}))
        else:
            print(f"{name}: {class_names[best]} ({best}) with probability {row[best]:.3f}")
    return 0


