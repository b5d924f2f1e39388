"""One writer of the S3 stress test: commit the artifact ``train/<id>`` with bytes of its own, as a run would.

    python tests/storage/commit_once.py s3://BUCKET/PREFIX ID SEED CACHE_DIR     (AWS_* from the environment)
"""

import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from pipeline.artifacts import RunClock, write_meta  # noqa: E402
from pipeline.storage.s3 import S3Store, make_client  # noqa: E402


def main(root: str, identity: str, seed: int, cache: str) -> None:
    store = S3Store(root, make_client(), Path(cache))
    generator = random.Random(seed)
    with store.staging("train", identity) as staging:
        (staging / "model.keras").write_bytes(generator.randbytes(3 << 20))
        (staging / "history.json").write_text(f'[{{"seed": {seed}}}]\n')
        (staging / "tensorboard").mkdir()
        (staging / "tensorboard" / "events").write_bytes(b"events shared by every writer")
        write_meta(staging, "train", identity, {"epochs": 1}, {}, RunClock())
    print("committed", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4])
