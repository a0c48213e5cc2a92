import hashlib
import json

import pytest

from workbench.errors import DataError
from workbench.storage import atomic_path, read_verified, record_path, sha256_file, write_verified


def test_atomic_path_renames_on_success(tmp_path):
    target = tmp_path / "sub" / "result.txt"
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp != target
        tmp.write_text("complete")
        assert not target.exists()
    assert target.read_text() == "complete"
    assert list(target.parent.iterdir()) == [target]


def test_atomic_path_gives_the_permissions_of_an_ordinary_file(tmp_path):
    ordinary = tmp_path / "ordinary.txt"
    ordinary.write_text("x")
    with atomic_path(tmp_path / "atomic.txt") as tmp:
        tmp.write_text("x")
    assert (tmp_path / "atomic.txt").stat().st_mode == ordinary.stat().st_mode


def test_atomic_path_leaves_nothing_when_the_block_fails(tmp_path):
    target = tmp_path / "result.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash mid-write")
    assert target.read_text() == "old"
    assert list(tmp_path.iterdir()) == [target]


def test_sha256_file_matches_hashlib(tmp_path):
    data = bytes(range(256)) * 5000
    path = tmp_path / "blob.bin"
    path.write_bytes(data)
    assert sha256_file(path, chunk_bytes=1000) == hashlib.sha256(data).hexdigest()


def test_write_verified_writes_the_payload_then_a_record_of_its_sha256(tmp_path):
    path = tmp_path / "sub" / "payload.bin"
    digest = write_verified(path, lambda tmp: tmp.write_bytes(b"abc" * 1000), fields={"key": "k1"})
    assert path.read_bytes() == b"abc" * 1000 and record_path(path) == tmp_path / "sub" / "payload.bin.sha256"
    expected = hashlib.sha256(b"abc" * 1000).hexdigest()
    assert digest == expected
    assert json.loads(record_path(path).read_text()) == {"key": "k1", "sha256": expected, "bytes": 3000}
    assert read_verified(path, expect={"key": "k1"}) == {"key": "k1", "sha256": expected, "bytes": 3000}
    assert sorted(p.name for p in path.parent.iterdir()) == ["payload.bin", "payload.bin.sha256"]


def test_a_failed_write_leaves_no_payload_and_no_record(tmp_path):
    path = tmp_path / "payload.bin"
    write_verified(path, lambda tmp: tmp.write_bytes(b"old"))

    def crash(tmp):
        tmp.write_bytes(b"half")
        raise RuntimeError("crash mid-write")

    with pytest.raises(RuntimeError):
        write_verified(path, crash)
    assert path.read_bytes() == b"old" and not record_path(path).exists()  # the old record went first
    with pytest.raises(DataError, match=r"has no checksum record payload.bin.sha256: it was not completely written"):
        read_verified(path)


def test_read_verified_names_the_file_and_what_is_wrong(tmp_path):
    path = tmp_path / "entry.npz"
    record = tmp_path / "entry.json"
    write_verified(path, lambda tmp: tmp.write_bytes(b"x" * 64), fields={"key": "a"}, record=record)
    with pytest.raises(DataError, match=rf"^cache entry {path}: its record entry.json holds key='a', expected 'b'$"):
        read_verified(path, expect={"key": "b"}, record=record, what="cache entry")
    path.write_bytes(b"x" * 63)
    actual, written = hashlib.sha256(b"x" * 63).hexdigest(), hashlib.sha256(b"x" * 64).hexdigest()
    with pytest.raises(DataError, match=rf"^file {path} is truncated or was modified: its sha256 is "
                                        rf"{actual[:12]}\.\.\., entry.json says {written[:12]}\.\.\.$"):
        read_verified(path, record=record)
    record.write_text("{not json")
    with pytest.raises(DataError, match=r"its record entry.json is not valid JSON"):
        read_verified(path, record=record)
    record.write_text(json.dumps({"key": "a"}))
    with pytest.raises(DataError, match=r"its record entry.json holds no sha256"):
        read_verified(path, record=record)
    path.unlink()
    with pytest.raises(DataError, match=rf"^file {path} does not exist$"):
        read_verified(path, record=record)


def test_a_record_holding_only_the_hex_digest_is_read(tmp_path):
    """Checkpoint sidecars written before the records were JSON hold the bare digest."""
    path = tmp_path / "model.pt"
    path.write_bytes(b"weights")
    record_path(path).write_text(hashlib.sha256(b"weights").hexdigest() + "\n")
    assert read_verified(path) == {"sha256": hashlib.sha256(b"weights").hexdigest()}
    record_path(path).write_text(hashlib.sha256(b"other").hexdigest() + "\n")
    with pytest.raises(DataError, match="is truncated or was modified"):
        read_verified(path)
