"""tasks/project.cfg is read beneath every other Luigi configuration file, through Luigi's list of config paths."""

import subprocess
import sys

from luigi.configuration import get_config
from luigi.configuration.cfg_parser import LuigiConfigParser

import tasks  # noqa: F401 - importing it loads project.cfg
from conftest import cli_env, output_of
from tasks.settings import PROJECT_CONFIG


def test_luigis_private_list_of_config_paths_still_works_as_settings_uses_it():
    """The one place that reaches into Luigi: if this fails, Luigi changed LuigiConfigParser._config_paths."""
    assert isinstance(LuigiConfigParser._config_paths, list)
    assert LuigiConfigParser._config_paths[0] == str(PROJECT_CONFIG)
    assert get_config().get("retcode", "task_failed") == "30"


def test_a_users_luigi_cfg_overrides_project_cfg_from_any_directory(tmp_path):
    (tmp_path / "luigi.cfg").write_text("[retcode]\ntask_failed = 3\n")
    code = "import tasks; from luigi.configuration import get_config; print(get_config().get('retcode', 'task_failed'), " \
           "get_config().get('retcode', 'missing_data'))"
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=cli_env(), capture_output=True, text=True,
                            timeout=60)
    assert result.stdout.split() == ["3", "20"], output_of(result)
