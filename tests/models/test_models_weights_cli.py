"""``workbench models weights``: each model's weights source, local path and verification."""

import hashlib

import pytest

from workbench.cli import main
from workbench.models import weights as weights_module
from workbench.models.weights import WeightsSource, url_source, weights_source


@pytest.fixture
def hub(monkeypatch, tmp_path):
    """An empty torch hub folder."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    folder = tmp_path / "torch" / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    return folder


def _rows(capsys):
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "model\tstatus\tpath\tsource"
    return {line.split("\t")[0]: line.split("\t")[1:] for line in lines[1:] if not line.startswith("#")}


def test_sources_are_declared_without_building_networks():
    assert url_source("https://download.pytorch.org/models/resnet18-f37072fd.pth") == WeightsSource(
        filename="resnet18-f37072fd.pth", url="https://download.pytorch.org/models/resnet18-f37072fd.pth",
        sha256="f37072fd")
    assert url_source("https://example.org/w/plain.pth").sha256 is None
    resnet = weights_source("resnet18")  # torchvision's IMAGENET1K_V1, the study's weights
    assert resnet.url == "https://download.pytorch.org/models/resnet18-f37072fd.pth"
    snn = weights_source("spikingmobilenet")
    assert snn.url is None and snn.sha256 is None and snn.filename == "spikingmobilenet_imagenet.pth"
    assert "1oRplrHdJDnONhYWRvP5VP0sU4G8NuMfq" in snn.origin
    assert weights_source("small_cnn") is None


def test_listing_says_absent_present_verified_and_mismatch(hub, capsys, monkeypatch):
    content = b"published weights"
    digest = hashlib.sha256(content).hexdigest()
    url = f"https://example.org/models/cornet_z-{digest[:8]}.pth"
    monkeypatch.setitem(weights_module._DECLARED, "cornet_z", url_source(url))

    assert main(["models", "weights", "cornet_z", "sew_resnet8", "small_cnn"]) == 0
    out = capsys.readouterr().out
    assert "# 1 model(s) declare no published weights: small_cnn" in out
    rows = {line.split("\t")[0]: line.split("\t")[1:] for line in out.splitlines()[1:-1]}
    assert rows["cornet_z"] == ["absent", str(hub / f"cornet_z-{digest[:8]}.pth"), f"{url} (sha256 {digest[:8]}...)"]
    assert rows["sew_resnet8"][:2] == ["absent", str(hub / "sew_resnet8_imagenet.pth")]
    assert rows["sew_resnet8"][2].startswith("by hand: https://drive.google.com/drive/folders/")

    (hub / f"cornet_z-{digest[:8]}.pth").write_bytes(content)
    (hub / "sew_resnet8_imagenet.pth").write_bytes(b"any")
    assert main(["models", "weights", "cornet_z", "sew_resnet8"]) == 0
    rows = _rows(capsys)
    assert rows["cornet_z"][0] == "verified" and rows["sew_resnet8"][0] == "present"

    (hub / f"cornet_z-{digest[:8]}.pth").write_bytes(content + b"\0")  # corrupted
    assert main(["models", "weights", "cornet_z"]) == 1
    captured = capsys.readouterr()
    actual = hashlib.sha256(content + b"\0").hexdigest()
    assert f"cornet_z\tHASH MISMATCH (sha256 {actual[:16]}..., published {digest[:8]})\t" in captured.out
    assert f"1 file(s) differ from their published sha256: {hub / f'cornet_z-{digest[:8]}.pth'}" in captured.err


def test_listing_by_family_and_unknown_names(hub, capsys):
    assert main(["models", "weights", "--family", "snn"]) == 0
    rows = _rows(capsys)
    assert {"sew_resnet152", "wide_sew_resnet14", "sew_resnext20", "spikingmobilenet"} <= set(rows)
    assert all(status == "absent" for status, *_ in rows.values())
    assert main(["models", "weights", "sew_resnet81"]) == 1
    assert "unknown model 'sew_resnet81'" in capsys.readouterr().err
