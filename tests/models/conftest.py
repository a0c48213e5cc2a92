"""Fixtures of the model tests."""

import urllib.error

import pytest

from workbench.models import weights as weights_module


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """An empty torch hub folder and a downloader that fails like a machine without network.

    ``TORCH_HOME`` is ``tmp_path / "torch"``, so published files are expected in
    ``tmp_path / "torch" / "hub" / "checkpoints"``; returns the list of URLs asked for.
    """
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    calls = []

    def no_network(url, destination):
        calls.append(url)
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(weights_module, "_download_url", no_network)
    return calls
