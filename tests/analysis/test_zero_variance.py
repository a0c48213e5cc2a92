"""Stimuli whose pattern has zero variance in a layer: the Protocol's policy, the sweep's
scores, and the list of unscored cells (issue 19, point 2)."""


import numpy as np
import pandas as pd
import pytest
from torch import nn
from analysis_factory import registered_models

from workbench.analysis import Protocol, sweep, unscored_cells, unscored_summary
from workbench.analysis.cells import Target, score_region
from workbench.data.assemblies import make_assembly, make_rdm
from workbench.data.dataset import NeuralDataset, RegionData, build_region
from workbench.data.manifest import Manifest
from workbench.data.stimuli import StimulusSet
from workbench.errors import ValidationError
from workbench.metrics import GramStats, cka, compare_rdms, rdm, rsa, tsvd_regression, zscore_features
from workbench.models import Architecture, Preprocessing

pytestmark = pytest.mark.usefixtures("isolated_cache")

METRICS = ["svcca", "tsvd_regression", "rsa", "cka"]
FLAT = [2, 5, 11]  # stimuli whose layer pattern is constant


def _features(n=20, d=30, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    x[FLAT] = 0.0  # e.g. a spiking layer that emits no spike for these stimuli
    y = x[:, :8] @ rng.normal(size=(8, 6)) + rng.normal(size=(n, 6))
    return zscore_features(x), y


def _score(x, target, protocol, metrics=METRICS):
    counts = np.full(len(metrics), np.nan)
    messages = []
    out = score_region(GramStats.from_array(x), target, metrics, protocol, messages, zero_variance=counts)
    return dict(zip(metrics, out)), dict(zip(metrics, counts)), messages


# -- the protocol field ------------------------------------------------------------------------
def test_policy_is_a_protocol_field_in_the_hash_and_the_description():
    assert Protocol().zero_variance_stimuli == "unscored"
    exclude = Protocol(zero_variance_stimuli="exclude")
    assert exclude.fingerprint != Protocol().fingerprint
    assert Protocol.from_json(exclude.to_json()) == exclude
    line = next(l for l in exclude.describe().splitlines() if "zero_variance_stimuli" in l)
    assert "exclude" in line and "zero-variance" in line
    with pytest.raises(ValidationError, match=r"zero_variance_stimuli='drop' is not valid; expected one of \['exclude', 'unscored'\]"):
        Protocol(zero_variance_stimuli="drop")


# -- one region ------------------------------------------------------------------------------
def test_unscored_policy_leaves_rsa_nan_counts_the_stimuli_and_scores_the_other_metrics():
    x, y = _features()
    protocol = Protocol(svcca_n_components=3, tsvd_n_components=4)
    scores, counts, messages = _score(x, Target("responses", y, False), protocol)
    assert np.isnan(scores["rsa"]) and counts["rsa"] == len(FLAT)
    # CKA and TSVD regression are defined with constant rows: computed on every stimulus
    assert scores["cka"] == pytest.approx(cka(x, y), rel=1e-9)
    assert scores["tsvd_regression"] == pytest.approx(tsvd_regression(x, y, n_components=4), rel=1e-9)
    assert np.isnan(counts["cka"]) and np.isnan(counts["svcca"])  # only RSA is checked
    assert messages == []  # a protocol decision, not an error


def test_exclude_policy_scores_rsa_on_the_other_stimuli():
    x, y = _features()
    keep = np.setdiff1d(np.arange(len(x)), FLAT)
    protocol = Protocol(zero_variance_stimuli="exclude", svcca_n_components=3, tsvd_n_components=4)
    scores, counts, _ = _score(x, Target("responses", y, False), protocol)
    assert scores["rsa"] == pytest.approx(rsa(x[keep], y[keep]), rel=1e-9)
    assert counts["rsa"] == len(FLAT)
    assert scores["cka"] == pytest.approx(cka(x, y), rel=1e-9)  # on all stimuli


def test_exclude_policy_on_a_published_rdm_takes_its_rows_and_columns():
    x, y = _features()
    published = rdm(y)
    keep = np.setdiff1d(np.arange(len(x)), FLAT)
    scores, counts, _ = _score(x, Target("rdm", published, False), Protocol(zero_variance_stimuli="exclude"),
                               metrics=["rsa"])
    assert scores["rsa"] == pytest.approx(compare_rdms(rdm(x[keep]), published[np.ix_(keep, keep)]), rel=1e-9)
    assert counts["rsa"] == len(FLAT)
    unscored, counts, _ = _score(x, Target("rdm", published, False), Protocol(), metrics=["rsa"])
    assert np.isnan(unscored["rsa"]) and counts["rsa"] == len(FLAT)


def test_a_layer_without_flat_stimuli_counts_zero_and_is_scored_as_before():
    x, y = _features()
    rng = np.random.default_rng(1)
    x = zscore_features(rng.normal(size=x.shape))
    for policy in ("unscored", "exclude"):
        scores, counts, _ = _score(x, Target("responses", y, False), Protocol(zero_variance_stimuli=policy),
                                   metrics=["rsa"])
        assert scores["rsa"] == pytest.approx(rsa(x, y), rel=1e-9) and counts["rsa"] == 0


# -- a sweep -------------------------------------------------------------------------------------
N_STIMULI = 18
DARK = [1, 4, 9]  # black images: the gated layer gives them an all-zero pattern


class _Gate(nn.Module):
    """Zero the features of images with no spatial contrast (a silent spiking layer)."""

    def forward(self, x):
        contrast = x.flatten(2).std(2).amax(1) > 1e-3
        return x * contrast[:, None, None, None]


def _gated_cnn(pretrained=False):
    net = nn.Sequential(_Gate(), nn.Conv2d(3, 6, 3, padding=1, bias=False), nn.ReLU(), nn.Flatten(),
                        nn.Linear(6 * 16 * 16, 8))
    return Architecture(net, ("1", "2", "4"), Preprocessing(16))


@pytest.fixture(scope="module")
def gated_model():
    with registered_models({"test_gated_cnn": ("cnn", _gated_cnn)}) as names:
        yield names[0]


@pytest.fixture(scope="module")
def dark_dataset():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(N_STIMULI, 16, 16, 3), dtype=np.uint8)
    images[DARK] = 0
    ids = [f"img{i:02d}" for i in range(N_STIMULI)]
    stimuli = StimulusSet.from_arrays(list(images), ids)
    signal = images.reshape(N_STIMULI, -1).astype(float) @ rng.normal(size=(16 * 16 * 3, 6)) / 255
    repeats = signal[:, :, None] + rng.normal(scale=1.0, size=(N_STIMULI, 6, 4))
    assembly = make_assembly(repeats, stimulus_ids=ids, neuroid_ids=[f"n{i}" for i in range(6)],
                             region="V1", species="mouse", dataset="dark", where="dark")
    v1 = build_region(assembly, species="mouse", threshold=None)
    it = RegionData(name="IT", species="human", rdm=make_rdm(rdm(signal + rng.normal(size=signal.shape)),
                                                             stimulus_ids=ids, region="IT", species="human",
                                                             dataset="dark", where="dark"))
    manifest = Manifest(name="dark", description="dark", species="mouse, human", regions=("V1", "IT"),
                        stimuli={"count": N_STIMULI}, files=(), license="-", citation="-", loader="none")
    return NeuralDataset(manifest, stimuli, [v1, it])


