"""The parts of tracking that need no server: the promotion rule, the settings and their messages."""

import http.server
import socket
import threading
import time

import pytest

from pipeline.errors import TrackingError
from pipeline.tracking.registry import decide
from pipeline.tracking.runs import epoch_metrics, metric_name
from pipeline.tracking.server import check_server, tracking_uri


@pytest.mark.parametrize("error, bar, champion, expected", [
    (1.0, None, None, True),
    (1.0, 0.5, None, False),
    (1.0, 1.0, None, True),
    (1.0, None, {"version": "1", "test_error": 1.5}, True),
    (1.5, None, {"version": "1", "test_error": 1.5}, False),
    (2.0, None, {"version": "1", "test_error": 1.5}, False),
    (1.0, None, {"version": "7", "test_error": 1.0}, False),
])
def test_decision_rule(error, bar, champion, expected):
    assert decide(error, bar, "7", champion)[0] is expected


def test_tracking_uri_comes_from_the_setting_then_the_environment(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://tracker:5000/")
    assert tracking_uri("") == "http://tracker:5000"
    assert tracking_uri("http://other:5000") == "http://other:5000"
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    with pytest.raises(TrackingError, match="set MLFLOW_TRACKING_URI"):
        tracking_uri("")


def unused_port() -> int:
    """Return a loopback port that nothing listens on (now)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_server_that_does_not_answer_is_named_with_the_fix():
    port = unused_port()
    started = time.monotonic()
    with pytest.raises(TrackingError, match=rf"http://127.0.0.1:{port} \(MLFLOW_TRACKING_URI\) does not answer.*make mlflow"):
        check_server(f"http://127.0.0.1:{port}", pauses_s=(0.1, 0.1))
    assert time.monotonic() - started < 5  # refused at once each time: no long wait for a server that is down


@pytest.mark.parametrize("pauses, passes", [((1, 1), True), ((), False)])
def test_a_server_that_answers_after_a_moment_passes_the_health_check_asked_again(pauses, passes):
    port = unused_port()
    servers = []

    def serve_later():  # the first request is refused: nothing listens yet
        time.sleep(0.5)
        servers.append(http.server.HTTPServer(("127.0.0.1", port), Healthy))
        servers[0].serve_forever()

    later = threading.Thread(target=serve_later, daemon=True)
    later.start()
    try:
        if passes:
            check_server(f"http://127.0.0.1:{port}", pauses_s=pauses)
        else:
            with pytest.raises(TrackingError, match="Connection refused"):
                check_server(f"http://127.0.0.1:{port}", pauses_s=pauses)
    finally:
        while later.is_alive() and not servers:
            time.sleep(0.05)
        servers[0].shutdown()
        servers[0].server_close()


class Healthy(http.server.BaseHTTPRequestHandler):
    """Answers every GET with 200 OK, as MLflow's /health does."""

    def do_GET(self):
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"OK")

    def log_message(self, *args):
        pass


def test_epoch_metrics_are_stepped_by_epoch_and_stamped_when_each_ended():
    history = [{"epoch": 1, "duration_s": 2.0, "train_loss": 1.5, "validation_error": 3.0, "learning_rate": 0.01,
                "images_per_s": 900.0},
               {"epoch": 2, "duration_s": 3.0, "train_loss": 1.0, "validation_error": 2.0, "learning_rate": 0.0095,
                "images_per_s": 950.0}]
    metrics = epoch_metrics(history, "2026-01-01T00:00:00+00:00")
    losses = [(metric.step, metric.value, metric.timestamp) for metric in metrics if metric.key == "train_loss"]
    start_ms = 1767225600000
    assert losses == [(1, 1.5, start_ms + 2000), (2, 1.0, start_ms + 5000)]
    assert {metric.key for metric in metrics} == {"train_loss", "validation_error", "learning_rate", "images_per_s"}


def test_class_names_become_valid_metric_names():
    assert metric_name("test_accuracy_class/T-shirt/top") == "test_accuracy_class/T-shirt/top"
    assert metric_name("test_accuracy_class/Ankle boot") == "test_accuracy_class/Ankle boot"
    assert metric_name("test_accuracy_class/a:b*c") == "test_accuracy_class/a_b_c"
