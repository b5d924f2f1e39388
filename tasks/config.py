"""Settings shared by several tasks, as Luigi config classes: ``[data]`` and ``[paths]``."""

from pathlib import Path

import luigi


class data(luigi.Config):  # noqa: N801 - the class name is the luigi.cfg section users write
    """Which data set to use and where its four IDX .gz files come from."""

    dataset = luigi.Parameter(
        default="mnist", description="mnist | fashion_mnist | synthetic | custom")
    source = luigi.Parameter(
        default="",
        description="empty: the data set's public mirrors; an http(s) URL prefix; or a local directory",
    )


class paths(luigi.Config):  # noqa: N801
    """Where artifacts go."""

    outputs = luigi.Parameter(default="outputs", description="root directory of all artifacts")


def outputs_root() -> Path:
    """Return the artifact root as an absolute path."""
    return Path(paths().outputs).expanduser().resolve()