def test_sweep_records_unscored_cells_and_lists_them(gated_model, dark_dataset, tmp_path):
    protocol = Protocol(svcca_n_components=3, tsvd_n_components=3, batch_size=6)
    scores = sweep([gated_model], [dark_dataset], protocol=protocol, activation_cache=False, progress=False,
                   output_dir=tmp_path)
    counts = scores["n_zero_variance"].sel(model=gated_model, metric="rsa")
    # the gated conv ("1", no bias) and the ReLU after it ("2") are silent for the dark images
    assert counts.sel(layer=[0, 1]).values.tolist() == [[len(DARK)] * 2] * 2
    assert counts.sel(layer=2).values.tolist() == [0, 0]  # the linear layer's bias varies across units
    rsa_cells = scores["score"].sel(model=gated_model, metric="rsa")
    assert rsa_cells.sel(layer=[0, 1]).isnull().all() and rsa_cells.sel(layer=2).notnull().all()
    assert scores["score"].sel(model=gated_model, metric="cka", region="dark/V1", layer=[0, 1]).notnull().all()
    assert scores["error"].sel(model=gated_model).item() == ""  # the policy is not an error
    # ... but a caveat of the model's scores (issue 18, point 4): its `warning` says so
    assert scores["warning"].sel(model=gated_model).item().startswith(
        "rsa: 4 cell(s) left unscored: some stimuli have a zero-variance pattern (protocol "
        "zero_variance_stimuli='unscored'), e.g. layer '1', dark/V1: 3 stimuli")
    cells = unscored_cells(scores)
    assert sorted(zip(cells.layer_name, cells.region)) == sorted(
        (layer, region) for layer in ("1", "2") for region in ("dark/V1", "dark/IT"))
    assert set(cells.status) == {"unscored"} and (cells.n_zero_variance == len(DARK)).all()
    text = unscored_summary(scores)
    assert text.splitlines()[0] == "4 unscored cell(s): the metric applies but gave no score (protocol zero_variance_stimuli='unscored'):"
    assert "  test_gated_cnn on dark/V1, rsa: 1, 2 (3/3 zero-variance stimuli)" in text.splitlines()
    frame = pd.read_csv(tmp_path / "scores.csv")
    rows = frame[(frame.metric == "rsa") & (frame.layer == 0)]
    assert (rows.n_zero_variance == len(DARK)).all() and rows.score.isna().all()
    # per cell (issue 30, point 14): the reason on the four unscored rows only, and no error anywhere
    flagged = frame[frame.warning.notna()]
    assert frame.error.isna().all() and len(flagged) == 4 and (flagged.metric == "rsa").all()
    assert flagged.warning.eq("3 stimuli have a zero-variance pattern, so RSA is undefined "
                              "(protocol zero_variance_stimuli='unscored')").all()

    excluded = sweep([gated_model], [dark_dataset], protocol=protocol.replace(zero_variance_stimuli="exclude"),
                     activation_cache=False, progress=False)
    from workbench.activations import extract
    from workbench.models import create

    keep = np.setdiff1d(np.arange(N_STIMULI), DARK)
    x = zscore_features(extract(create(gated_model), dark_dataset.stimuli, ["2"])["2"].values)
    y = dark_dataset.responses("V1").values
    value = float(excluded["score"].sel(model=gated_model, layer=1, region="dark/V1", metric="rsa"))
    assert value == pytest.approx(rsa(x[keep], y[keep]), rel=1e-4)
    cells = unscored_cells(excluded)
    assert set(cells.status) == {"excluded"} and len(cells) == 4
    assert "4 cell(s) scored without their zero-variance stimuli (protocol zero_variance_stimuli='exclude'):" in unscored_summary(excluded)
    assert excluded["error"].sel(model=gated_model).item() == ""  # every cell has its score
    assert excluded["warning"].sel(model=gated_model).item().startswith(
        "rsa: 4 cell(s) scored without the stimuli whose pattern has zero variance, e.g. layer '1'")


def test_summary_is_empty_when_every_cell_is_scored():
    from analysis_factory import make_scores

    assert unscored_summary(make_scores(seed=0)) == ""
    assert unscored_cells(make_scores(seed=0)).empty


def test_cells_of_failed_units_are_reported_as_failures_not_as_unscored():
    import json

    from analysis_factory import make_scores

    scores = make_scores(seed=0)
    scores["score"].loc[dict(model="resnet18", region="cowley2023_v4/V4")] = np.nan  # its unit raised
    scores["score"].loc[dict(model="alexnet", region="toy_mouse/VISp", metric="cka", layer=1)] = np.nan
    scores.attrs["failed_units"] = json.dumps([{"model": "resnet18", "dataset": "cowley2023_v4", "error": "x"}])
    cells = unscored_cells(scores)
    assert list(zip(cells.model, cells.layer, cells.region, cells.metric)) == [("alexnet", 1, "toy_mouse/VISp", "cka")]
    assert cells.reason.item() == "no score computed"
