"""Fixtures shared by the analysis tests."""

import pytest


@pytest.fixture
def isolated_cache(tmp_path, monkeypatch):
    """An empty activation cache for the test (``$WORKBENCH_CACHE`` under its tmp_path)."""
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path / "cache"))
