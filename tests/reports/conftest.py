"""Synthetic score Datasets that follow the sweep's scores schema (no models, no data)."""

import json
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

MODELS = {"sew_resnet18": ("snn", 4), "spiking_vgg": ("snn", 3), "resnet18": ("cnn", 5), "deit_tiny": ("vit", 3)}
REGIONS = {"cowley2023_v4/V4": ("cowley2023_v4", "macaque"), "kriegeskorte2008_92/IT (monkey)": ("kriegeskorte2008_92", "macaque")}
METRICS = ["rsa", "cka", "svcca"]
N_STEPS = 4


def make_scores(seed: int = 0) -> xr.Dataset:
    """A scores Dataset with models of different depths, NaN where a layer is absent."""
    rng = np.random.default_rng(seed)
    models = list(MODELS)
    n_layers = max(n for _, n in MODELS.values())
    shape = (len(models), n_layers, len(REGIONS), len(METRICS))
    score = rng.uniform(0.05, 0.9, shape)
    layer_name = np.full((len(models), n_layers), "", dtype=object)
    depth = np.full((len(models), n_layers), np.nan)
    for i, (family, n) in enumerate(MODELS.values()):
        score[i, n:] = np.nan
        layer_name[i, :n] = [f"layer{k}" for k in range(n)]
        depth[i, :n] = np.arange(n) / (n - 1)
    # the RDM-only region: only rsa applicable
    applicable = np.ones((len(REGIONS), len(METRICS)), bool)
    applicable[1, 1:] = False
    score[:, :, 1, 1:] = np.nan
    per_step = np.full(shape + (N_STEPS,), np.nan)
    for i, (family, n) in enumerate(MODELS.values()):
        if family == "snn":
            per_step[i, :n] = score[i, :n, ..., None] * np.linspace(0.5, 1.0, N_STEPS)
    dims4 = ("model", "layer", "region", "metric")
    return xr.Dataset(
        {
            "score": (dims4, score),
            "ci_low": (dims4, score - 0.05),
            "ci_high": (dims4, score + 0.05),
            "score_per_step": (dims4 + ("time_step",), per_step),
            "layer_name": (("model", "layer"), layer_name.astype(str)),
            "relative_depth": (("model", "layer"), depth),
            "applicable": (("region", "metric"), applicable),
            "ceiling": (("region", "metric"), np.where(applicable, 0.95, np.nan)),
            "error": (("model",), np.array(["", "", "", ""])),
        },
        coords={
            "model": models,
            "family": ("model", [f for f, _ in MODELS.values()]),
            "weights": ("model", ["random(seed=0)"] * len(models)),
            "layer": np.arange(n_layers),
            "region": list(REGIONS),
            "dataset": ("region", [d for d, _ in REGIONS.values()]),
            "species": ("region", [s for _, s in REGIONS.values()]),
            "metric": METRICS,
            "time_step": np.arange(N_STEPS),
        },
        attrs={"protocol": json.dumps({"seed": 0}), "versions": json.dumps({"workbench": "0.1.0"}), "seed": 0, "created": "2026-01-01T00:00:00"},
    )


@pytest.fixture
def scores() -> xr.Dataset:
    return make_scores()


N_TINY_STIMULI = 16


@pytest.fixture
def isolated_caches(tmp_path, monkeypatch):
    """Data and activation caches inside the test's tmp dir (also seen by notebook kernels)."""
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("WORKBENCH_DATA", str(tmp_path / "data_cache"))
    return tmp_path


def write_tiny_dataset(folder) -> Path:
    """A 16-image recording (8 neuroids x 4 repeats, ``loader: local``); returns its manifest."""
    import yaml
    from PIL import Image

    rng = np.random.default_rng(0)
    root = folder / "tiny"
    (root / "images").mkdir(parents=True)
    for i in range(N_TINY_STIMULI):
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(root / "images" / f"img{i:02d}.png")
    signal = rng.gamma(2.0, size=(N_TINY_STIMULI, 8, 1))
    np.save(root / "responses.npy", signal + 0.2 * rng.normal(size=(N_TINY_STIMULI, 8, 4)))
    manifest = {
        "name": "tiny_v1", "description": "synthetic test recording", "species": "macaque",
        "regions": ["V1"], "stimuli": {"count": N_TINY_STIMULI}, "license": "CC0",
        "citation": "Synthetic data written by the test suite.", "loader": "local", "root": "tiny",
        "files": [{"path": "responses.npy"}],
        "options": {"responses": "responses.npy", "images": "images", "dims": ["stimulus", "neuroid", "repetition"]},
    }
    path = folder / "tiny_v1.yaml"
    path.write_text(yaml.safe_dump(manifest))
    return path


@pytest.fixture
def tiny_dataset(tmp_path):
    return write_tiny_dataset(tmp_path)
