"""compare(), the registry, zscore_features and the chunked (GramStats) path."""

import numpy as np
import pytest
import torch

from workbench.errors import ValidationError
from workbench.metrics import (
    DEFAULT_METRICS,
    GramStats,
    cka,
    compare,
    get_metric,
    list_metrics,
    rsa,
    svcca,
    tsvd_regression,
    zscore_features,
)
from workbench.metrics.compare import MetricWarning
from workbench.metrics.svcca import RankDeficiencyWarning


@pytest.fixture
def pair():
    rng = np.random.default_rng(40)
    latent = rng.normal(size=(50, 4))
    x = latent @ rng.normal(size=(4, 120)) + rng.normal(size=(50, 120)) + 0.7
    y = latent @ rng.normal(size=(4, 15)) + rng.normal(size=(50, 15))
    return x, y


def test_compare_equals_the_individual_functions(pair):
    x, y = pair
    got = compare(x, y, n_components=8, alpha=2.0, kernel="rbf", debiased=True)
    assert list(got) == list(DEFAULT_METRICS)
    assert got["svcca"] == pytest.approx(svcca(x, y, n_components=8), rel=1e-12)
    assert got["tsvd_regression"] == pytest.approx(tsvd_regression(x, y, n_components=8, alpha=2.0), rel=1e-12)
    assert got["rsa"] == pytest.approx(rsa(x, y), rel=1e-12)
    assert got["cka"] == pytest.approx(cka(x, y, kernel="rbf", debiased=True), rel=1e-12)


def test_compare_subset_and_single_name(pair):
    x, y = pair
    assert list(compare(x, y, metrics=("cka", "rsa"))) == ["cka", "rsa"]
    assert compare(x, y, metrics="rsa") == {"rsa": pytest.approx(rsa(x, y), rel=1e-12)}


def test_identical_inputs_score_one_on_every_metric():
    rng = np.random.default_rng(41)
    # rank 4, so that its 4 TSVD components hold all of it and the regression is perfect too
    x = rng.normal(size=(50, 4)) @ rng.normal(size=(4, 60))
    scores = compare(x, x, n_components=4, alpha=1e-9)
    assert scores == {name: pytest.approx(1.0, abs=1e-6) for name in DEFAULT_METRICS}


def test_chunked_float32_path_equals_in_memory_path(pair):
    x, y = pair
    x32 = x.astype(np.float32)
    in_memory = compare(x32, y, n_components=6)
    stats = GramStats(x.shape[0], dtype="float32")
    for start in range(0, x.shape[1], 25):
        stats.update(x32[:, start : start + 25])
    chunked = compare(stats, y, n_components=6)
    assert chunked == {k: pytest.approx(v, rel=1e-6) for k, v in in_memory.items()}
    # and both are within float32 precision of the float64 computation
    assert in_memory == {k: pytest.approx(v, abs=1e-4) for k, v in compare(x, y, n_components=6).items()}


def test_torch_tensors_are_accepted(pair):
    x, y = pair
    assert compare(torch.from_numpy(x), torch.from_numpy(y), n_components=6) == pytest.approx(
        compare(x, y, n_components=6), rel=1e-12
    )


def test_zscored_stats_equal_zscore_features_then_compare(pair):
    x, y = pair
    z = zscore_features(x)
    assert z.mean() == pytest.approx(0.0, abs=1e-12) and z.std() == pytest.approx(1.0, rel=1e-12)
    np.testing.assert_allclose(z, (x - x.mean()) / x.std(), rtol=1e-12)
    from_stats = compare(GramStats.from_array(x, chunk_features=30).zscored(), y, n_components=6)
    assert from_stats == {k: pytest.approx(v, rel=1e-8) for k, v in compare(z, y, n_components=6).items()}
    stats_z = zscore_features(GramStats.from_array(x))
    np.testing.assert_allclose(stats_z.gram, z @ z.T, rtol=1e-9, atol=1e-9)


def test_zscore_features_keeps_float32_and_rejects_constants(pair):
    x, _ = pair
    z32 = zscore_features(x.astype(np.float32))
    assert z32.dtype == np.float32
    np.testing.assert_allclose(z32, zscore_features(x), atol=1e-5)
    with pytest.raises(ValidationError, match=r"X \(shape=\(3, 2\)\) is constant \(every entry is 4\)"):
        zscore_features(np.full((3, 2), 4.0))
    with pytest.raises(ValidationError, match=r"X must be a 2-D array, found 1-D"):
        zscore_features(np.arange(3.0))


def test_registry_records():
    assert list_metrics() == ["svcca", "tsvd_regression", "rsa", "cka"]
    for name in list_metrics():
        info = get_metric(name)
        assert info.name == name
        assert info.direction == "higher is better"
        assert info.bibtex.startswith("@") and info.description and info.citation
    assert get_metric("rsa").works_from_rdms
    assert not get_metric("cka").works_from_rdms


def test_unknown_metric_suggests_close_name(pair):
    x, y = pair
    with pytest.raises(ValidationError, match=r"unknown metric 'ckaa'.*did you mean 'cka'\?"):
        compare(x, y, metrics=("ckaa",))
    with pytest.raises(ValidationError, match=r"metrics is empty"):
        compare(x, y, metrics=())


