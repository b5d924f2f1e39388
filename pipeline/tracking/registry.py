"""The model registry's blessing step: register a tracked model, move ``champion`` only forwards.

As TFX's Evaluator and Pusher: a candidate becomes champion only when its test error is at most
the threshold and lower than the current champion's. The alias never moves to a model with a
higher or equal test error, so rerunning an old run's promotion cannot undo a better one.

Promotions of one model are serialised by the tasks (a luigid resource, a lock), and converge
even where two run at once (two hosts without luigid): a version that passes its bar is tagged
eligible before any alias moves, and after moving it each promotion reads the alias again and
moves it to the best eligible version until what it reads is that version. A run is registered
once: a promotion that finds two versions of its run (both searched, both created) keeps the
lowest-numbered one and deletes the other.
"""

from pipeline.redact import public_url
from pipeline.tracking.runs import EVALUATE_TAG
from pipeline.tracking.server import client, said_plainly

CHAMPION = "champion"
TEST_ERROR_TAG = "test_error"
ELIGIBLE_TAG = "lenet.eligible"
# Rounds of read-the-alias-and-repair; each concurrent promotion needs at most one more.
REPAIR_ROUNDS = 10


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
    """Return this run's model version, registered once: a rerun finds the version it made.

    Searched again after creating it: if another promotion registered the run meanwhile, the
    lowest-numbered version stays and the others are deleted (by whichever promotion sees them).
    """
    from mlflow.exceptions import MlflowException

    query = f"name = '{name}' and run_id = '{run['run_id']}'"
    if not mlflow_client.search_model_versions(query):
        mlflow_client.create_model_version(
            name, source=run["model_uri"], run_id=run["run_id"], model_id=run["model_uri"].removeprefix("models:/"),
            tags={TEST_ERROR_TAG: f"{test_error}", EVALUATE_TAG: evaluate_id})
    versions = sorted(mlflow_client.search_model_versions(query), key=lambda version: int(version.version))
    for duplicate in versions[1:]:
        try:
            mlflow_client.delete_model_version(name, duplicate.version)
        except MlflowException:  # deleted by the other promotion already
            pass
    return versions[0]


def _set_twice_if_raced(setter, *args) -> None:
    """Call ``setter(*args)``; once more if it fails.

    MLflow's server inserts a new tag or alias without an upsert: when a concurrent promotion
    writes the same one first, the insert fails on the database's unique key, and the second
    call is an update.
    """
    from mlflow.exceptions import MlflowException

    try:
        setter(*args)
    except MlflowException:
        setter(*args)


def _best_eligible(mlflow_client, name: str, champion: dict | None) -> dict | None:
    """Return the version with the lowest test error among those tagged eligible and the champion (ties: the champion)."""
    candidates = [champion] if champion else []
    for version in mlflow_client.search_model_versions(f"name = '{name}'"):
        if version.tags.get(ELIGIBLE_TAG) == "true" and TEST_ERROR_TAG in version.tags:
            candidates.append({"version": str(version.version), "test_error": float(version.tags[TEST_ERROR_TAG])})
    if not candidates:
        return None
    return min(candidates, key=lambda candidate: (candidate["test_error"], candidate is not champion,
                                                  int(candidate["version"])))


def _converge(mlflow_client, name: str) -> dict | None:
    """Move ``champion`` to the best eligible version, reading it again after each move; return the champion."""
    for _ in range(REPAIR_ROUNDS):
        current = _champion(mlflow_client, name)
        best = _best_eligible(mlflow_client, name, current)
        if best is None or (current and best["version"] == current["version"]):
            return current
        _set_twice_if_raced(mlflow_client.set_registered_model_alias, name, CHAMPION, best["version"])
    return _champion(mlflow_client, name)


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
        if max_test_error is None or test_error <= max_test_error:
            _set_twice_if_raced(mlflow_client.set_model_version_tag, model_name, version, ELIGIBLE_TAG, "true")
        if promoted:
            _set_twice_if_raced(mlflow_client.set_registered_model_alias, model_name, CHAMPION, version)
        after = _converge(mlflow_client, model_name)
        if promoted and (after is None or after["version"] != version):
            promoted, reason = False, (f"another promotion made version {after['version']} "
                                       f"({after['test_error']:.2f}%) {CHAMPION} meanwhile")
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
