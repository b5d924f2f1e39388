"""Luigi tasks of the pipeline; ``tasks`` is what ``--module`` names.

    luigi --module tasks Evaluate --local-scheduler
"""

from tasks.config import data, paths
from tasks.steps import Download, Evaluate, ExtractToNpy, SplitValidation, Train

__all__ = ["data", "paths", "Download", "ExtractToNpy", "SplitValidation", "Train", "Evaluate"]
