"""A sweep on an untidy recording keeps every metric it can compute (issue 19, point 7).

The responses of region "dup" list one unit twice (rank 10 of 11 after centring); region
"flat" has a neuroid that never varies. Neither is reduced by the protocol (not Allen data).
"""

import logging

import numpy as np
import pytest
from torch import nn

from workbench.activations import extract_stats
from workbench.analysis import Protocol, sweep
from workbench.data.assemblies import make_assembly
from workbench.data.dataset import NeuralDataset, RegionData
from workbench.data.manifest import Manifest
from workbench.data.stimuli import StimulusSet
from workbench.metrics import cka, rsa, svcca
from workbench.models import Architecture, Preprocessing, create, list_models, register_model
from workbench.models import registry as model_registry

N = 24
PROTOCOL = Protocol(svcca_n_components=3, tsvd_n_components=4, batch_size=8)


def _tiny(pretrained=False):
    net = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2), nn.Flatten(),
                        nn.Linear(6 * 8 * 8, 12))
    return Architecture(net, ("1", "4"), Preprocessing(16))


@pytest.fixture(scope="module")
def tiny_model():
    list_models()
    register_model("test_untidy_cnn", family="cnn")(_tiny)
    yield "test_untidy_cnn"
    model_registry._REGISTRY.pop("test_untidy_cnn")


@pytest.fixture(scope="module")
def recording():
    rng = np.random.default_rng(4)
    images = rng.integers(0, 256, size=(N, 16, 16, 3), dtype=np.uint8)
    ids = [f"img{i:02d}" for i in range(N)]
    signal = images.reshape(N, -1).astype(float) @ rng.normal(size=(16 * 16 * 3, 10)) / 255
    responses = {"dup": np.hstack([signal, signal[:, 4:5]]),
                 "flat": np.hstack([signal, np.full((N, 1), 0.7)])}
    regions = [RegionData(name=name, species="macaque", responses=make_assembly(
        values, stimulus_ids=ids, neuroid_ids=[f"u{i}" for i in range(values.shape[1])], region=name,
        species="macaque", dataset="untidy", where="untidy")) for name, values in responses.items()]
    manifest = Manifest(name="untidy", description="untidy", species="macaque", regions=("dup", "flat"),
                        stimuli={"count": N}, files=(), license="-", citation="-", loader="none")
    return NeuralDataset(manifest, StimulusSet.from_arrays(list(images), ids), regions), signal


def test_rank_deficient_region_is_scored_and_its_rank_recorded(tiny_model, recording, caplog):
    dataset, signal = recording
    with caplog.at_level(logging.WARNING, logger="workbench.analysis.sweeps"):
        scores = sweep([tiny_model], [dataset], protocol=PROTOCOL, activation_cache=False,
                       progress=False)
    stats = extract_stats(create(tiny_model, seed=PROTOCOL.seed), dataset.stimuli, batch_size=8,
                          cache=False)
    dup = scores.sel(model=tiny_model, region="untidy/dup")
    for i, layer in enumerate(("1", "4")):
        x = stats[layer].zscored()
        cell = dup.sel(layer=i)
        # the unit listed twice is dropped by the rank reduction: SVCCA equals that without it
        expected = svcca(x, signal, n_components=3, reduce_y=False)
        assert float(cell["score"].sel(metric="svcca")) == pytest.approx(expected, abs=1e-9)
        assert int(cell["svcca_rank_y"]) == 10 and int(cell["svcca_rank_x"]) == 3
        assert float(cell["score"].sel(metric="rsa")) == pytest.approx(rsa(x, dataset.responses("dup").values), abs=1e-9)
        assert np.isfinite(cell["score"].values).all()
    reduced = [r for r in caplog.records if "SVCCA reduced a rank-deficient side" in r.getMessage()]
    assert len(reduced) == 1 and "neural side rank 10 of 11" in reduced[0].getMessage()

    # a constant neuroid: TSVD-regression (a Pearson r per neuroid) cannot score it, CKA can
    flat = scores.sel(model=tiny_model, region="untidy/flat")
    assert np.isnan(flat["score"].sel(metric="tsvd_regression")).all()
    assert "tsvd_regression: Y: column 10 is constant" in str(scores["error"].sel(model=tiny_model).values)
    for i, layer in enumerate(("1", "4")):
        x = stats[layer].zscored()
        assert float(flat["score"].sel(layer=i, metric="cka")) == pytest.approx(
            cka(x, dataset.responses("flat").values), abs=1e-9)
        assert int(flat["svcca_rank_y"].sel(layer=i)) == 10  # the constant column adds nothing
