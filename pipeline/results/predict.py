"""Prediction with a trained model: class probabilities for each image, and which model to use.

What ``lenet-pipeline predict`` does (its command line is tasks/results.py): ``find_model`` takes a
Train artifact directory (or its ``model.keras``), or ``latest``, the most recently finished
training in an artifact store.
"""

from pathlib import Path

import numpy as np

from pipeline.artifacts import ID_LENGTH, read_json
from pipeline.errors import PipelineError


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
