"""A sweep on an untidy recording keeps every metric it can compute (issue 19, point 7).

The responses of region "dup" list one unit twice (rank 10 of 11 after centring); region
"flat" has a neuroid that never varies. Neither is reduced by the protocol (not Allen data).
Region "subjects" has only per-subject RDMs, whose RSA ceiling has lower and upper bounds.
"""

import logging

import numpy as np
import pytest
from torch import nn

from workbench.activations import extract_stats
from workbench.analysis import Protocol, sweep
from workbench.data.assemblies import make_assembly, make_rdm
from workbench.data.dataset import NeuralDataset, RegionData
from workbench.data.manifest import Manifest
from workbench.data.stimuli import StimulusSet
from workbench.metrics import cka, rdm, rsa, svcca
from workbench.metrics.ceiling import rsa_subject_ceiling
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
def swept(tiny_model, recording):
    return sweep([tiny_model], [recording[0]], protocol=PROTOCOL, activation_cache=False, progress=False)


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
    # per-subject RDMs: the RSA ceiling has a lower and an upper bound
    subject_rdms = np.stack([rdm(signal + rng.normal(scale=1.0, size=signal.shape)) for _ in range(4)])
    regions.append(RegionData(name="subjects", species="human", subject_rdms=subject_rdms, rdm=make_rdm(
        subject_rdms.mean(axis=0), stimulus_ids=ids, region="subjects", species="human", dataset="untidy",
        where="untidy")))
    manifest = Manifest(name="untidy", description="untidy", species="macaque",
                        regions=("dup", "flat", "subjects"),
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
        expected_rsa = rsa(x, dataset.responses("dup").values)
        assert float(cell["score"].sel(metric="rsa")) == pytest.approx(expected_rsa, abs=1e-9)
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


def test_ranks_and_ceiling_bounds_survive_saving(swept, tmp_path):
    from workbench.analysis import load_scores
    from workbench.analysis.results import save_scores

    save_scores(swept, tmp_path)
    loaded = load_scores(tmp_path)
    for name in ("ceiling_low", "svcca_rank_x", "svcca_rank_y"):
        np.testing.assert_array_equal(loaded[name].values, swept[name].values)
        assert loaded[name].dims == swept[name].dims


def test_ceiling_bounds_are_stored_and_drawn_as_a_band(swept, recording):
    from matplotlib.patches import Rectangle

    from workbench.reports.figures import plot_layer_curves

    dataset, _ = recording
    lower, upper = rsa_subject_ceiling(dataset.region_data("subjects").subject_rdms)
    assert dataset.ceiling_bounds("subjects", "rsa") == (lower, upper)
    assert dataset.ceiling_bounds("dup", "rsa") == (None, None)  # no repeats, no subjects
    cell = swept.sel(region="untidy/subjects", metric="rsa")
    assert float(cell["ceiling"]) == pytest.approx(upper)
    assert float(cell["ceiling_low"]) == pytest.approx(lower)
    assert np.isnan(swept["ceiling_low"].sel(region="untidy/dup")).all()

    fig = plot_layer_curves(swept, "rsa")
    panels = {ax.get_title(): ax for ax in fig.axes}
    bands = [p for p in panels["untidy/subjects"].patches if isinstance(p, Rectangle)
             and p.get_width() > 0 and p.get_facecolor()[3] < 1]
    # axhspan: a rectangle across the panel from the lower to the upper bound
    assert any(b.get_y() == pytest.approx(lower) and b.get_y() + b.get_height() == pytest.approx(upper)
               for b in bands)
    assert not [p for p in panels["untidy/dup"].patches if isinstance(p, Rectangle)]
    labels = [t.get_text() for legend in fig.legends for t in legend.get_texts()]
    assert "noise ceiling, lower to upper bound" in labels and "noise ceiling" in labels
