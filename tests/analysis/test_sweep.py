"""End-to-end sweeps on tiny registered models and a synthetic dataset of 24 stimuli."""

import hashlib
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from torch import nn
from analysis_factory import registered_models, toy_dataset

from workbench.activations import extract, extract_stats
from workbench.analysis import Protocol, load_scores, model_scores
from workbench.analysis import sweep
from workbench.analysis.sweeps import dataset_identity
from workbench.errors import ValidationError
from workbench.metrics import cka, compare_rdms, rdm, rsa, svcca, tsvd_regression, zscore_features
from workbench.models import Architecture, Preprocessing

pytestmark = pytest.mark.usefixtures("isolated_cache")

N_STIMULI = 24
PROTOCOL = Protocol(svcca_n_components=3, tsvd_n_components=4, batch_size=8)
CALLS = {"tiny_cnn": 0, "broken": 0}


def _tiny_cnn(pretrained=False):
    CALLS["tiny_cnn"] += 1
    net = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2), nn.Conv2d(6, 8, 3),
                        nn.ReLU(), nn.Flatten(), nn.Linear(8 * 6 * 6, 10))
    return Architecture(net, ("0", "1", "3", "4", "6"), Preprocessing(16))


def _tiny_snn(pretrained=False):
    from spikingjelly.activation_based import layer, neuron

    net = nn.Sequential(layer.Conv2d(3, 6, 3, padding=1), neuron.IFNode(v_threshold=0.2),
                        layer.AvgPool2d(2), layer.Conv2d(6, 6, 3), neuron.IFNode(v_threshold=0.2),
                        layer.Flatten(), layer.Linear(6 * 6 * 6, 10))
    return Architecture(net, ("0", "1", "2", "3", "4", "6"), Preprocessing(16), time_steps=4)


def _broken(pretrained=False):
    CALLS["broken"] += 1
    raise RuntimeError("no weights here")


@pytest.fixture(scope="module")
def tiny_models():
    with registered_models({"test_tiny_cnn": ("cnn", _tiny_cnn), "test_tiny_snn": ("snn", _tiny_snn),
                            "test_broken": ("cnn", _broken)}) as names:
        yield names


@pytest.fixture(scope="module")
def dataset():
    """A response region with repeats (V1) and an RDM-only region (IT), 24 stimuli."""
    return toy_dataset("toy", region="V1", species="mouse", n_stimuli=N_STIMULI, n_neuroids=10, n_repeats=4,
                       noise=2.0, rdm_features=30, seed=0)


