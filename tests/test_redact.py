"""Secrets never reach a record: URLs lose their user info, secret flags their values."""

import json

from pipeline.artifacts import RunClock, write_meta
from pipeline.redact import public_url, redact_argv, redact_text, url_credentials

SECRET = "s3cr3t-PASSWORD-4f9a"


def test_a_url_is_recorded_without_its_user_info():
    assert public_url(f"http://ops:{SECRET}@127.0.0.1:5000/x") == "http://127.0.0.1:5000/x"
    assert public_url("http://127.0.0.1:5000") == "http://127.0.0.1:5000"
    assert public_url("file:///tmp/mlruns") == "file:///tmp/mlruns"
    assert url_credentials(f"http://ops:{SECRET}@host") == ("ops", SECRET)
    assert url_credentials("http://host") is None


def test_messages_and_command_lines_lose_every_secret():
    text = f"HTTPConnectionPool(host='x'): Max retries exceeded with url: http://ops:{SECRET}@x:5000/api"
    assert SECRET not in redact_text(text) and "http://x:5000/api" in redact_text(text)
    argv = ["luigi", "--module", "tasks", "Track", "--Track-tracking-uri", f"http://ops:{SECRET}@h:5000",
            "--s3-aws-secret-access-key", SECRET, f"--token={SECRET}", f"password={SECRET}", "--Train-epochs", "2"]
    redacted = redact_argv(argv)
    assert SECRET not in json.dumps(redacted)
    assert redacted[-2:] == ["--Train-epochs", "2"] and "--Track-tracking-uri" in redacted


def test_meta_json_records_the_command_without_secrets(tmp_path, monkeypatch):
    monkeypatch.setattr("sys.argv", ["luigi", "--Track-tracking-uri", f"https://ops:{SECRET}@mlflow.example.com"])
    write_meta(tmp_path, "track", "abc", {}, {}, RunClock())
    recorded = (tmp_path / "meta.json").read_text()
    assert SECRET not in recorded and "https://mlflow.example.com" in recorded
