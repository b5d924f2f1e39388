"""The model registry's blessing step: register a tracked model, move ``champion`` only forwards.

As TFX's Evaluator and Pusher: a candidate becomes champion only when its test error is at most
the threshold and lower than the current champion's. The alias never moves to a model with a
higher or equal test error, so rerunning an old run's promotion cannot undo a better one.
"""

from pipeline.redact import public_url
from pipeline.tracking.runs import EVALUATE_TAG
from pipeline.tracking.server import client, said_plainly

CHAMPION = "champion"
TEST_ERROR_TAG = "test_error"


def decide(test_error: float, max_test_error: float | None, version: str,
           champion: dict | None) -> tuple[bool, str]:
    """Return (promote?, why) for a candidate ``version`` against the threshold and the current champion."""
    if champion and champion["version"] == version:
        return False, f"version {version} is the champion already"
    if max_test_error is not None and test_error > max_test_error:
        return False, f"test error {test_error:.2f}% is above max_test_error {max_test_error:.2f}%"
    if champion and test_error >= champion["test_error"]:
        return False, (f"test error {test_error:.2f}% is not lower than champion version "
                       f"{champion['version']}'s {champion['test_error']:.2f}%")
    return True, f"test error {test_error:.2f}% is the lowest so far"


def _registered_model(mlflow_client, name: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        mlflow_client.get_registered_model(name)
    except MlflowException:
        try:
            mlflow_client.create_registered_model(
                name, description="LeNet-5-like CNN trained by lenet-luigi-pipeline; the alias "
                                  f"'{CHAMPION}' names the version with the lowest test error.")
        except MlflowException:  # created by another run meanwhile
            mlflow_client.get_registered_model(name)


def _version_of_run(mlflow_client, name: str, run: dict, test_error: float, evaluate_id: str):
    """Return this run's model version, registered once: a rerun finds the version it made."""
    existing = mlflow_client.search_model_versions(f"name = '{name}' and run_id = '{run['run_id']}'")
    if existing:
        return min(existing, key=lambda version: int(version.version))
    model_id = run["model_uri"].removeprefix("models:/")
    return mlflow_client.create_model_version(
        name, source=run["model_uri"], run_id=run["run_id"], model_id=model_id,
        tags={TEST_ERROR_TAG: f"{test_error}", EVALUATE_TAG: evaluate_id})


def _champion(mlflow_client, name: str) -> dict | None:
    from mlflow.exceptions import MlflowException

    try:
        version = mlflow_client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None
    error = version.tags.get(TEST_ERROR_TAG)
    if error is None:  # registered by hand: its run's metric says
        error = mlflow_client.get_run(version.run_id).data.metrics.get("test_error", float("inf"))
    return {"version": str(version.version), "test_error": float(error)}


def promote(uri: str, model_name: str, run: dict, test_error: float, evaluate_id: str,
            max_test_error: float | None) -> dict:
    """Register ``run``'s model under ``model_name`` and move ``champion`` to it when it earns it; return the decision."""
    mlflow_client = client(uri)
    with said_plainly(uri, f"registering {model_name}"):
        _registered_model(mlflow_client, model_name)
        version = str(_version_of_run(mlflow_client, model_name, run, test_error, evaluate_id).version)
        before = _champion(mlflow_client, model_name)
        promoted, reason = decide(test_error, max_test_error, version, before)
        if promoted:
            mlflow_client.set_registered_model_alias(model_name, CHAMPION, version)
        after = _champion(mlflow_client, model_name)
    if promoted:
        replaced = f", replacing version {before['version']} ({before['test_error']:.2f}%)" if before else ""
        summary = f"Promoted {model_name} version {version} to {CHAMPION}: {reason}{replaced}"
    elif after:
        summary = (f"Kept {CHAMPION} {model_name} version {after['version']} (test error "
                   f"{after['test_error']:.2f}%): {reason}")
    else:
        summary = f"No {CHAMPION} for {model_name}: version {version} not promoted, {reason}"
    return {"model_name": model_name, "version": version, "test_error": test_error,
            "max_test_error": max_test_error, "promoted": promoted, "reason": reason, "summary": summary,
            "champion_before": before, "champion_after": after, "tracking_uri": public_url(uri)}
