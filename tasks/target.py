"""The artifact as a Luigi Target: what ``output()`` returns and ``complete()`` asks."""

from pathlib import Path

import luigi


class ArtifactTarget(luigi.Target):
    """One artifact ``(step, id)`` in a store (a local directory or an S3 prefix).

    ``exists()`` is true only for a finished artifact: its ``meta.json`` names its id and every
    file it records is there with the recorded size. Read its files through ``fetch()``.
    """

    def __init__(self, store, step: str, identity: str):
        self.store, self.step, self.identity = store, step, identity

    @property
    def path(self) -> str:
        """Where the artifact is: a directory path, or an ``s3://`` URI."""
        return self.store.uri(self.step, self.identity)

    def __str__(self):
        return self.path

    def status(self):
        """Return the store's ArtifactStatus of this artifact (finished, absent, or unfinished and why)."""
        return self.store.status(self.step, self.identity)

    def exists(self) -> bool:
        return self.status().finished

    def fetch(self) -> Path:
        """Return a local directory with the artifact's files (for S3, a verified cached copy)."""
        return self.store.fetch(self.step, self.identity)

    def read_meta(self) -> dict | None:
        return self.store.read_meta(self.step, self.identity)
