"""The project's own Luigi settings (tasks/project.cfg), in force from any working directory."""

from pathlib import Path

from luigi.configuration import get_config
from luigi.configuration.cfg_parser import LuigiConfigParser

PROJECT_CONFIG = Path(__file__).with_name("project.cfg")


def load_project_config() -> None:
    """Read project.cfg beneath every other Luigi configuration file (idempotent).

    Luigi reads ./luigi.cfg from the current directory only, so exit codes and
    ``check_complete_on_run`` kept there would vanish for a run started elsewhere (cron, a
    container, another shell directory). Listed first, project.cfg gives the defaults, and
    /etc/luigi/luigi.cfg, ./luigi.cfg and LUIGI_CONFIG_PATH, read after it, still win.
    """
    # Luigi has no public call to put a file *beneath* the others (add_config_path appends, so the
    # file would override the user's); its list of paths is the one place this reaches into.
    # tests/test_settings.py fails if Luigi renames or changes it.
    paths = LuigiConfigParser._config_paths
    if str(PROJECT_CONFIG) in paths:
        return
    paths.insert(0, str(PROJECT_CONFIG))
    if isinstance(get_config(), LuigiConfigParser):
        LuigiConfigParser.reload()
