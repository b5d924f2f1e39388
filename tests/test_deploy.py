"""The deployment files: Dockerfile lint, compose services, and what the image runs."""

import shutil
import subprocess
import sys
from pathlib import Path

from conftest import REPO_ROOT


def test_dockerfile_passes_hadolint():
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))
    result = subprocess.run([hadolint, "Dockerfile"], cwd=REPO_ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_runs_the_users_command_as_non_root():
    text = (REPO_ROOT / "Dockerfile").read_text()
    assert 'CMD ["luigi", "--module", "tasks", "Evaluate", "--local-scheduler"]' in text
    assert "USER 1000:1000" in text and 'VOLUME ["/app/outputs"]' in text
    assert "FROM python:3.11." in text


def test_compose_names_luigid_and_worker_services():
    text = (REPO_ROOT / "docker-compose.yml").read_text()
    for service in ("  luigid:", "  worker:"):
        assert service in text
    assert "scripts/run-worker" in text and "service_healthy" in text and "8082:8082" in text
    worker = (REPO_ROOT / "scripts" / "run-worker").read_text()
    assert '--scheduler-host "$host"' in worker and "PIPELINE_TASK" in worker and "PIPELINE_ARGS" in worker


def test_scheduler_script_runs_the_projects_luigid_with_its_state_directory():
    text = (REPO_ROOT / "scripts" / "start-scheduler").read_text()
    assert "exec python -m tasks.scheduler" in text and "--state-dir" in text