@pytest.fixture(scope="module")
def swept(tiny_models, dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep")
    scores = sweep(["test_tiny_cnn", "test_tiny_snn"], [dataset], protocol=PROTOCOL, output_dir=out,
                   activation_cache=False, progress=False)
    return scores, out


def test_saved_scores_equal_the_metrics_library_on_extracted_features(swept, dataset):
    scores, out = swept
    saved = load_scores(out)
    xr.testing.assert_identical(saved, scores)
    from workbench.models import create

    y = dataset.responses("V1").values
    published = dataset.rdm("IT").values
    for name, layer_index in (("test_tiny_cnn", 3), ("test_tiny_snn", 1)):
        model = create(name, seed=0)
        layer = model.layers[layer_index]
        time_steps = 4 if model.is_spiking else None
        x = zscore_features(extract(model, dataset.stimuli, [layer], time_steps=time_steps)[layer].values)
        expected = {
            "svcca": svcca(x, y, n_components=3, reduce_y=False),
            "tsvd_regression": tsvd_regression(x, y, n_components=4, alpha=1.0),
            "rsa": rsa(x, y),
            "cka": cka(x, y),
        }
        cell = saved["score"].sel(model=name, layer=layer_index)
        assert saved["layer_name"].sel(model=name, layer=layer_index).item() == layer
        for metric, value in expected.items():
            assert float(cell.sel(region="toy/V1", metric=metric)) == pytest.approx(value, rel=1e-4, abs=1e-6)
        assert float(cell.sel(region="toy/IT", metric="rsa")) == pytest.approx(compare_rdms(rdm(x), published), rel=1e-4)


def test_rdm_only_regions_get_rsa_only_and_metadata_is_recorded(swept, dataset):
    scores, out = swept
    applicable = scores["applicable"].sel(region="toy/IT")
    assert applicable.sel(metric="rsa") and not applicable.sel(metric=["svcca", "tsvd_regression", "cka"]).any()
    assert scores["score"].sel(region="toy/IT", metric=["svcca", "tsvd_regression", "cka"]).isnull().all()
    assert scores["applicable"].sel(region="toy/V1").all()
    # ceilings where the dataset defines one, NaN elsewhere
    assert float(scores["ceiling"].sel(region="toy/V1", metric="rsa")) == pytest.approx(dataset.ceiling("V1", "rsa"))
    assert float(scores["ceiling"].sel(region="toy/V1", metric="tsvd_regression")) == pytest.approx(
        dataset.ceiling("V1", "tsvd_regression"))
    assert np.isnan(scores["ceiling"].sel(region="toy/V1", metric="cka"))
    assert list(scores["family"].values) == ["cnn", "snn"]
    assert list(scores["time_steps"].values) == [0, 4]
    assert list(scores["weights"].values) == ["random(seed=0)"] * 2
    assert list(scores["error"].values) == ["", ""]
    assert scores["stimulus_set"].sel(region="toy/V1").item() == dataset.stimuli.fingerprint()
    assert scores["data_version"].sel(region="toy/IT").item() == dataset_identity(dataset)["content"]
    # the CNN has 5 layers, the SNN 6: the CNN's 6th position is absent, not zero
    assert scores["layer_name"].sel(model="test_tiny_cnn", layer=5).item() == ""
    assert scores["score"].sel(model="test_tiny_cnn", layer=5).isnull().all()
    np.testing.assert_allclose(scores["relative_depth"].sel(model="test_tiny_snn"), np.arange(6) / 5)
    assert Protocol.from_json(scores.attrs["protocol"]) == PROTOCOL
    assert scores.attrs["seed"] == 0 and "torch" in scores.attrs["versions"]
    assert (out / "scores.csv").exists()
    assert np.isfinite(model_scores(scores).values).all()


def test_a_failing_model_is_reported_and_the_sweep_goes_on(tiny_models, dataset, tmp_path):
    store = tmp_path / "store"
    before = dict(CALLS)
    scores = sweep(["test_broken", "test_tiny_cnn"], [dataset], protocol=PROTOCOL, store_dir=store,
                   activation_cache=False, progress=False)
    assert scores["error"].sel(model="test_broken").item() == "toy: RuntimeError: no weights here"
    assert scores["family"].sel(model="test_broken").item() == "cnn"
    assert scores["score"].sel(model="test_broken").isnull().all()
    assert scores["error"].sel(model="test_tiny_cnn").item() == ""
    assert scores["score"].sel(model="test_tiny_cnn", region="toy/V1").notnull().any()
    assert np.isnan(model_scores(scores).sel(model="test_broken")).all()
    # a rerun reuses the finished unit and retries only the failed one
    again = sweep(["test_broken", "test_tiny_cnn"], [dataset], protocol=PROTOCOL, store_dir=store,
                  activation_cache=False, progress=False)
    assert CALLS["tiny_cnn"] - before["tiny_cnn"] == 1
    assert CALLS["broken"] - before["broken"] == 2
    xr.testing.assert_identical(again.drop_attrs(), scores.drop_attrs())
    # a changed protocol never reuses a stored unit
    sweep(["test_tiny_cnn"], [dataset], protocol=PROTOCOL.replace(alpha=2.0), store_dir=store,
          activation_cache=False, progress=False)
    assert CALLS["tiny_cnn"] - before["tiny_cnn"] == 2


def test_bootstrap_intervals_and_per_step_scores(tiny_models, dataset):
    protocol = PROTOCOL.replace(bootstrap=8, time_resolved=True)
    scores = sweep(["test_tiny_cnn", "test_tiny_snn"], [dataset], protocol=protocol,
                   activation_cache=False, progress=False)
    score, low, high = scores["score"], scores["ci_low"], scores["ci_high"]
    assert (score.notnull() == low.notnull()).all() and (score.notnull() == high.notnull()).all()
    finite = score.notnull()
    assert bool((low <= score + 1e-12).where(finite, True).all()) and bool((high >= score - 1e-12).where(finite, True).all())
    assert bool((high > low).where(finite, True).all())
    per_step = scores["score_per_step"]
    assert per_step.sizes["time_step"] == 4
    assert per_step.sel(model="test_tiny_cnn").isnull().all()
    from workbench.models import create

    model = create("test_tiny_snn", seed=0)
    steps = extract(model, dataset.stimuli, ["4"], time_steps=4, time_reduce=None)["4"]
    x = zscore_features(steps.isel(time_step=2).values)
    value = float(per_step.sel(model="test_tiny_snn", layer=4, region="toy/V1", metric="cka", time_step=2))
    assert value == pytest.approx(cka(x, dataset.responses("V1").values), rel=1e-4)


def test_sweep_rejects_bad_arguments(tiny_models, dataset):
    with pytest.raises(ValidationError, match=r"metrics \['psnr'\] are unknown"):
        sweep(["test_tiny_cnn"], [dataset], ["psnr"], protocol=PROTOCOL)
    with pytest.raises(ValidationError, match="models is empty"):
        sweep([], [dataset], protocol=PROTOCOL)
    with pytest.raises(ValidationError, match="models has duplicates"):
        sweep(["test_tiny_cnn", "test_tiny_cnn"], [dataset], protocol=PROTOCOL)
    with pytest.raises(ValidationError, match="protocol must be a Protocol"):
        sweep(["test_tiny_cnn"], [dataset], protocol={"zscore": True})


MIRROR = Path(__file__).resolve().parents[2].parent / "shared" / "data"


@pytest.mark.slow
@pytest.mark.skipif(not (MIRROR / "SHA256SUMS").exists(), reason="no local mirror of the shared neural data")
def test_sweep_on_real_data_from_the_mirror(tiny_models, tmp_path, monkeypatch):
    """Real recordings: Kriegeskorte 92 (RDM-only regions) and Cowley V4 (responses)."""
    from workbench.data import load
    from workbench.models import create

    monkeypatch.setenv("WORKBENCH_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("WORKBENCH_DATA_MIRROR", str(MIRROR))
    names = ["kriegeskorte2008_92", "cowley2023_v4"]
    scores = sweep(["test_tiny_cnn"], names, protocol=Protocol(), activation_cache=False, progress=False)
    assert list(scores["region"].values) == ["kriegeskorte2008_92/IT (monkey)", "kriegeskorte2008_92/IT (human)",
                                             "cowley2023_v4/V4"]
    assert list(scores["species"].values) == ["macaque", "human", "macaque"]
    krieg = scores.sel(region=["kriegeskorte2008_92/IT (monkey)", "kriegeskorte2008_92/IT (human)"])
    assert krieg["applicable"].sel(metric="rsa").all() and not krieg["applicable"].sel(metric="cka").any()
    cowley = load("cowley2023_v4")
    model = create("test_tiny_cnn", seed=0)
    x = zscore_features(extract(model, cowley.stimuli, ["4"])["4"].values)
    y = cowley.responses("V4").values
    cell = scores["score"].sel(model="test_tiny_cnn", layer=3, region="cowley2023_v4/V4")
    assert float(cell.sel(metric="tsvd_regression")) == pytest.approx(tsvd_regression(x, y, 40, 1.0), rel=1e-4)
    assert float(cell.sel(metric="svcca")) == pytest.approx(svcca(x, y, 40, reduce_y=False), rel=1e-4)
    assert float(scores["ceiling"].sel(region="cowley2023_v4/V4", metric="rsa")) == pytest.approx(
        cowley.ceiling("V4", "rsa"))
    pinned = sorted((f.path, f.sha256) for f in cowley.manifest.files)
    assert scores["data_version"].sel(region="cowley2023_v4/V4").item() == hashlib.sha256(repr(pinned).encode()).hexdigest()


def test_a_subsample_that_cannot_be_scored_gives_a_nan_interval_with_its_reason(tiny_models, dataset):
    # 9 + 10 canonical dimensions fit 24 stimuli (<= 23) but not the 19 of an 80% subsample (> 18)
    protocol = PROTOCOL.replace(svcca_n_components=9, bootstrap=3)
    scores = sweep(["test_tiny_cnn"], [dataset], ["svcca"], protocol=protocol, activation_cache=False, progress=False)
    v1 = scores.sel(region="toy/V1", metric="svcca", model="test_tiny_cnn")
    assert v1["score"].notnull().all() and v1["ci_low"].isnull().all() and v1["ci_high"].isnull().all()
    # the cell has its score, only its interval is missing: a warning, not an error (issue 18, point 4)
    assert "bootstrap subsample of 19 stimuli" in scores["warning"].sel(model="test_tiny_cnn").item()
    assert scores["error"].sel(model="test_tiny_cnn").item() == ""


def test_failed_units_and_inapplicable_metrics_are_recorded_once(tiny_models, dataset):
    """Issue 19: a unit that raised is listed in attrs; SVCCA that cannot fit the stimuli is not
    a failure of the model, and is noted once per region (not once per layer or model)."""
    import json

    from workbench.analysis.sweeps import failed_units

    # 15 + 10 (unreduced neuroids) canonical variables do not fit 24 - 1 = 23 dimensions
    protocol = PROTOCOL.replace(svcca_n_components=15)
    scores = sweep(["test_broken", "test_tiny_cnn", "test_tiny_snn"], [dataset], protocol=protocol,
                   activation_cache=False, progress=False)
    assert failed_units(scores) == [{"model": "test_broken", "dataset": "toy", "error": "RuntimeError: no weights here"}]
    assert not bool(scores["applicable"].sel(region="toy/V1", metric="svcca"))
    assert scores["score"].sel(region="toy/V1", metric="svcca").isnull().all()
    assert scores["score"].sel(model="test_tiny_cnn", region="toy/V1", metric="cka").notnull().any()
    assert list(scores["error"].sel(model=["test_tiny_cnn", "test_tiny_snn"]).values) == ["", ""]
    notes = json.loads(scores.attrs["notes"])
    assert len(notes) == 1 and notes[0].startswith("toy/V1: svcca not applicable: 15 + 10 (one per neuroid")
    with pytest.raises(ValidationError, match="unknown model 'test_tiny_cn'; did you mean 'test_tiny_cnn'"):
        sweep(["test_tiny_cn"], [dataset], protocol=PROTOCOL)


def test_a_subset_of_layers_keeps_their_depth_in_the_whole_model(tiny_models, dataset):
    full = sweep(["test_tiny_cnn"], [dataset], ["cka"], protocol=PROTOCOL, activation_cache=False, progress=False)
    part = sweep(["test_tiny_cnn"], [dataset], ["cka"], protocol=PROTOCOL, activation_cache=False, progress=False,
                 layers=["4", "1"])
    names = list(part["layer_name"].sel(model="test_tiny_cnn").values)
    assert names == ["1", "4"]  # in the model's order
    np.testing.assert_allclose(part["relative_depth"].sel(model="test_tiny_cnn").values, [0.25, 0.75])
    np.testing.assert_allclose(part["score"].sel(model="test_tiny_cnn").values,
                               full["score"].sel(model="test_tiny_cnn", layer=[1, 3]).values, rtol=1e-6)


def test_undeclared_layer_specs_are_scored_after_the_declared_ones_with_nan_depth(tiny_models, dataset):
    from workbench.analysis import best_layer, score_layer
    from workbench.models import create

    # "6:input" (the classifier's input) and "5" (the Flatten) are modules the model does not declare
    layers = ["6:input", "4", "5"]
    scores = sweep(["test_tiny_cnn"], [dataset], ["cka", "rsa"], protocol=PROTOCOL, activation_cache=False,
                   progress=False, layers=layers)
    names = list(scores["layer_name"].sel(model="test_tiny_cnn").values)
    assert names == ["4", "6:input", "5"]  # declared first (model's order), then the others as given
    np.testing.assert_allclose(scores["relative_depth"].sel(model="test_tiny_cnn").values, [0.75, np.nan, np.nan])
    model = create("test_tiny_cnn", seed=0)
    stats = extract_stats(model, dataset.stimuli, ["6:input", "5"], cache=False)
    for position, layer in ((1, "6:input"), (2, "5")):
        expected = score_layer(stats[layer], dataset=dataset, region="V1", metrics=["cka", "rsa"], protocol=PROTOCOL)
        cell = scores["score"].sel(model="test_tiny_cnn", layer=position, region="toy/V1")
        for metric, value in expected.items():
            assert float(cell.sel(metric=metric)) == pytest.approx(value, rel=1e-5, abs=1e-7), (layer, metric)
    # the classifier's input is the flattened features: the same numbers as the Flatten's output
    np.testing.assert_allclose(scores["score"].sel(model="test_tiny_cnn", layer=1).values,
                               scores["score"].sel(model="test_tiny_cnn", layer=2).values, rtol=1e-6)
    best = best_layer(scores).sel(model="test_tiny_cnn", region="toy/V1")
    for metric in ("cka", "rsa"):  # an undeclared best layer has no depth, never 0
        cell = best.sel(metric=metric)
        assert np.isnan(cell["relative_depth"]) == (str(cell["layer_name"].values) != "4")


def test_a_layer_spec_absent_from_a_model_is_refused_before_any_unit(tiny_models, dataset, tmp_path):
    store = tmp_path / "store"
    with pytest.raises(ValidationError, match=r"^--layers: layer spec '6:inptu' is not valid; expected "
                                              r"\"<dotted module path>\" \(its output\), \"<path>:input\""):
        sweep(["test_tiny_cnn"], [dataset], ["cka"], protocol=PROTOCOL, store_dir=store, layers=["6:inptu"])
    # the SNN's neurons hold a surrogate-function module; the CNN has no such module
    with pytest.raises(ValidationError, match=r"^--layers \['1.surrogate_function'\]: no such module in "
                                              r"test_tiny_cnn; expected layer specs on its named_modules\(\) "
                                              r"paths: \"<dotted module path>\""):
        sweep(["test_tiny_snn", "test_tiny_cnn"], [dataset], ["cka"], protocol=PROTOCOL, store_dir=store,
              layers=["1", "1.surrogate_function"])
    assert not store.exists()
