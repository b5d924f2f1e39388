"""Settings shared by several tasks, as Luigi config classes: ``[data]`` and ``[paths]``; the artifact store."""

import functools
import os
from pathlib import Path

import luigi

from pipeline.storage import is_s3, open_store


class data(luigi.Config):  # noqa: N801 - the class name is the luigi.cfg section users write
    """Which data set to use and where its four IDX .gz files come from."""

    dataset = luigi.Parameter(
        default="mnist", description="mnist | fashion_mnist | synthetic | custom")
    source = luigi.Parameter(
        default="",
        description="empty: the data set's public mirrors; an http(s) URL prefix; or a local directory",
    )


class paths(luigi.Config):  # noqa: N801
    """Where artifacts go, and where this host caches what it fetches from an object store."""

    outputs = luigi.Parameter(
        default="outputs", description="root of all artifacts: a directory, or s3://BUCKET/PREFIX")
    cache = luigi.Parameter(
        default="", description="local cache for an s3:// root (default: ~/.cache/lenet-luigi-pipeline)")
    lock_timeout = luigi.FloatParameter(
        default=0.0, description="seconds a run waits for another run making the same artifact; 0: no limit")


def outputs_location(root: str | None = None) -> str:
    """Return an artifact root (default: the configured one): ``s3://...`` as written, a directory made absolute."""
    root = paths().outputs if root is None else str(root)
    return root if is_s3(root) else str(Path(root).expanduser().resolve())


def s3_client():
    """Return a boto3 S3 client from Luigi's ``[s3]`` section, else the standard AWS variables.

    ``[s3]`` options (endpoint_url, region_name, ...) are passed to boto3 by luigi.contrib.s3 as
    for Luigi's own S3 targets. Keys belong in the environment or an AWS profile, not in a
    luigi.cfg that is tracked in git. A malformed endpoint is a StoreError naming the setting.
    """
    from luigi.contrib.s3 import S3Client

    from pipeline.storage.s3 import checked_client, client_config

    return checked_client(lambda: S3Client(config=client_config()).s3.meta.client,
                          luigi.configuration.get_config().get("s3", "endpoint_url", None), "[s3] endpoint_url")


@functools.cache
def _store(root: str, cache: str, process: int):
    return open_store(root, cache or None, s3_client() if is_s3(root) else None)


def artifact_store(root: str | None = None):
    """Return the artifact store of ``root`` (default: the configured outputs root).

    One per root and process: a forked worker makes its own, since an S3 client's pooled
    connections must not be shared across processes.
    """
    return _store(outputs_location(root), paths().cache, os.getpid())
