"""Per-epoch checkpoints of a training: every variable that decides the rest of the run, and its history."""

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
    """Return every variable that decides the rest of a run, keyed by what it belongs to.

    The weights (``<layer>/<variable>``), the dropout layer's seed-generator state, and the
    optimizer's state taken from Keras' own objects: its step, the momentum slot of each
    trainable variable (keyed by that variable), and a LossScaleOptimizer's step counter and scale.
    With all of them restored, a resumed run continues bit for bit as an uninterrupted one.
    An optimizer variable that changes during training and is not mapped here raises, so a
    Keras that keeps more state fails loudly instead of resuming differently.
    """
    state = {f"{layer.name}/{variable.name}": variable for layer in model.layers for variable in layer.variables}
    key_of = {id(variable): key for key, variable in state.items()}
    inner = getattr(optimizer, "inner_optimizer", optimizer)
    state["optimizer/iterations"] = optimizer.iterations
    if inner is not optimizer:
        # A LossScaleOptimizer's `iterations` is its inner optimizer's; the base class's property
        # gives the wrapper's own counter.
        state.update({"optimizer/iterations": keras.optimizers.Optimizer.iterations.fget(optimizer),
                      "optimizer/inner/iterations": inner.iterations,
                      "optimizer/loss_scale/step_counter": optimizer.step_counter,
                      "optimizer/loss_scale/dynamic_scale": optimizer.dynamic_scale})
    for variable, momentum in zip(model.trainable_variables, inner.momentums, strict=True):
        state[f"optimizer/momentum/{key_of[id(variable)]}"] = momentum
    mapped = {id(variable) for variable in state.values()}
    # The learning rate is a schedule's output or a constant: nothing a step changes.
    unmapped = [variable.path for variable in optimizer.variables
                if id(variable) not in mapped and not variable.path.endswith("/learning_rate")]
    if unmapped:
        raise ValueError(f"optimizer state that checkpoints would not keep: {unmapped}")
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

    def clear(self) -> None:
        """Remove every checkpoint (the training starts over)."""
        for path in self.directory.glob(f"{CHECKPOINT_PREFIX}*"):
            shutil.rmtree(path, ignore_errors=True)

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

    def unreadable(self, checkpoint: Path) -> str | None:
        """Return why ``checkpoint`` cannot be read back whole (a file missing or damaged), or None.

        Reads every saved tensor and ``state.json``, so that a restore that begins also ends.
        """
        try:
            reader = tf.train.load_checkpoint(str(checkpoint / self.STATE_PREFIX))
            for name in reader.get_variable_to_shape_map():
                reader.get_tensor(name)
            state = read_json(checkpoint / STATE_FILE)
            int(state["epoch"]), list(state["history"])
        except (tf.errors.OpError, OSError, ValueError, KeyError, TypeError) as error:
            return f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}".rstrip(": ")
        return None

    def missing_state(self, checkpoint: Path, model, optimizer) -> list[str]:
        """Return the keys of the training state that ``checkpoint`` does not hold (empty when it fits)."""
        saved = {name.split("/.ATTRIBUTES/")[0] for name, _ in tf.train.list_variables(str(checkpoint / self.STATE_PREFIX))}
        # The checkpoint's object graph escapes "." as ".." and "/" as ".S" in dictionary keys.
        return sorted(key for key in training_state(model, optimizer)
                      if "variables/" + key.replace(".", "..").replace("/", ".S") not in saved)

    def restore(self, checkpoint: Path, model, optimizer) -> tuple[int, list]:
        """Load ``checkpoint`` into the model and optimizer; return (epochs done, history).

        Every saved value must find its variable and every variable its value, or this raises.
        """
        tf.train.Checkpoint(variables=training_state(model, optimizer)).read(
            str(checkpoint / self.STATE_PREFIX)).assert_consumed()
        state = read_json(checkpoint / STATE_FILE)
        return state["epoch"], state["history"]
