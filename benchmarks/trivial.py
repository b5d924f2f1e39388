"""A trivial, already complete Luigi task: the floor for how fast any no-op Luigi run can be."""

import luigi


class Trivial(luigi.Task):
    """Complete as soon as the file at ``path`` exists."""

    path = luigi.Parameter()

    def output(self):
        return luigi.LocalTarget(self.path)
