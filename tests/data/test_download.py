"""Fetching and verifying the four files: checksums, retries, mirrors, local directories."""

import hashlib
import http.server
import shutil
import ssl
import threading
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from pipeline.data import download, idx
from pipeline.data.datasets import CUSTOM, FILE_NAMES, DatasetInfo, FileFingerprint, get_dataset
from pipeline.errors import ConfigError, DataError, SourceError
from luigid_server import free_port


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch):
    monkeypatch.setattr(download, "RETRY_DELAY_S", 0.01)


def _pinned_to(directory, by="gz"):
    """Return a data set whose fingerprints pin the files in ``directory``."""
    fingerprints = {}
    for key, name in FILE_NAMES.items():
        path = directory / name
        if by == "gz":
            fingerprints[key] = FileFingerprint(path.stat().st_size,
                                                hashlib.sha256(path.read_bytes()).hexdigest())
        else:
            content = idx.read_gzip(path)
            fingerprints[key] = FileFingerprint(content_sha256=hashlib.sha256(content).hexdigest())
    return DatasetInfo(name="pinned", fingerprints=fingerprints)


def test_fetch_over_http_verifies_pinned_gz_checksums(pattern_dir, serve, tmp_path):
    server = serve(pattern_dir)
    (tmp_path / "out").mkdir()
    records = download.fetch_dataset(_pinned_to(pattern_dir), server.url, tmp_path / "out")
    assert sorted(r["file"] for r in records) == sorted(FILE_NAMES.values())
    for name in FILE_NAMES.values():
        assert (tmp_path / "out" / name).read_bytes() == (pattern_dir / name).read_bytes()


def test_recompressed_copy_passes_on_content_checksum(pattern_dir, tmp_path):
    dataset = _pinned_to(pattern_dir, by="content")
    recompressed = tmp_path / "recompressed"
    recompressed.mkdir()
    for name in FILE_NAMES.values():
        content = idx.read_gzip(pattern_dir / name)
        (recompressed / name).write_bytes(idx.gzip.compress(content, compresslevel=1))
    (tmp_path / "out").mkdir()
    download.fetch_dataset(dataset, str(recompressed), tmp_path / "out")


def test_checksum_mismatch_names_file_expected_and_actual(pattern_dir, tmp_path):
    dataset = _pinned_to(pattern_dir)
    expected = dataset.fingerprints["train_labels"].gz_sha256
    other = tmp_path / "other"
    shutil.copytree(pattern_dir, other)
    idx.write_gzip(other / FILE_NAMES["train_labels"],
                            idx.encode_labels(np.zeros(1200, np.uint8)))
    actual = hashlib.sha256((other / FILE_NAMES["train_labels"]).read_bytes()).hexdigest()
    (tmp_path / "out").mkdir()
    with pytest.raises(DataError) as error:
        download.fetch_dataset(dataset, str(other), tmp_path / "out")
    message = str(error.value)
    assert f"Checksum mismatch for {other / FILE_NAMES['train_labels']}" in message
    assert expected in message and actual in message
    assert not (tmp_path / "out" / FILE_NAMES["train_labels"]).exists()


def test_transient_server_errors_are_retried(pattern_dir, serve, tmp_path):
    server = serve(pattern_dir, fail_first=2)
    (tmp_path / "out").mkdir()
    download.fetch_dataset(CUSTOM, server.url, tmp_path / "out")
    assert server.requests.count("/" + FILE_NAMES["train_images"]) == 3


def test_next_mirror_is_tried_when_one_fails(pattern_dir, serve, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    broken, good = serve(empty), serve(pattern_dir)
    dataset = DatasetInfo(name="mirrored", mirrors=(broken.url, good.url))
    (tmp_path / "out").mkdir()
    records = download.fetch_dataset(dataset, "", tmp_path / "out")
    assert {r["source"] for r in records} == {good.url}


def test_unreachable_sources_are_all_listed(tmp_path):
    first, second = (f"http://127.0.0.1:{free_port()}/" for _ in range(2))
    dataset = DatasetInfo(name="mirrored", mirrors=(first, second))
    (tmp_path / "out").mkdir()
    with pytest.raises(SourceError) as error:
        download.fetch_dataset(dataset, "", tmp_path / "out")
    assert first in str(error.value) and second in str(error.value)
    assert list((tmp_path / "out").iterdir()) == []


def test_local_directory_missing_a_file_says_which(pattern_dir, tmp_path):
    (pattern_dir / FILE_NAMES["test_labels"]).unlink()
    (tmp_path / "out").mkdir()
    with pytest.raises(SourceError, match="t10k-labels-idx1-ubyte.gz does not exist"):
        download.fetch_dataset(CUSTOM, str(pattern_dir), tmp_path / "out")


def test_source_that_is_neither_url_nor_directory_is_a_config_error():
    with pytest.raises(ConfigError, match="neither an http\\(s\\) URL nor an existing directory"):
        download.resolve_sources(CUSTOM, "/no/such/place")


def test_custom_data_needs_a_source():
    with pytest.raises(ConfigError, match="set \\[data\\] source"):
        download.resolve_sources(CUSTOM, "")


def test_unknown_dataset_lists_the_choices():
    with pytest.raises(ConfigError, match="mnist, fashion_mnist, synthetic, custom"):
        get_dataset("cifar")


def test_https_mirrors_come_first_for_mnist():
    assert all(url.startswith("https://") for url in get_dataset("mnist").mirrors)


class _CutChunkedHandler(http.server.BaseHTTPRequestHandler):
    """Serves a directory with chunked bodies; the first answer per path stops in mid-chunk."""

    directory = ""
    answered: dict = {}

    def do_GET(self):  # noqa: N802 - the name http.server calls
        body = (Path(self.directory) / self.path.lstrip("/")).read_bytes()
        first = self.path not in self.answered
        self.answered[self.path] = self.answered.get(self.path, 0) + 1
        self.send_response(200)
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(f"{len(body):x}\r\n".encode())
        self.wfile.write(body[:len(body) // 2] if first else body + b"\r\n0\r\n\r\n")
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, *args):
        pass


def test_a_chunked_body_cut_short_is_retried(pattern_dir, tmp_path):
    handler = type("Handler", (_CutChunkedHandler,), {"directory": str(pattern_dir), "answered": {}})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        (tmp_path / "out").mkdir()
        records = download.fetch_dataset(CUSTOM, f"http://127.0.0.1:{server.server_address[1]}/", tmp_path / "out")
    finally:
        server.shutdown()
        server.server_close()
    assert len(records) == 4
    assert all(count == 2 for count in handler.answered.values()), handler.answered
    for name in FILE_NAMES.values():
        assert (tmp_path / "out" / name).read_bytes() == (pattern_dir / name).read_bytes()


def test_a_tls_error_while_reading_is_retried(pattern_dir, serve, monkeypatch, tmp_path):
    server = serve(pattern_dir)
    real_urlopen = urllib.request.urlopen
    failures = []

    def flaky_urlopen(*args, **kwargs):
        response = real_urlopen(*args, **kwargs)
        if not failures:
            failures.append(args[0].full_url)

            def read(*_):
                raise ssl.SSLError(1, "[SSL: DECRYPTION_FAILED_OR_BAD_RECORD_MAC] decryption failed")

            response.read = read
        return response

    monkeypatch.setattr(urllib.request, "urlopen", flaky_urlopen)
    (tmp_path / "out").mkdir()
    download.fetch_dataset(CUSTOM, server.url, tmp_path / "out")
    assert len(failures) == 1
    assert server.requests.count("/" + FILE_NAMES["train_images"]) == 2
