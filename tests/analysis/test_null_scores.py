"""The sweep's permutation nulls: stored per cell, equal to a loop that permutes the neural side
and scores the cell as the sweep does, seeded alike for every layer, switched off by the protocol."""

import numpy as np
import pandas as pd
import pytest
from torch import nn
from analysis_factory import registered_models, toy_dataset

from workbench.activations import extract_stats
from workbench.analysis import Protocol, chance_corrected, load_scores, sweep
from workbench.analysis.cells import Target, prepare, score_region
from workbench.analysis.nulls import null_for_layer
from workbench.errors import ValidationError
from workbench.metrics import GramStats, null_summary, rsa, stimulus_permutations
from workbench.models import Architecture, Preprocessing, create

pytestmark = pytest.mark.usefixtures("isolated_cache")

N_STIMULI = 24
PERMUTATIONS = 30
PROTOCOL = Protocol(svcca_n_components=3, tsvd_n_components=4, batch_size=8, permutations=PERMUTATIONS)
METRICS = ["svcca", "tsvd_regression", "rsa", "cka"]


def _tiny_cnn(pretrained=False):
    net = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2), nn.Conv2d(6, 8, 3),
                        nn.ReLU(), nn.Flatten(), nn.Linear(8 * 6 * 6, 10))
    return Architecture(net, ("0", "1", "4", "6"), Preprocessing(16))


@pytest.fixture(scope="module")
def tiny_model():
    with registered_models({"test_null_cnn": ("cnn", _tiny_cnn)}) as names:
        yield names[0]


@pytest.fixture(scope="module")
def dataset():
    """Responses that follow the pixels (V1) and an RDM-only region (IT), 24 stimuli."""
    return toy_dataset("toynull", region="V1", species="mouse", n_stimuli=N_STIMULI, n_neuroids=8, n_repeats=2,
                       noise=1.0, rdm_features=20, seed=1)


@pytest.fixture(scope="module")
def swept(tiny_model, dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("nulls")
    scores = sweep([tiny_model], [dataset], METRICS, protocol=PROTOCOL, output_dir=out, activation_cache=False,
                   progress=False)
    return scores, out


def test_each_cell_null_equals_a_loop_that_permutes_the_neural_side(swept, tiny_model, dataset):
    scores, _ = swept
    model = create(tiny_model, seed=0)
    stats = extract_stats(model, dataset.stimuli, cache=False)
    perms = stimulus_permutations(N_STIMULI, PERMUTATIONS, seed=PROTOCOL.seed)
    y = np.asarray(dataset.responses("V1").values, dtype=np.float64)
    published = np.asarray(dataset.rdm("IT").values, dtype=np.float64)
    checked = 0
    for i, layer in enumerate(model.layers):  # the same permutations for every layer
        x = prepare(stats[layer], PROTOCOL)
        for region, target, permute in (
            ("toynull/V1", Target("responses", y, False), lambda p: Target("responses", y[p], False)),
            ("toynull/IT", Target("rdm", published, False),
             lambda p: Target("rdm", published[np.ix_(p, p)], False)),
        ):
            observed = score_region(x, target, METRICS, PROTOCOL)
            direct = np.array([score_region(x, permute(p), METRICS, PROTOCOL) for p in perms])
            cell = scores.sel(model=tiny_model, layer=i, region=region)
            for k, metric in enumerate(METRICS):
                stored = [float(cell[v].sel(metric=metric)) for v in ("null_mean", "null_p95", "p_value")]
                if not np.isfinite(observed[k]):
                    assert np.isnan(stored).all()
                    continue
                assert float(cell["score"].sel(metric=metric)) == observed[k]
                np.testing.assert_allclose(stored, null_summary(direct[:, k], observed[k]), rtol=0, atol=1e-9)
                checked += 1
    assert checked == len(model.layers) * 5  # four metrics on V1, RSA on IT


def test_null_columns_are_saved_in_scores_nc_and_csv(swept):
    scores, out = swept
    saved = load_scores(out)
    for var in ("null_mean", "null_p95", "p_value"):
        assert saved[var].dims == ("model", "layer", "region", "metric")
    table = pd.read_csv(out / "scores.csv")
    scored = table["score"].notna()
    assert table.loc[scored, ["null_mean", "null_p95", "p_value"]].notna().all().all()
    assert table.loc[~scored, ["null_mean", "null_p95", "p_value"]].isna().all().all()
    p = table.loc[scored, "p_value"]
    assert p.min() >= 1 / (PERMUTATIONS + 1) - 1e-12 and p.max() <= 1
    # SVCCA's chance level (3 + 8 canonical variables on 24 stimuli) is far from 0
    v1 = table[table["region"] == "toynull/V1"].set_index("metric")
    assert (v1.loc["svcca", "null_mean"] > 0.2).all()
    assert (v1.loc["svcca", "null_p95"] > v1.loc["svcca", "null_mean"]).all()


def test_permutations_zero_turns_the_null_off_and_changes_the_protocol_hash(tiny_model, dataset, tmp_path):
    off = PROTOCOL.replace(permutations=0)
    assert off.fingerprint != PROTOCOL.fingerprint
    assert Protocol.parse_overrides(["permutations=0"]) == {"permutations": 0}
    assert Protocol().permutations == 100
    with pytest.raises(ValidationError, match="permutations must be >= 0"):
        Protocol(permutations=-1)
    scores = sweep([tiny_model], [dataset], ["cka"], protocol=off, output_dir=tmp_path, activation_cache=False,
                   progress=False)
    assert "null_mean" not in scores and "p_value" not in scores
    assert pd.read_csv(tmp_path / "scores.csv")["p_value"].isna().all()


def test_chance_corrected_rescales_svcca_and_cka_only(swept):
    scores, _ = swept
    corrected = chance_corrected(scores)
    for metric in ("svcca", "cka"):
        s, mean = scores["score"].sel(metric=metric), scores["null_mean"].sel(metric=metric)
        np.testing.assert_allclose(corrected["score"].sel(metric=metric), (s - mean) / (1 - mean))
    for metric in ("rsa", "tsvd_regression"):
        np.testing.assert_array_equal(corrected["score"].sel(metric=metric), scores["score"].sel(metric=metric))
    assert not np.allclose(scores["score"].sel(metric="svcca"), corrected["score"].sel(metric="svcca"),
                           equal_nan=True)  # the original is untouched
    with pytest.raises(ValidationError, match="meaningful only for"):
        chance_corrected(scores, ["rsa"])
    with pytest.raises(ValidationError, match="already chance-corrected"):
        chance_corrected(corrected)


def test_rsa_scored_without_zero_variance_stimuli_gets_the_null_of_those_stimuli():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(20, 15)), rng.normal(size=(20, 6))
    x[3] = 0.7  # a stimulus whose pattern has zero variance in the layer
    protocol = Protocol(permutations=25, zero_variance_stimuli="exclude")
    target = Target("responses", y, False)
    counts = np.full(1, np.nan)
    stats = GramStats.from_array(x)
    observed = score_region(stats, target, ["rsa"], protocol, zero_variance=counts)
    assert counts[0] == 1 and np.isfinite(observed[0])
    null = null_for_layer(stats, target, ["rsa"], protocol, observed, counts)["rsa"]
    keep = np.setdiff1d(np.arange(20), [3])
    direct = [rsa(x[keep], y[keep][p]) for p in stimulus_permutations(19, 25, seed=0)]
    np.testing.assert_allclose(null, direct, rtol=0, atol=1e-9)
