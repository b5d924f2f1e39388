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


@pytest.mark.s3
def test_no_secret_in_the_bucket_the_cache_the_logs_or_mlflow_after_a_scheduled_run_on_s3(mlflow_server, swift,
                                                                                          tmp_path):
    """The acceptance grep: a distinctive AWS secret and a user:password@ tracking URI on the command line."""
    import uuid

    from conftest import cli_env
    from swift_server import OPS_ACCESS_KEY, OPS_SECRET_KEY
    from test_many_hosts import lenet_pipeline

    client = swift.client(OPS_ACCESS_KEY, OPS_SECRET_KEY)
    bucket = f"lenet-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket)
    source = make_pattern_files(tmp_path / "idx")
    env = {**cli_env(), **swift.environment(OPS_ACCESS_KEY, OPS_SECRET_KEY), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    with BasicAuthProxy(mlflow_server.uri, "ops", PASSWORD) as proxy:
        result = lenet_pipeline(
            "batch", "Promote", "--local-scheduler", "--data-dataset", "custom", "--data-source", str(source),
            "--paths-outputs", f"s3://{bucket}/outputs", "--SplitValidation-validation-size", "200",
            "--Train-epochs", "1", "--Track-experiment", "auth-on-s3", "--Track-report",
            "--Track-tracking-uri", f"http://ops:{PASSWORD}@127.0.0.1:{proxy.port}", env=env)
    assert result.returncode == 0, output_of(result)
    assert PASSWORD not in output_of(result) and OPS_SECRET_KEY not in output_of(result)
    keys = [item["Key"] for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
            for item in page.get("Contents", [])]
    assert any(key.startswith("outputs/runs/") for key in keys) and any("/track/" in key for key in keys)
    leaking = [key for key in keys if any(secret.encode() in client.get_object(Bucket=bucket, Key=key)["Body"].read()
                                          for secret in (PASSWORD, OPS_SECRET_KEY))]
    assert leaking == []
    assert files_containing(tmp_path / "cache", PASSWORD, OPS_SECRET_KEY) == []  # fetched inputs, logs, locks
    assert list((tmp_path / "cache").rglob("pipeline.log")) and list((tmp_path / "cache").rglob("scheduled-runs.log"))
    assert files_containing(mlflow_server.directory, PASSWORD, OPS_SECRET_KEY) == []
