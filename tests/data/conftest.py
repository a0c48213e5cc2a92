"""Fixtures for the data tests: an empty cache per test and the shared real-data mirror."""

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"


@pytest.fixture(autouse=True)
def data_cache(tmp_path, monkeypatch):
    """Every test gets its own empty data cache and no default mirror or extra manifests."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("WORKBENCH_DATA", str(cache))
    monkeypatch.delenv("WORKBENCH_DATA_MIRROR", raising=False)
    monkeypatch.delenv("WORKBENCH_MANIFESTS", raising=False)
    return cache


@pytest.fixture
def mirror():
    """The read-only real-data mirror (../shared/data); skipped when absent."""
    if not (SHARED_DATA / "SHA256SUMS").is_file():
        pytest.skip(f"real data mirror not found at {SHARED_DATA}")
    return SHARED_DATA
