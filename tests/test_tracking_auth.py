"""Track behind an authenticating proxy: credentials in the URI or MLflow's variables work, and reach no record."""

import json
from pathlib import Path

import pytest

from auth_proxy import BasicAuthProxy
from conftest import make_pattern_files, output_of
from test_tracking import pipeline, tracked_env

pytestmark = [pytest.mark.mlflow, pytest.mark.slow]

PASSWORD = "Pw-9c1e7d-secret"
AWS_SECRET = "AwsSecret-5b3f0a-9d"


def files_containing(root: Path, *secrets: str) -> list[str]:
    """Return the files below ``root`` whose bytes contain any of ``secrets``."""
    found = []
    for path in root.rglob("*"):
        if path.is_file() and any(secret.encode() in path.read_bytes() for secret in secrets):
            found.append(str(path))
    return found


def test_credentials_reach_an_authenticated_server_and_no_record(mlflow_server, tmp_path):
    source = make_pattern_files(tmp_path / "idx")
    outputs = tmp_path / "out"
    with BasicAuthProxy(mlflow_server.uri, "ops", PASSWORD) as proxy:
        plain = f"http://127.0.0.1:{proxy.port}"
        in_uri = tracked_env(f"http://ops:{PASSWORD}@127.0.0.1:{proxy.port}", AWS_SECRET_ACCESS_KEY=AWS_SECRET)
        first = pipeline(outputs, source, "Track", "--Track-experiment", "auth-in-uri", "--Train-epochs", "1",
                         env=in_uri)
        assert first.returncode == 0, output_of(first)
        in_variables = tracked_env(plain, MLFLOW_TRACKING_USERNAME="ops", MLFLOW_TRACKING_PASSWORD=PASSWORD)
        second = pipeline(outputs, source, "Promote", "--Track-experiment", "auth-in-variables",
                          "--Train-epochs", "1", env=in_variables)
        assert second.returncode == 0, output_of(second)
        refused = pipeline(outputs, source, "Track", "--Track-experiment", "no-credentials", "--Train-epochs", "1",
                           env=tracked_env(plain))
        assert refused.returncode == 30 and proxy.refused > 0, output_of(refused)
    for result in (first, second, refused):
        assert PASSWORD not in output_of(result) and AWS_SECRET not in output_of(result)
    assert files_containing(outputs, PASSWORD, AWS_SECRET) == []
    assert files_containing(mlflow_server.directory, PASSWORD, AWS_SECRET) == []
    client = mlflow_server.client()
    for name in ("auth-in-uri", "auth-in-variables"):
        (run,) = client.search_runs([client.get_experiment_by_name(name).experiment_id])
        assert PASSWORD not in json.dumps({**run.data.params, **run.data.tags})
    tracked = [json.loads(path.read_text()) for path in outputs.glob("track/*/tracking.json")]
    assert sorted(record["tracking_uri"] for record in tracked) == [plain, plain]
