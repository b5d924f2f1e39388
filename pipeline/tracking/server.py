"""The MLflow client: imported on demand, pointed at a tracking server that answers, errors said in one line."""

import contextlib
import logging
import os
import time
import urllib.error
import urllib.request

from pipeline.errors import TrackingError
from pipeline.redact import public_url, redact_text, url_credentials

log = logging.getLogger(__name__)

URI_VARIABLE = "MLFLOW_TRACKING_URI"
INSTALL_HINT = "pip install -e '.[mlflow]' in the pipeline's environment (mlflow-skinny and pandas)"
HEALTH_TIMEOUT_S = 5
# Pauses between the health check's attempts: a container network's DNS or a restarting proxy can
# fail one lookup or connection for a moment; a server that is down still fails within seconds.
HEALTH_RETRY_PAUSES_S = (1, 2)
MISSING_CLIENT = f"Tracking runs needs MLflow's client, which is not installed: {INSTALL_HINT}, then run again."


def require_client() -> None:
    """Raise TrackingError saying how to install MLflow's client when it is missing (without importing it)."""
    import importlib.util

    if importlib.util.find_spec("mlflow") is None:
        raise TrackingError(MISSING_CLIENT)


def import_mlflow():
    """Return the ``mlflow`` module, or raise TrackingError saying how to install it."""
    # The pipeline runs from cron and on hosts without internet: MLflow's usage telemetry stays
    # off unless the user turned it on, and progress bars only where someone watches.
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")  # Track prints its own line
    # Images have no git: GitPython would warn at every run (the code version is tagged without it).
    os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
    try:
        import mlflow
    except ImportError as error:
        raise TrackingError(f"{MISSING_CLIENT} ({error})") from error
    return mlflow


def tracking_uri(configured: str = "") -> str:
    """Return the tracking URI: ``configured`` ([Track] tracking_uri), else $MLFLOW_TRACKING_URI.

    It may carry credentials (``http://user:password@host``): record only ``public_url`` of it.
    """
    uri = configured or os.environ.get(URI_VARIABLE, "")
    if not uri:
        raise TrackingError(f"No MLflow tracking server is configured: set {URI_VARIABLE} (e.g. "
                            "http://127.0.0.1:5000, which `make mlflow` serves) or [Track] tracking_uri "
                            "in luigi.cfg, then run again.")
    return uri.rstrip("/")


def connection_uri(recorded: str, configured: str = "") -> str:
    """Return the URI to connect to the server a record names (without credentials).

    The configured URI, credentials included, when it is that server; else the recorded one, for
    which MLflow reads MLFLOW_TRACKING_USERNAME/PASSWORD or MLFLOW_TRACKING_TOKEN itself.
    """
    try:
        full = tracking_uri(configured)
    except TrackingError:
        return recorded
    return full if public_url(full) == recorded else recorded


def _auth_header(uri: str) -> dict:
    """Return the Authorization header MLflow's client would send to ``uri`` (user info, or its variables)."""
    import base64

    credentials = url_credentials(uri)
    if credentials is None and os.environ.get("MLFLOW_TRACKING_USERNAME"):
        credentials = os.environ["MLFLOW_TRACKING_USERNAME"], os.environ.get("MLFLOW_TRACKING_PASSWORD", "")
    if credentials:
        return {"Authorization": "Basic " + base64.b64encode(":".join(credentials).encode()).decode()}
    if os.environ.get("MLFLOW_TRACKING_TOKEN"):
        return {"Authorization": f"Bearer {os.environ['MLFLOW_TRACKING_TOKEN']}"}
    return {}


def check_server(uri: str, pauses_s: tuple[float, ...] = HEALTH_RETRY_PAUSES_S) -> None:
    """Raise TrackingError unless the MLflow server at an http(s) ``uri`` answers its health check.

    It is asked once more after each of ``pauses_s``, so a moment's failure does not fail the task.
    """
    if not uri.startswith(("http://", "https://")):
        return
    for pause in (*pauses_s, None):
        reason = health_failure(uri)
        if reason is None:
            return
        if pause is not None:
            log.warning("The MLflow server %s did not answer (%s); asking again in %s s", public_url(uri), reason,
                        pause)
            time.sleep(pause)
    raise TrackingError(unreachable_message(uri, reason))


def health_failure(uri: str) -> str | None:
    """Return why the server at ``uri`` did not answer ``/health`` once, or None when it did."""
    try:
        request = urllib.request.Request(f"{public_url(uri)}/health", headers=_auth_header(uri))
        with urllib.request.urlopen(request, timeout=HEALTH_TIMEOUT_S):
            return None
    except urllib.error.HTTPError as error:
        if error.code < 500:
            return None  # it answers: a proxy or an auth layer in front may refuse /health itself
        return f"HTTP {error.code}"
    except (OSError, ValueError) as error:
        return redact_text(str(getattr(error, "reason", error)))


def unreachable_message(uri: str, reason: str) -> str:
    """Return the one-line message for a tracking server that does not answer."""
    return (f"The MLflow tracking server {public_url(uri)} ({URI_VARIABLE}) does not answer ({reason}). Start it "
            f"(`make mlflow` serves one on 127.0.0.1:5000) or point {URI_VARIABLE} at a running server, "
            "then run again: the evaluated artifacts are kept, and what was not logged is logged then.")


@contextlib.contextmanager
def said_plainly(uri: str, doing: str):
    """Turn MLflow's and the network's exceptions into one TrackingError line naming ``doing``."""
    from mlflow.exceptions import MlflowException
    from requests.exceptions import RequestException

    try:
        yield
    except TrackingError:
        raise
    except RequestException as error:
        raise TrackingError(unreachable_message(uri, f"{type(error).__name__} while {doing}")) from None
    except MlflowException as error:
        message = redact_text(str(error).splitlines()[0]) if str(error) else type(error).__name__
        if "Max retries exceeded" in message or "Connection" in message:
            raise TrackingError(unreachable_message(uri, f"lost while {doing}")) from None
        raise TrackingError(f"MLflow at {public_url(uri)} refused {doing}: {message}") from None


def client(uri: str):
    """Return an MlflowClient for a server that answers (checked first, in at most a few seconds)."""
    mlflow = import_mlflow()
    check_server(uri)
    return mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
