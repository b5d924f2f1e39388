"""Train's TensorBoard event files: scalars as training goes, and the events a killed run wrote past its checkpoint."""

import logging
from pathlib import Path

import tensorflow as tf

log = logging.getLogger(__name__)

TENSORBOARD_DIR = "tensorboard"


class ScalarWriter:
    """Writes named scalars at a step to the event files of a directory."""

    def __init__(self, directory: Path):
        self._writer = tf.summary.create_file_writer(str(directory))

    def write(self, step: int, scalars: dict) -> None:
        """Write every ``name: value`` of ``scalars`` at ``step``."""
        with self._writer.as_default(step=step):
            for name, value in scalars.items():
                tf.summary.scalar(name, value)

    def flush(self) -> None:
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()


def purge_events_after(directory: Path, step: int) -> int:
    """Drop TensorBoard events past ``step`` from the event files in ``directory``; return how many.

    A run killed mid-epoch wrote scalars past its last checkpoint; the resumed run writes those
    steps again, and TensorBoard would show both. Each file is rewritten atomically; a record
    cut short by the kill ends the file.
    """
    dropped = 0
    for path in sorted(Path(directory).glob("events.out.tfevents.*")):
        kept, count = [], 0
        try:
            for record in tf.data.TFRecordDataset(str(path)):
                count += 1
                event = tf.compat.v1.Event.FromString(record.numpy())
                if event.step <= step:
                    kept.append(record.numpy())
        except tf.errors.DataLossError:
            log.info("%s ends in a record cut short; dropped it", path)
        if len(kept) == count:
            continue
        dropped += count - len(kept)
        temporary = path.with_name(f".{path.name}.purging")
        with tf.io.TFRecordWriter(str(temporary)) as writer:
            for record in kept:
                writer.write(record)
        temporary.replace(path)
    return dropped
