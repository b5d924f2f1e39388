"""Luigi tasks of the pipeline; ``tasks`` is what ``--module`` names.

    luigi --module tasks Evaluate --local-scheduler

Importing it loads the project's Luigi settings (tasks/project.cfg: exit codes,
``check_complete_on_run``), so they hold whatever directory the command starts in, and keeps
predictable failures to one ``ERROR:`` line on the console (tasks/console_errors.py).
"""

import warnings

from luigi.parameter import UnconsumedParameterWarning

from tasks import console_errors
from tasks.settings import load_project_config

load_project_config()
console_errors.install()

from tasks.config import data, paths  # noqa: E402 - the config classes read the settings above
from tasks.report import Report  # noqa: E402
from tasks.slurm import slurm  # noqa: E402 - [slurm], for Train executor = slurm
from tasks.steps import Download, Evaluate, ExtractToNpy, SplitValidation, Train  # noqa: E402
from tasks.sweep import Sweep  # noqa: E402
from tasks.tracking import Promote, Track  # noqa: E402

# luigi.rpc reads [core] rpc-* settings directly, so Luigi's own core class calls them unused.
warnings.filterwarnings("ignore", message=".*parameter 'rpc_", category=UnconsumedParameterWarning)

__all__ = ["data", "paths", "slurm", "Download", "ExtractToNpy", "SplitValidation", "Train", "Evaluate", "Report", "Sweep", "Track", "Promote"]
