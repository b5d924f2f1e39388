"""Luigi tasks of the pipeline; ``tasks`` is what ``--module`` names.

    luigi --module tasks Evaluate --local-scheduler
"""

import warnings

from luigi.parameter import UnconsumedParameterWarning

from tasks.config import data, paths
from tasks.steps import Download, Evaluate, ExtractToNpy, SplitValidation, Train
from tasks.report import Report
from tasks.sweep import Sweep

# luigi.rpc reads [core] rpc-* settings directly, so Luigi's own core class calls them unused.
warnings.filterwarnings("ignore", message=".*parameter 'rpc_", category=UnconsumedParameterWarning)

__all__ = ["data", "paths", "Download", "ExtractToNpy", "SplitValidation", "Train", "Evaluate", "Report", "Sweep"]
