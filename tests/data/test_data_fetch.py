import hashlib
import http.server
import threading
from pathlib import Path

import pytest
import yaml

from workbench.data import cache_dir, fetch, read_manifest
from workbench.errors import ChecksumError, DataError

PAYLOAD = b"spike counts " * 1000


def _manifest(tmp_path, url="https://example.invalid/r.npy", payload=PAYLOAD, **extra):
    raw = {"name": "toy", "description": "d", "species": "mouse", "regions": ["V1"],
           "stimuli": {}, "license": "CC0", "citation": "c", "loader": "local",
           "files": [{"path": "toy/r.npy", "url": url, "sha256": hashlib.sha256(payload).hexdigest(),
                      "size": len(payload)}], **extra}
    path = tmp_path / "toy.yaml"
    path.write_text(yaml.safe_dump(raw))
    return read_manifest(path)


def _no_partial_files(folder: Path):
    return [p.name for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


def test_cache_dir_follows_the_environment(data_cache):
    assert cache_dir() == data_cache


def test_mirror_copy_is_verified_and_cached(tmp_path, data_cache):
    mirror = tmp_path / "mirror"
    (mirror / "toy").mkdir(parents=True)
    (mirror / "toy" / "r.npy").write_bytes(PAYLOAD)
    paths = fetch(_manifest(tmp_path), mirror=mirror, progress=False)
    assert paths["toy/r.npy"] == data_cache / "toy" / "r.npy"
    assert paths["toy/r.npy"].read_bytes() == PAYLOAD
    # a second fetch needs no mirror: the cached file is verified and used
    assert fetch(_manifest(tmp_path), progress=False) == paths


def test_mirror_from_environment(tmp_path, data_cache, monkeypatch):
    mirror = tmp_path / "mirror"
    (mirror / "toy").mkdir(parents=True)
    (mirror / "toy" / "r.npy").write_bytes(PAYLOAD)
    monkeypatch.setenv("WORKBENCH_DATA_MIRROR", str(mirror))
    assert fetch(_manifest(tmp_path), progress=False)["toy/r.npy"].read_bytes() == PAYLOAD


def test_corrupt_mirror_file_names_file_and_both_sums(tmp_path, data_cache):
    mirror = tmp_path / "mirror"
    (mirror / "toy").mkdir(parents=True)
    bad = PAYLOAD[:-1] + b"X"
    (mirror / "toy" / "r.npy").write_bytes(bad)
    manifest = _manifest(tmp_path)
    expected = manifest.files[0].sha256
    found = hashlib.sha256(bad).hexdigest()
    with pytest.raises(ChecksumError, match=rf"toy/r.npy .*sha256 {found}, expected {expected}"):
        fetch(manifest, mirror=mirror, progress=False)
    assert _no_partial_files(data_cache) == []


def test_wrong_size_is_caught_before_hashing(tmp_path, data_cache):
    mirror = tmp_path / "mirror"
    (mirror / "toy").mkdir(parents=True)
    (mirror / "toy" / "r.npy").write_bytes(PAYLOAD[:10])
    with pytest.raises(ChecksumError, match=rf"size 10 bytes, expected {len(PAYLOAD)}"):
        fetch(_manifest(tmp_path), mirror=mirror, progress=False)


def test_corrupt_cached_file_is_fetched_again(tmp_path, data_cache, caplog):
    mirror = tmp_path / "mirror"
    (mirror / "toy").mkdir(parents=True)
    (mirror / "toy" / "r.npy").write_bytes(PAYLOAD)
    (data_cache / "toy").mkdir(parents=True)
    (data_cache / "toy" / "r.npy").write_bytes(b"truncated")
    paths = fetch(_manifest(tmp_path), mirror=mirror, progress=False)
    assert paths["toy/r.npy"].read_bytes() == PAYLOAD
    assert "corrupt" in caplog.text


def test_missing_mirror_file(tmp_path):
    with pytest.raises(DataError, match=r"toy/r.npy: not found in the mirror"):
        fetch(_manifest(tmp_path), mirror=tmp_path, progress=False)


class _Handler(http.server.BaseHTTPRequestHandler):
    body = PAYLOAD
    truncate = False

    def do_GET(self):  # noqa: N802 (http.server's name)
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body[: len(self.body) // 2] if self.truncate else self.body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    _Handler.body, _Handler.truncate = PAYLOAD, False


def _url(server):
    return f"http://127.0.0.1:{server.server_address[1]}/r.npy"


def test_download_is_verified(tmp_path, data_cache, server):
    paths = fetch(_manifest(tmp_path, url=_url(server)), progress=False)
    assert paths["toy/r.npy"].read_bytes() == PAYLOAD


def test_download_with_wrong_bytes_is_rejected_and_removed(tmp_path, data_cache, server):
    _Handler.body = PAYLOAD.upper()
    with pytest.raises(ChecksumError, match=r"toy/r.npy \(from http://127.0.0.1"):
        fetch(_manifest(tmp_path, url=_url(server)), progress=False)
    assert _no_partial_files(data_cache) == []


def test_interrupted_download_leaves_nothing_and_restarts(tmp_path, data_cache, server):
    _Handler.truncate = True
    with pytest.raises(DataError, match="toy/r.npy"):
        fetch(_manifest(tmp_path, url=_url(server)), progress=False)
    assert _no_partial_files(data_cache) == []
    _Handler.truncate = False
    assert fetch(_manifest(tmp_path, url=_url(server)), progress=False)["toy/r.npy"].read_bytes() == PAYLOAD


def test_local_root_files_are_verified_in_place(tmp_path):
    (tmp_path / "rec" / "toy").mkdir(parents=True)
    (tmp_path / "rec" / "toy" / "r.npy").write_bytes(PAYLOAD)
    manifest = _manifest(tmp_path, root="rec")
    assert fetch(manifest, progress=False)["toy/r.npy"] == tmp_path / "rec" / "toy" / "r.npy"
    (tmp_path / "rec" / "toy" / "r.npy").write_bytes(b"changed")
    with pytest.raises(ChecksumError, match="toy/r.npy"):
        fetch(manifest, progress=False)


def test_user_provided_data_say_where_to_put_them(data_cache):
    with pytest.raises(DataError, match=r"provided by the user.*place the file at .*chang2021_face_am/responses.npy"):
        fetch(read_manifest("chang2021_face_am"), progress=False)
