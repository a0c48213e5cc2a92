"""One number for one cell: score_layer (the Python entry point) equals the sweep's value."""

import numpy as np
import pytest
from torch import nn
from analysis_factory import registered_models, toy_dataset

from workbench.activations import extract, extract_stats
from workbench.analysis import Protocol, score_layer, sweep
from workbench.errors import ValidationError
from workbench.metrics import compare
from workbench.models import Architecture, Preprocessing, create

pytestmark = pytest.mark.usefixtures("isolated_cache")

N = 24
# 3 SVCCA dimensions: the toy region's 10 neuroids enter unreduced unless the dataset is listed
PROTOCOL = Protocol(svcca_n_components=3, tsvd_n_components=4, batch_size=8)


def _cell_cnn(pretrained=False):
    net = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2), nn.Conv2d(6, 8, 3),
                        nn.ReLU(), nn.Flatten(), nn.Linear(8 * 6 * 6, 10))
    return Architecture(net, ("0", "1", "3", "4", "6"), Preprocessing(16))


@pytest.fixture(scope="module")
def cell_model():
    with registered_models({"test_cell_cnn": ("cnn", _cell_cnn)}) as names:
        yield names[0]


def _dataset(name="toy_cells"):
    return toy_dataset(name, region="V4", species="macaque", n_stimuli=N, n_neuroids=10, n_repeats=4, noise=2.0,
                       rdm_features=30, seed=1)


@pytest.mark.parametrize("reduced", [False, True])
def test_score_layer_equals_the_sweep_cell_and_compare_defaults_do_not(cell_model, reduced):
    dataset = _dataset()
    protocol = PROTOCOL.replace(reduce_neural_for={dataset.name} if reduced else set())
    scores = sweep([cell_model], [dataset], protocol=protocol, activation_cache=False, progress=False)
    model = create(cell_model, seed=0)
    layer = "3"
    stats = extract_stats(model, dataset.stimuli, [layer], cache=False)[layer]
    features = extract(model, dataset.stimuli, [layer])[layer].values
    cell = scores["score"].sel(model=cell_model, layer=model.layers.index(layer), region=f"{dataset.name}/V4")
    for x in (stats, features):  # GramStats or the raw feature matrix
        values = score_layer(x, dataset=dataset, region="V4", protocol=protocol)
        assert list(values) == ["svcca", "tsvd_regression", "rsa", "cka"]
        for metric, value in values.items():
            assert value == pytest.approx(float(cell.sel(metric=metric)), rel=1e-5, abs=1e-7), metric
        # and its chance level is the sweep cell's (the same permutations, the same statistics)
        for name in ("null_mean", "null_p95", "p_value"):
            expected = scores[name].sel(model=cell_model, layer=model.layers.index(layer), region=f"{dataset.name}/V4")
            for metric in values:
                assert getattr(values, name)[metric] == pytest.approx(float(expected.sel(metric=metric)),
                                                                      rel=1e-5, abs=1e-7), (name, metric)
        assert all(null.shape == (protocol.permutations,) for null in values.null.values())
    # explicit Y and a dataset name give the same numbers
    explicit = score_layer(stats, dataset.responses("V4").values, dataset=dataset.name, protocol=protocol)
    assert explicit == pytest.approx(score_layer(stats, dataset=dataset, region="V4", protocol=protocol))
    # the protocol-free building block reduces Y by default: a different SVCCA number unless reduced
    plain = compare(stats.zscored(), dataset.responses("V4").values, ["svcca"], n_components=3)["svcca"]
    assert (plain == pytest.approx(float(cell.sel(metric="svcca")), rel=1e-6)) is reduced


def test_score_layer_on_an_rdm_region_scores_rsa_only(cell_model):
    dataset = _dataset()
    scores = sweep([cell_model], [dataset], protocol=PROTOCOL, activation_cache=False, progress=False)
    model = create(cell_model, seed=0)
    stats = extract_stats(model, dataset.stimuli, ["6"], cache=False)["6"]
    values = score_layer(stats, dataset=dataset, region="IT", protocol=PROTOCOL)
    assert np.isnan([values["svcca"], values["tsvd_regression"], values["cka"]]).all()
    assert list(values.null) == ["rsa"] and np.isnan(values.p_value["cka"])
    cell = scores.sel(model=cell_model, layer=4, region=f"{dataset.name}/IT", metric="rsa")
    assert values["rsa"] == pytest.approx(float(cell["score"]), rel=1e-6)
    assert values.p_value["rsa"] == pytest.approx(float(cell["p_value"]))


def test_score_layer_without_permutations_has_no_null(cell_model):
    dataset = _dataset()
    stats = extract_stats(create(cell_model, seed=0), dataset.stimuli, ["3"], cache=False)["3"]
    values = score_layer(stats, dataset=dataset, region="V4", protocol=PROTOCOL.replace(permutations=0))
    assert values.null == {} and np.isnan(list(values.p_value.values())).all()
    assert values == score_layer(stats, dataset=dataset, region="V4", protocol=PROTOCOL)  # the scores themselves


@pytest.mark.parametrize("region", ["V4", "IT"])  # responses and a published RDM
def test_score_layer_with_another_stimulus_count_is_one_error_before_scoring(region, caplog):
    dataset = _dataset()
    features = np.random.default_rng(0).random((N - 4, 12))
    with caplog.at_level("WARNING"), pytest.raises(ValidationError) as error:
        score_layer(features, dataset=dataset, region=region, protocol=PROTOCOL)
    message = str(error.value)
    assert f"X has {N - 4} stimuli" in message and f"{dataset.name}/{region} has {N}" in message
    assert "expected one row of X per stimulus" in message and caplog.records == []
