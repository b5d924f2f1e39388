"""Per-epoch checkpoints of a training: every variable that decides the rest of the run, and its history."""

import re
import shutil
from pathlib import Path

import keras
import tensorflow as tf

from pipeline.artifacts import atomic_directory, read_json, remove_leftovers, write_json

CHECKPOINT_PREFIX = "ckpt-epoch-"
STATE_FILE = "state.json"


def is_checkpoint_state(name: str) -> bool:
    """Return True for a checkpoint's ``state.json``, the file that marks it complete (sent last)."""
    parts = name.split("/")
    return len(parts) == 2 and parts[0].startswith(CHECKPOINT_PREFIX) and parts[1] == STATE_FILE


def newest_checkpoint_epoch(names: list[str]) -> int:
    """Return the epoch of the newest complete checkpoint among relative file names, or -1."""
    epochs = [int(name.split("/")[0][len(CHECKPOINT_PREFIX):]) for name in names if is_checkpoint_state(name)]
    return max(epochs, default=-1)


def training_state(model: keras.Model, optimizer: keras.optimizers.Optimizer) -> dict:
    """Return every variable that decides the rest of a run, keyed by its Keras path.

    The weights, the optimizer's step, momentum slots (and loss scale), and the dropout layer's
    seed-generator state: with all of them restored, a resumed run continues bit for bit as an
    uninterrupted one. Keyed by layer and variable name, and the optimizer's by their path less
    the per-process counter Keras adds to optimizer names (``sgd_1``), so a restore matches each
    value to its own variable, not by position.
    """
    named = [(f"{layer.name}/{variable.name}", variable) for layer in model.layers for variable in layer.variables]
    named += [("optimizer/" + re.sub(r"_\d+(?=/)", "", variable.path, count=1), variable)
              for variable in optimizer.variables]
    state = {}
    for key, variable in named:
        if key in state and state[key] is not variable:
            raise ValueError(f"two training variables share the name {key!r}")
        state[key] = variable
    return state


class Checkpoints:
    """Per-epoch checkpoints in a work directory: the training state, the history and the position."""

    STATE_PREFIX = "state"

    def __init__(self, directory: Path):
        self.directory = Path(directory)

    def latest(self) -> Path | None:
        """Return the newest complete checkpoint (one with its state.json), or None."""
        found = sorted(path.parent for path in self.directory.glob(f"{CHECKPOINT_PREFIX}*/{STATE_FILE}"))
        return found[-1] if found else None

    def save(self, model, optimizer, epoch: int, history: list) -> None:
        """Write the state after ``epoch`` atomically, then drop older checkpoints."""
        final = self.directory / f"{CHECKPOINT_PREFIX}{epoch:04d}"
        remove_leftovers(final)  # a killed run's half-written copy (one training at a time holds the lock)
        with atomic_directory(final) as staging:
            tf.train.Checkpoint(variables=training_state(model, optimizer)).write(
                str(staging / self.STATE_PREFIX))
            write_json(staging / STATE_FILE, {"epoch": epoch, "history": history})
        for older in self.directory.glob(f"{CHECKPOINT_PREFIX}*"):
            if older != final:
                shutil.rmtree(older, ignore_errors=True)

    def restore(self, checkpoint: Path, model, optimizer) -> tuple[int, list]:
        """Load ``checkpoint`` into the model and optimizer; return (epochs done, history).

        Every saved value must find its variable and every variable its value, or this raises.
        """
        tf.train.Checkpoint(variables=training_state(model, optimizer)).read(
            str(checkpoint / self.STATE_PREFIX)).assert_consumed()
        state = read_json(checkpoint / STATE_FILE)
        return state["epoch"], state["history"]