def test_bad_gram_stats(pair):
    x, y = pair
    with pytest.raises(ValidationError, match=r"X has no features"):
        compare(GramStats(50), y)
    with pytest.raises(ValidationError, match=r"found 50 stimuli in X .* and 49 in Y"):
        compare(GramStats.from_array(x), y[1:])
    with pytest.raises(ValidationError, match=r"X: X @ X.T overflows float32 \(largest \|value\| 3e\+38\)"):
        compare(np.full((4, 3), 3e38, dtype=np.float32), y[:4])
    corrupt = GramStats.from_array(x)
    corrupt.gram[2, 2] = np.nan
    with pytest.raises(ValidationError, match=r"X: its GramStats hold NaN or inf"):
        compare(corrupt, y)


def test_nan_is_located_in_the_whole_array_not_the_chunk(pair):
    x, y = pair
    x = x.copy()
    x[7, 95] = np.nan
    with pytest.raises(ValidationError, match=r"X contains 1 NaN or inf value\(s\) \(first at index \(7, 95\)"):
        GramStats.from_array(x, chunk_features=40)
    stats = GramStats(50)
    with pytest.raises(ValidationError, match=r"layer3 contains 1 NaN or inf value\(s\) \(first at index \(7, 15\)"):
        stats.update(x[:, 80:], name="layer3")
    assert stats.n_features == 0 and not stats.gram.any()


def test_prepared_statistics_are_reused_across_calls(pair):
    # the sweep prepares Y once and scores every layer against it
    from workbench.metrics.derived import DerivedStats

    x, y = pair
    prepared_y = DerivedStats.from_input(y, "Y")
    other = np.random.default_rng(42).normal(size=x.shape)
    for features in (x, other, x):
        expected = compare(features, y, n_components=6)
        assert compare(DerivedStats.from_input(features), prepared_y, n_components=6) == pytest.approx(expected, rel=1e-12)


def _bad_inputs():
    rng = np.random.default_rng(43)
    x, y = rng.normal(size=(30, 20)), rng.normal(size=(30, 6))
    x_nan = x.copy()
    x_nan[4, 5] = np.nan
    y_inf = y.copy()
    y_inf[2, 1] = -np.inf
    return {
        "mismatched rows": (x, y[:29], r"found 30 stimuli in X .* and 29 in Y"),
        "two stimuli": (x[:2], y[:2], r"X has 2 row\(s\) \(shape=\(2, 20\)\); at least 3 required"),
        "nan in X": (x_nan, y, r"X contains 1 NaN or inf value\(s\) \(first at index \(4, 5\)"),
        "inf in Y": (x, y_inf, r"Y contains 1 NaN or inf value\(s\) \(first at index \(2, 1\)"),
        "3-D X": (x[:, :, None], y, r"X must be a 2-D array, found 3-D with shape \(30, 20, 1\)"),
        "1-D Y": (x, y[:, 0], r"Y must be a 2-D array, found 1-D with shape \(30,\)"),
    }


@pytest.mark.parametrize("metric", list_metrics())
@pytest.mark.parametrize("case", list(_bad_inputs()))
def test_every_metric_rejects_every_bad_input(metric, case):
    x, y, message = _bad_inputs()[case]
    function = {"svcca": svcca, "tsvd_regression": tsvd_regression, "rsa": rsa, "cka": cka}[metric]
    kwargs = {"n_components": 5} if metric in ("svcca", "tsvd_regression") else {}
    with pytest.raises(ValidationError, match=message):
        function(x, y, **kwargs)
    with pytest.raises(ValueError, match=message):  # ValidationError is a ValueError
        compare(x, y, metrics=(metric,), n_components=5)


def test_compare_returns_every_metric_it_can_with_reasons():
    """SVCCA that cannot apply (20 + 20 variables on 30 stimuli) no longer loses RSA and CKA."""
    rng = np.random.default_rng(11)
    x, y = rng.normal(size=(30, 50)), rng.normal(size=(30, 25))
    with pytest.warns(MetricWarning, match=r"svcca could not be computed \(NaN\): svcca: 20 \+ 20 canonical"):
        scores = compare(x, y, n_components=20)
    assert list(scores) == list(DEFAULT_METRICS)
    assert np.isnan(scores["svcca"]) and list(scores.reasons) == ["svcca"]
    assert "do not fit in the 29 dimensions" in scores.reasons["svcca"]
    for name in ("tsvd_regression", "rsa", "cka"):
        assert scores[name] == pytest.approx(compare(x, y, [name], n_components=20)[name], abs=0)
    assert scores["cka"] == pytest.approx(cka(x, y), abs=1e-12)
    with pytest.raises(ValidationError, match="20 \\+ 20 canonical variables"):
        compare(x, y, n_components=20, errors="raise")
    with pytest.raises(ValidationError, match=r"errors='ignore' is not valid; expected one of \['raise', 'warn'\]"):
        compare(x, y, errors="ignore")


def test_compare_with_a_duplicated_unit_and_no_reduction_of_y():
    rng = np.random.default_rng(12)
    x, y = rng.normal(size=(60, 80)), rng.normal(size=(60, 12))
    y = np.hstack([y, y[:, :1]])  # one unit listed twice
    with pytest.warns(RankDeficiencyWarning, match="rank 12 after centring"):
        scores = compare(x, y, n_components=10, reduce_y=False)
    assert scores.reasons == {} and np.isfinite(list(scores.values())).all()
    assert scores["svcca"].rank_y == 12
    assert scores["rsa"] == pytest.approx(rsa(x, y), abs=1e-12)
